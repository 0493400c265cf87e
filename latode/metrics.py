"""Forecast metrics: MAE, RMSE, pinball loss, CRPS (from samples or quantiles), coverage —
and the backtest glue that scores a forecast frame against held-out observations.

Every metric ignores the entries whose true value is NaN (a channel not observed at that
time), so long frames with missing channels score as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latode.data.times import time_step

__all__ = [
    "mae", "rmse", "pinball_loss", "crps_from_samples", "crps_from_quantiles", "coverage",
    "holdout_split", "horizon_split", "forecast_scores",
    "cross_validation_scores", "QUANTILE_GRID",
]

#: 99 evenly spaced levels: CRPS from this grid is within about 1% of the exact value for
#: smooth forecast distributions.
QUANTILE_GRID = tuple(round(k / 100, 2) for k in range(1, 100))


def _observed(y_true, *others):
    """Arrays broadcast together, restricted to the entries where ``y_true`` is finite."""
    arrays = np.broadcast_arrays(np.asarray(y_true, dtype=float),
                                 *(np.asarray(o, dtype=float) for o in others))
    keep = np.isfinite(arrays[0])
    return [a[keep] for a in arrays]


def mae(y_true, y_pred) -> float:
    """Mean absolute error over the observed entries.

    Examples
    --------
    >>> mae([1.0, 2.0, np.nan], [2.0, 2.5, 0.0])
    0.75
    """
    y, p = _observed(y_true, y_pred)
    return float(np.mean(np.abs(y - p))) if y.size else float("nan")


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over the observed entries.

    Examples
    --------
    >>> rmse([0.0, 0.0, 0.0], [3.0, 3.0, 3.0])
    3.0
    """
    y, p = _observed(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2))) if y.size else float("nan")


