"""Drug concentrations under repeated oral doses: a one-compartment model with a known truth.

Each subject gets doses at irregular times and its concentration follows the textbook
one-compartment model with first-order absorption (e.g. Gabrielsson & Weiner, Pharmacokinetic
and Pharmacodynamic Data Analysis): a dose ``D`` at ``t_k`` contributes

    C(t) = D ka / (V (ka - ke)) (exp(-ke (t - t_k)) - exp(-ka (t - t_k)))   for t >= t_k,

and doses add up. The volume ``V`` grows with the subject's weight and the elimination rate
``ke`` varies between subjects, so levels are subject-specific; concentrations are measured at
irregular times with proportional noise. Because the truth is computable for any doses,
forecasts under other future doses (what-ifs) can be checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latode._params import Interval
from latode.datasets._common import check_number, make_rng

__all__ = ["DosingData", "make_dosing", "one_compartment"]


def one_compartment(times: np.ndarray, dose_times: np.ndarray, doses: np.ndarray,
                    ka: float, ke: float, volume: float) -> np.ndarray:
    """Concentration at ``times`` after ``doses`` given at ``dose_times`` (same units).

    Examples
    --------
    >>> c = one_compartment(np.array([0.0, 1.0, 50.0]), np.array([0.0]), np.array([100.0]),
    ...                     ka=1.0, ke=0.1, volume=10.0)
    >>> [round(float(v), 3) for v in c]
    [0.0, 5.966, 0.075]
    """
    since = np.asarray(times, float)[:, None] - np.asarray(dose_times, float)[None, :]
    after = np.clip(since, 0.0, None)
    shape = (np.exp(-ke * after) - np.exp(-ka * after)) * (since >= 0)
    return shape @ (np.asarray(doses, float) * ka / (volume * (ka - ke)))


@dataclass(frozen=True)
class DosingData:
    """The output of :func:`make_dosing`.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``unique_id`` (int), ``ds`` (hours), ``conc`` (measured; NaN on dose rows) and
        ``dose`` (mg; NaN on measurement rows).
    static : pandas.DataFrame
        Indexed by ``unique_id``: ``weight`` (kg), a static feature.
    params : pandas.DataFrame
        Indexed by ``unique_id``: ``ka``, ``ke`` (1/h) and ``volume`` (L).
    """

    frame: pd.DataFrame
    static: pd.DataFrame
    params: pd.DataFrame

    def truth(self, unique_id: int, times: np.ndarray, doses: pd.DataFrame | None = None
              ) -> np.ndarray:
        """The noise-free concentration of subject ``unique_id`` at ``times`` under its doses
        in :attr:`frame`, or under ``doses`` (rows ``ds``, ``dose``) when given."""
        if doses is None:
            own = self.frame[(self.frame["unique_id"] == unique_id)
                             & self.frame["dose"].notna()]
            doses = own[["ds", "dose"]]
        p = self.params.loc[unique_id]
        return one_compartment(times, doses["ds"].to_numpy(), doses["dose"].to_numpy(),
                               p["ka"], p["ke"], p["volume"])


def make_dosing(n_series: int = 100, hours: float = 96.0, dose_interval: float = 12.0,
                n_measurements: int = 16, noise: float = 0.05,
                random_state: Any = None) -> DosingData:
    """Simulate subjects on repeated oral doses (see the module docstring).

    Parameters
    ----------
    n_series : int
        Subjects.
    hours : float
        Length of each subject's record.
    dose_interval : float
        Mean time between doses; each interval is drawn within ±40% of it, each dose from
        50 to 150 mg in steps of 25, and one dose in five is skipped.
    n_measurements : int
        Concentrations measured per subject, at uniform random times.
    noise : float
        Standard deviation of the multiplicative measurement noise.
    random_state : int, Generator or None

    Examples
    --------
    >>> data = make_dosing(n_series=3, random_state=0)
    >>> sorted(data.frame.columns), data.frame["unique_id"].nunique()
    (['conc', 'dose', 'ds', 'unique_id'], 3)
    """
    check_number("make_dosing", "n_series", n_series, Interval(int, 1, None))
    check_number("make_dosing", "hours", hours, Interval(float, 0, None, closed="neither"))
    check_number("make_dosing", "dose_interval", dose_interval,
                 Interval(float, 0, None, closed="neither"))
    check_number("make_dosing", "n_measurements", n_measurements, Interval(int, 1, None))
    check_number("make_dosing", "noise", noise, Interval(float, 0, None))
    rng = make_rng("make_dosing", random_state)
    weight = rng.normal(75.0, 12.0, n_series).clip(45.0, 120.0)
    params = pd.DataFrame({
        "ka": rng.uniform(0.8, 1.6, n_series),
        "ke": rng.lognormal(np.log(0.12), 0.3, n_series),
        "volume": 0.5 * weight * rng.lognormal(0.0, 0.1, n_series),
    }, index=pd.Index(np.arange(n_series), name="unique_id"))
    frames = []
    for i in range(n_series):
        gaps = dose_interval * rng.uniform(0.6, 1.4, int(2 * hours / dose_interval) + 2)
        dose_times = np.cumsum(np.concatenate([[0.0], gaps]))
        dose_times = dose_times[dose_times < hours]
        amounts = 25.0 * rng.integers(2, 7, len(dose_times))
        keep = (rng.uniform(size=len(dose_times)) > 0.2) | (np.arange(len(dose_times)) == 0)
        dose_times, amounts = np.round(dose_times[keep], 2), amounts[keep]
        times = np.round(np.sort(rng.uniform(0.25, hours, n_measurements)), 2)
        times = np.setdiff1d(times, dose_times)
        p = params.iloc[i]
        conc = one_compartment(times, dose_times, amounts, p["ka"], p["ke"], p["volume"])
        conc = conc * np.exp(noise * rng.standard_normal(len(times)))
        frames.append(pd.DataFrame({"unique_id": i, "ds": np.concatenate([dose_times, times]),
                                    "conc": np.concatenate([np.full(len(dose_times), np.nan),
                                                            conc]),
                                    "dose": np.concatenate([amounts.astype(float),
                                                            np.full(len(times), np.nan)])}))
    frame = pd.concat(frames, ignore_index=True).sort_values(["unique_id", "ds"],
                                                              ignore_index=True)
    static = pd.DataFrame({"weight": weight}, index=params.index)
    return DosingData(frame[["unique_id", "ds", "conc", "dose"]], static, params)
