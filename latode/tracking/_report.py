"""Figures and metrics of a finished fit for its MLflow run: for a forecaster, a backtest of
its validation series (forecast plot, MAE, RMSE, CRPS, 80% coverage); for a density
estimator, a density plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from latode.metrics import QUANTILE_GRID, forecast_scores, holdout_split
from latode.tracking._adapters import task_of

__all__ = ["fit_report"]

MAX_SCORED_SERIES = 64
MAX_PLOTTED_SERIES = 4
HOLDOUT_FRACTION = 0.2
N_SAMPLES = 100


def fit_report(estimator: Any, data: Any, seed: int | None) -> tuple[dict[str, Any], dict]:
    """``({file name: figure}, {metric: value})`` for the run of a finished fit on ``data``."""
    if data is None:
        return {}, {}
    task = task_of(estimator)
    if task == "forecaster" and isinstance(data, pd.DataFrame):
        return _forecast_report(estimator, data, seed)
    if task == "density":
        from latode.plotting import plot_density

        return {"density.png": plot_density(estimator, data)}, {}
    return {}, {}


def _validation_ids(estimator: Any, data: pd.DataFrame, seed: int | None) -> tuple[Any, str]:
    """The series the fit held out (the same split as ``fit``), or all series if none was."""
    packed = estimator.converter_.pack(data)
    held_out = np.arange(0)
    if seed is not None:
        _, held_out = estimator._split(packed.n_series, seed)
    if len(held_out):
        return packed.ids[held_out][:MAX_SCORED_SERIES], "val"
    return packed.ids[:MAX_SCORED_SERIES], "train"


def _forecast_report(estimator: Any, data: pd.DataFrame, seed: int | None):
    conv = estimator.converter_
    id_col, time_col, targets = conv.id_col, conv.time_col, list(conv.channels)
    ids, split = _validation_ids(estimator, data, seed)
    subset = data[data[id_col].isin(ids)]
    context, holdout = holdout_split(subset[[id_col, time_col, *targets]], id_col, time_col,
                                     HOLDOUT_FRACTION)
    holdout = holdout[holdout[targets].notna().any(axis=1)]
    context = context[context[id_col].isin(holdout[id_col])]
    holdout = holdout[holdout[id_col].isin(context[id_col])]
    if holdout.empty:
        return {}, {}
    forecast = estimator.predict(context, holdout[[id_col, time_col]].drop_duplicates(),
                                 quantiles=QUANTILE_GRID, level=[80], n_samples=N_SAMPLES,
                                 random_state=0)
    scores = forecast_scores(holdout, forecast, id_col=id_col, time_col=time_col,
                             targets=targets, quantiles=QUANTILE_GRID, level=[80])
    metrics = {}
    for target, row in scores.iterrows():
        suffix = "" if len(targets) == 1 else f"_{target}"
        for name, value in row.items():
            if name != "n":
                metrics[f"{split}_backtest_{name}{suffix}"] = float(value)
    plotted = list(pd.unique(holdout[id_col]))[:MAX_PLOTTED_SERIES]
    grid = _time_grid(estimator, subset[subset[id_col].isin(plotted)])
    band = estimator.predict(context[context[id_col].isin(plotted)], grid,
                             quantiles=(0.1, 0.9), n_samples=N_SAMPLES, random_state=0)
    from latode.plotting import plot_forecast

    figures = {}
    for target in targets[:3]:
        name = f"forecast_{split}_{target}.png" if len(targets) > 1 else f"forecast_{split}.png"
        figures[name] = plot_forecast(context[context[id_col].isin(plotted)], band,
                                      id_col=id_col, time_col=time_col, target=target,
                                      series=plotted,
                                      actuals=holdout[holdout[id_col].isin(plotted)])
    return figures, metrics


def _time_grid(estimator: Any, observed: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """(id, time) rows on an even grid over each series' observed span."""
    conv = estimator.converter_
    axis = conv.time_axis_
    frames = []
    for _, rows in observed.groupby(conv.id_col, sort=False):
        keys = axis.keys(rows[conv.time_col], conv.time_col)
        grid = np.unique(np.concatenate([np.linspace(keys.min(), keys.max(), points), keys]))
        grid = grid if axis.kind == "float" else np.rint(grid).astype(np.int64)
        frames.append(pd.DataFrame({conv.id_col: rows[conv.id_col].iloc[:1].repeat(len(grid))
                                    .to_numpy(), conv.time_col: axis.from_keys(grid)}))
    return pd.concat(frames, ignore_index=True)