def pinball_loss(y_true, y_quantile, quantile: float) -> float:
    """Mean pinball (quantile) loss of predictions of the ``quantile`` quantile:
    ``max(q (y - p), (q - 1) (y - p))``.

    Examples
    --------
    >>> pinball_loss([1.0], [0.0], 0.9)
    0.9
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile!r}.")
    y, p = _observed(y_true, y_quantile)
    diff = y - p
    return float(np.mean(np.maximum(quantile * diff, (quantile - 1) * diff))) \
        if y.size else float("nan")


def crps_from_samples(y_true, samples) -> float:
    """Mean CRPS of the empirical distributions of ``samples``.

    ``CRPS(F, y) = E|X - y| - 1/2 E|X - X'|`` with X, X' independent draws of F; for m
    samples the second term is computed exactly from the sorted samples in O(m log m).

    Parameters
    ----------
    y_true : array of shape (n,)
    samples : array of shape (m, n)
        ``m`` draws for each of the ``n`` entries.

    Examples
    --------
    >>> crps_from_samples([0.0], [[0.0], [0.0]])   # a point mass at the truth
    0.0
    """
    y = np.asarray(y_true, dtype=float).reshape(-1)
    x = np.asarray(samples, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != y.size:
        raise ValueError(f"samples must have shape (n_samples, {y.size}) to match y_true; "
                         f"got {x.shape}.")
    keep = np.isfinite(y)
    y, x = y[keep], np.sort(x[:, keep], axis=0)
    if y.size == 0:
        return float("nan")
    m = x.shape[0]
    spread_weights = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    mean_abs_diff = 2 * np.sum(spread_weights * x, axis=0) / m**2  # E|X - X'|
    crps = np.mean(np.abs(x - y), axis=0) - 0.5 * mean_abs_diff
    return float(np.mean(crps))


def crps_from_quantiles(y_true, quantile_preds, quantiles: Sequence[float]) -> float:
    """Mean CRPS approximated from predicted quantiles: twice the pinball loss averaged over
    the quantile levels, ``CRPS = ∫ 2 PL_τ(y, F⁻¹(τ)) dτ`` (use many evenly spaced levels,
    e.g. :data:`QUANTILE_GRID`).

    Parameters
    ----------
    y_true : array of shape (n,)
    quantile_preds : array of shape (n, k)
        Predicted quantile ``quantiles[j]`` of entry ``i`` in column ``j``.
    quantiles : sequence of k floats in (0, 1)

    Examples
    --------
    >>> crps_from_quantiles([0.0], [[0.0, 0.0]], [0.25, 0.75])
    0.0
    """
    qs = np.asarray(quantiles, dtype=float)
    preds = np.asarray(quantile_preds, dtype=float).reshape(-1, qs.size)
    y = np.asarray(y_true, dtype=float).reshape(-1)
    if preds.shape[0] != y.size:
        raise ValueError(f"quantile_preds must have shape ({y.size}, {qs.size}); "
                         f"got {np.shape(quantile_preds)}.")
    losses = [pinball_loss(y, preds[:, j], q) for j, q in enumerate(qs)]
    return float(2 * np.mean(losses))


def coverage(y_true, lower, upper) -> float:
    """Fraction of the observed entries inside ``[lower, upper]``.

    Examples
    --------
    >>> coverage([0.0, 1.0, 5.0, np.nan], [-1, -1, -1, -1], [1, 1, 1, 1])
    0.6666666666666666
    """
    y, lo, hi = _observed(y_true, lower, upper)
    return float(np.mean((y >= lo) & (y <= hi))) if y.size else float("nan")


# -------------------------------------------------------------------- backtests
def holdout_split(df: pd.DataFrame, id_col: str, time_col: str, fraction: float = 0.2
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each series into its earlier observations (context) and its last ``fraction``
    of observation times (held out, at least one); series with fewer than two distinct times
    are left out of both.

    Returns
    -------
    (context, holdout) : pair of DataFrame

    Examples
    --------
    >>> df = pd.DataFrame({"id": [1] * 5, "t": range(5), "y": range(5)})
    >>> context, holdout = holdout_split(df, "id", "t", 0.4)
    >>> list(context.t), list(holdout.t)
    ([0, 1, 2], [3, 4])
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), e.g. 0.2; got {fraction!r}.")
    for col in (id_col, time_col):
        if col not in df.columns:
            raise ValueError(f"Column {col!r} is not in the frame; columns are "
                             f"{list(df.columns)}.")
    ranks = df.groupby(id_col, sort=False)[time_col].rank(method="dense")
    n_times = df.groupby(id_col, sort=False)[time_col].transform("nunique")
    n_held = np.maximum(1, np.floor(n_times * fraction)).astype(int)
    usable = n_times >= 2
    held = usable & (ranks > n_times - n_held)
    return (df[usable & ~held].reset_index(drop=True), df[held].reset_index(drop=True))


def horizon_split(df: pd.DataFrame, id_col: str, time_col: str, horizon: object
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a frame at ``horizon`` before its last time: the rows up to then (context)
    and each series' rows after it (held out), for series that have both.

    Examples
    --------
    >>> df = pd.DataFrame({"id": [1, 1, 1, 2], "t": [0.0, 1.0, 2.0, 2.0], "y": 0.0})
    >>> context, held = horizon_split(df, "id", "t", 1.0)
    >>> list(context.t), list(held.t)
    ([0.0, 1.0], [2.0])
    """
    for col in (id_col, time_col):
        if col not in df.columns:
            raise ValueError(f"Column {col!r} is not in the frame; columns are "
                             f"{list(df.columns)}.")
    cutoff = df[time_col].max() - time_step(horizon, df[time_col])
    before = df[time_col] <= cutoff
    both = set(df.loc[before, id_col]) & set(df.loc[~before, id_col])
    keep = df[id_col].isin(both)
    return (df[keep & before].reset_index(drop=True), df[keep & ~before].reset_index(drop=True))


