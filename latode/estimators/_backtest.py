"""Backtesting a forecaster over several cutoffs (``cross_validation``).

For each cutoff every series is read up to it and its observations in the next ``horizon``
are forecast; the actuals come back beside the forecast, as in neuralforecast's
``cross_validation``. Cutoffs are times shared by all series: the last lies ``horizon`` before
the frame's last timestamp and the others ``step_size`` apart before it.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import pandas as pd
from sklearn.base import clone

from latode.data.times import time_step

__all__ = ["ACTUAL_SUFFIX", "backtest_windows", "cross_validation", "forecast_window"]

#: Suffix of the actual values' columns beside the forecast's.
ACTUAL_SUFFIX = "_actual"


def backtest_windows(df: pd.DataFrame, id_col: str, time_col: str, horizon: Any,
                     n_windows: int = 1, step_size: Any = None
                     ) -> Iterator[tuple[Any, pd.DataFrame, pd.DataFrame]]:
    """``(cutoff, seen, actual)`` for each window, earliest first.

    ``seen`` holds every row up to the cutoff, ``actual`` each series' rows in the ``horizon``
    after it (only series with rows up to the cutoff too); windows without any are skipped.
    """
    if not isinstance(n_windows, numbers.Integral) or n_windows < 1:
        raise ValueError(f"n_windows={n_windows!r} must be a positive integer.")
    for col in (id_col, time_col):
        if not isinstance(df, pd.DataFrame) or col not in df.columns:
            raise ValueError(f"Backtesting needs a long frame with column {col!r}; set the "
                             "estimator's id_col= / time_col=.")
    times = df[time_col]
    length = time_step(horizon, times, "horizon")
    step = length if step_size is None else time_step(step_size, times, "step_size")
    last = times.max() - length
    cutoffs = [last - k * step for k in reversed(range(int(n_windows)))]
    if cutoffs[0] <= times.min():
        raise ValueError(f"The first of {n_windows} cutoffs ({cutoffs[0]}) is at or before the "
                         f"frame's first time ({times.min()}): use fewer windows or a shorter "
                         "horizon or step_size.")
    for cutoff in cutoffs:
        seen = df[times <= cutoff]
        actual = df[(times > cutoff) & (times <= cutoff + length)]
        actual = actual[actual[id_col].isin(seen[id_col])]
        if len(actual):
            yield cutoff, seen, actual


def window_inputs(model: Any, seen: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame | None:
    """The ``future_df`` of a window: its ``actual`` rows' future and impulse covariates,
    known ahead by definition. Held covariates carry their last value (from ``seen`` too)
    onto every row, and a row without a dose gives 0; a held covariate never given holds its
    training mean. ``None`` for a model without such covariates."""
    conv = model.converter_
    roles = conv.roles
    if not roles.controls:
        return None
    id_col, time_col = model.id_col, model.time_col
    held, impulse = list(roles.future), list(roles.impulse)
    columns = [id_col, time_col, *roles.controls]
    rows = pd.concat([seen[columns].assign(_window=False),
                      actual[columns].assign(_window=True)])
    rows = rows[rows[id_col].isin(actual[id_col])].sort_values([id_col, time_col],
                                                               kind="stable")
    if held:
        rows[held] = rows.groupby(id_col, sort=False)[held].ffill()
        mean = dict(zip(roles.columns, conv.inputs_scaler_.mean))
        rows = rows.fillna({c: mean[c] for c in held})
    rows[impulse] = rows[impulse].fillna(0.0)
    return rows[rows.pop("_window")].reset_index(drop=True)


def forecast_window(model: Any, seen: pd.DataFrame, actual: pd.DataFrame, cutoff: Any,
                    **predict_kwargs: Any) -> pd.DataFrame:
    """``model``'s forecast at the ``actual`` rows from the ``seen`` rows of their series,
    with ``cutoff`` and the actual values (``<target>_actual``) beside it; future and
    impulse covariates after the cutoff are read from ``actual`` (:func:`window_inputs`)."""
    id_col, time_col = model.id_col, model.time_col
    context = seen[seen[id_col].isin(actual[id_col])]
    future = window_inputs(model, seen, actual)
    if future is not None:
        predict_kwargs["future_df"] = future
    forecast = model.predict(context, actual[[id_col, time_col]], **predict_kwargs)
    targets = list(model.converter_.channels)
    actuals = actual[[id_col, time_col, *targets]].rename(
        columns={t: t + ACTUAL_SUFFIX for t in targets})
    merged = forecast.merge(actuals, on=[id_col, time_col], how="left")
    merged.insert(2, "cutoff", cutoff)
    return merged


def cross_validation(estimator: Any, df: pd.DataFrame, *, horizon: Any, n_windows: int = 1,
                     step_size: Any = None, refit: bool = False,
                     quantiles: Any = (0.1, 0.5, 0.9), level: Any = None,
                     n_samples: int = 100, random_state: int | None = 0,
                     static_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecast each series' observations after each of ``n_windows`` cutoffs.

    Parameters
    ----------
    estimator : forecaster
        Left unchanged: the windows are fitted on clones of it.
    df : DataFrame
        The whole long frame, as ``fit`` takes it.
    horizon : number, str or Timedelta
        Length of each window after its cutoff (a number for numeric times, a duration
        such as ``"30D"`` otherwise).
    n_windows : int, default=1
    step_size : number, str, Timedelta or None
        Distance between consecutive cutoffs (default: ``horizon``).
    refit : bool, default=False
        Fit anew at every cutoff on the rows up to it; ``False`` fits once, on the rows up
        to the first cutoff, so that no window's forecast has seen its actuals.
    quantiles, level, n_samples, random_state
        As for ``predict``.
    static_df : DataFrame or None
        Static features, as for ``fit``. Future and impulse covariates after each cutoff
        come from ``df`` itself: they are known ahead by definition.

    Returns
    -------
    DataFrame
        One row per observed (series, time) in a window: the id and time columns,
        ``cutoff``, the forecast's columns and each target's actual value as
        ``<target>_actual`` (NaN where that channel was not observed).
    """
    model = None
    frames = []
    static = {} if static_df is None else {"static_df": static_df}
    for cutoff, seen, actual in backtest_windows(df, estimator.id_col, estimator.time_col,
                                                 horizon, n_windows, step_size):
        if model is None or refit:
            model = clone(estimator).fit(seen, **static)
        frames.append(forecast_window(model, seen, actual, cutoff, quantiles=quantiles,
                                      level=level, n_samples=n_samples,
                                      random_state=random_state, **static))
    if not frames:
        raise ValueError("No series has observations after any cutoff; use a longer horizon.")
    return pd.concat(frames, ignore_index=True)