def forecast_scores(actual: pd.DataFrame, forecast: pd.DataFrame, *, id_col: str,
                    time_col: str, targets: Sequence[str], quantiles: Sequence[float] = (),
                    level: Sequence[float] = (), keys: Sequence[str] = ()) -> pd.DataFrame:
    """Score a forecast frame (as ``predict`` returns) against observed values.

    Parameters
    ----------
    actual : DataFrame
        Observed rows: ``id_col``, ``time_col`` and the targets.
    forecast : DataFrame
        ``predict``'s frame at (at least) those rows: the mean in a column per target, the
        quantiles in ``<target>_q<q>`` and the intervals in ``<target>-lo/hi-<level>``.
    targets : sequence of str
    quantiles : sequence of float
        The quantile columns to turn into CRPS (omitted when empty).
    level : sequence of float
        The intervals whose coverage to report.
    keys : sequence of str
        Further columns that identify a row besides id and time (``cutoff`` in a backtest,
        where one time can fall in two windows).

    Returns
    -------
    DataFrame
        One row per target: ``n`` (observed values), ``mae``, ``rmse``, ``crps``,
        ``coverage_<level>``.
    """
    merged = actual.merge(forecast, on=[id_col, time_col, *keys], how="left",
                          suffixes=("", "__forecast"))
    rows = []
    for target in targets:
        truth = merged[target].to_numpy(dtype=float)
        mean = merged[f"{target}__forecast"].to_numpy(dtype=float)
        if np.any(np.isfinite(truth) & np.isnan(mean)):
            raise ValueError(f"The forecast has no {target!r} value at some observed "
                             f"({id_col}, {time_col}) rows; forecast at those timestamps.")
        row = {"target": target, "n": int(np.isfinite(truth).sum()),
               "mae": mae(truth, mean), "rmse": rmse(truth, mean)}
        if len(quantiles):
            columns = [f"{target}_q{q:g}" for q in quantiles]
            row["crps"] = crps_from_quantiles(truth, merged[columns].to_numpy(dtype=float),
                                              quantiles)
        for lv in level:
            lo, hi = merged[f"{target}-lo-{lv:g}"], merged[f"{target}-hi-{lv:g}"]
            row[f"coverage_{lv:g}"] = coverage(truth, lo.to_numpy(float), hi.to_numpy(float))
        rows.append(row)
    return pd.DataFrame(rows).set_index("target")


def cross_validation_scores(cv: pd.DataFrame, *, id_col: str = "unique_id",
                            time_col: str = "ds", per_series: bool = False) -> pd.DataFrame:
    """Score the frame ``cross_validation`` returns: MAE, RMSE, CRPS (from its quantile
    columns) and interval coverage (from its ``level`` columns), per target over every
    window, or per series and target with ``per_series``.

    Parameters
    ----------
    cv : DataFrame
        ``id_col``, ``time_col``, ``cutoff``, each target's forecast ``<target>`` with its
        quantile / interval columns, and ``<target>_actual``.
    per_series : bool
        One row per (series, target) instead of per target.

    Returns
    -------
    DataFrame
        Indexed by target (or by series and target): ``n``, ``mae``, ``rmse`` and, where
        the columns exist, ``crps`` and ``coverage_<level>``.

    Examples
    --------
    >>> cv = pd.DataFrame({"unique_id": [0, 0, 1], "ds": [1.0, 2.0, 1.0], "cutoff": 0.5,
    ...                    "y": [1.0, 2.0, 3.0], "y_actual": [1.0, 4.0, 2.0]})
    >>> cross_validation_scores(cv)[["n", "mae"]]
            n  mae
    target
    y       3  1.0
    """
    suffix = "_actual"
    targets = [c[:-len(suffix)] for c in cv.columns if c.endswith(suffix)
               and c[:-len(suffix)] in cv.columns]
    if not targets or "cutoff" not in cv.columns:
        raise ValueError("cross_validation_scores reads the frame cross_validation returns: "
                         "'cutoff', and '<target>' beside '<target>_actual' columns.")
    quantiles = sorted({float(c.rsplit("_q", 1)[1]) for t in targets for c in cv.columns
                        if c.startswith(f"{t}_q")})
    levels = sorted({float(c.rsplit("-", 1)[1]) for t in targets for c in cv.columns
                     if c.startswith(f"{t}-lo-")})
    actual = cv[[id_col, time_col, "cutoff", *(t + suffix for t in targets)]].rename(
        columns={t + suffix: t for t in targets})
    forecast = cv.drop(columns=[t + suffix for t in targets])

    def scores(rows: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
        return forecast_scores(rows, predicted, id_col=id_col, time_col=time_col,
                               targets=targets, quantiles=quantiles, level=levels,
                               keys=["cutoff"])

    if not per_series:
        return scores(actual, forecast)
    parts = {series: scores(rows, forecast[forecast[id_col] == series])
             for series, rows in actual.groupby(id_col, sort=True)}
    return pd.concat(parts, names=[id_col])
