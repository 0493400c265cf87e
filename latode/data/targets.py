"""Which (series, time) pairs a forecast is asked for: the ``timestamps`` / ``horizon`` /
``freq`` arguments of ``predict`` and ``sample``, checked and packed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latode.data.converter import IrregularFrameConverter
from latode.data.packing import PackedSeries
from latode.data.times import parse_step
from latode.data.validation import show, time_kind

__all__ = ["forecast_targets", "future_inputs", "MAX_GRID_POINTS", "MAX_MODEL_TIME",
           "MAX_FORECAST_ROWS"]

#: The most forecast times a series may be asked for: a ``horizon``/``freq`` grid, a list of
#: ``timestamps`` or a series' rows of a ``timestamps`` frame.
MAX_GRID_POINTS = 1_000_000

#: The farthest a forecast time may lie from its series' first context row, in model time
#: units (the training span is one unit unless ``time_scale`` says otherwise). The models
#: compute in float32, which cannot tell times 0.06 apart there; and a solve to a time far
#: beyond runs through its whole step budget before it fails.
MAX_MODEL_TIME = 1e6

#: The most forecast rows (series x times) one call may build: one draw of each, with its
#: noisy copy, fills the 2 GiB draw budget of ``predict``.
MAX_FORECAST_ROWS = 2**27


def _packed_from_keys(conv: IrregularFrameConverter, ids: np.ndarray,
                      keys_per_series: np.ndarray) -> PackedSeries:
    """Every series of ``ids`` at the rows of ``keys_per_series`` (n_series, n_times)."""
    n_series, n_times = keys_per_series.shape
    keys = keys_per_series.reshape(-1)
    return PackedSeries(
        ids=ids, indptr=np.arange(n_series + 1) * n_times, keys=keys,
        times=conv.time_axis_.to_model(keys),
        values=np.full((len(keys), len(conv.channels)), np.nan),
    )


def _check_rows(n_series: int, n_times: int, argument: str) -> None:
    """Refuse, before they are built, more forecast rows than one draw of each may fill
    within the draw budget (``MAX_DRAW_BYTES`` of :mod:`latode.estimators`)."""
    if n_series * n_times > MAX_FORECAST_ROWS:
        raise ValueError(
            f"{argument} asks for {n_times:,} forecast times of each of {n_series:,} series "
            f"({n_series * n_times:.3g} rows; at most {MAX_FORECAST_ROWS:.3g} per call); "
            "forecast fewer series or times per call.")


def _is_sequence(value: object) -> bool:
    """A list-like of offsets (not a single offset, and not a string)."""
    return isinstance(value, (Sequence, np.ndarray, pd.Index, pd.Series)) \
        and not isinstance(value, str)


def _offset_keys(conv: IrregularFrameConverter, offsets: object, argument: str) -> np.ndarray:
    """Offsets (durations or numbers, see :func:`~latode.data.times.parse_step`) as
    time-key increments."""
    values = list(offsets) if _is_sequence(offsets) else [offsets]
    if not values:
        raise ValueError(f"{argument} is empty; give at least one offset.")
    kind = conv.time_axis_.kind
    steps = [parse_step(value, kind, argument) for value in values]
    if kind == "float":
        return np.asarray(steps, dtype=np.float64)
    return np.asarray([step.value for step in steps], dtype=np.int64)  # nanoseconds


def forecast_targets(conv: IrregularFrameConverter, context: PackedSeries, *,
                     timestamps: object = None, horizon: object = None,
                     freq: object = None) -> PackedSeries:
    """The (series, time) rows to forecast, packed with NaN values.

    Parameters
    ----------
    conv : IrregularFrameConverter
        Fitted converter (its time axis decides what times are valid).
    context : PackedSeries
        The series' observed context.
    timestamps : DataFrame, sequence of times, or None
        A frame of (id, time) rows — each id must have context — or times applied to every
        series of the context.
    horizon : duration, number, sequence of them, or None
        Offsets from each series' last context time: a sequence is used as given; a single
        value needs ``freq`` and gives ``freq, 2 freq, ...`` up to ``horizon``.
    freq : duration, number or None
        Spacing of a regular horizon grid.
    """
    if (timestamps is None) == (horizon is None):
        raise ValueError("Pass exactly one of timestamps= (times to forecast) or horizon= "
                         "(offsets from each series' last row in the context).")
    argument = "horizon" if timestamps is None else "timestamps"
    targets = _targets(conv, context, timestamps, horizon, freq)
    longest = int(targets.lengths.max())
    if longest > MAX_GRID_POINTS:
        raise ValueError(
            f"{argument} asks for {longest:,} forecast times of one series (at most "
            f"{MAX_GRID_POINTS:,} per call); split them over several calls.")
    _check_reach(conv, context, targets, argument)
    return targets


def _check_reach(conv: IrregularFrameConverter, context: PackedSeries, targets: PackedSeries,
                 argument: str) -> None:
    """Every target time lies within :data:`MAX_MODEL_TIME` of its series' first context
    row: refused at once, not after a solve that exhausts its step budget."""
    first = context.times[context.indptr[:-1]][pd.Index(context.ids).get_indexer(targets.ids)]
    reach = np.abs(targets.times - first[targets.series_of_row])
    if len(reach) and reach.max() > MAX_MODEL_TIME:
        row = int(np.argmax(reach))
        series = targets.ids[targets.series_of_row[row]]
        when = conv.time_axis_.from_keys(targets.keys[row:row + 1]).iloc[0]
        raise ValueError(
            f"{argument} asks for series {show(series)} at {when}, {reach[row]:.3g} model time "
            f"units from its context (at most {MAX_MODEL_TIME:.0e}; one unit is the time_scale, "
            "or the training span by default): the model cannot forecast that far. Ask for "
            "nearer times.")


def _targets(conv: IrregularFrameConverter, context: PackedSeries, timestamps: object,
             horizon: object, freq: object) -> PackedSeries:
    """The rows of whichever of ``timestamps`` (a frame or a sequence) or ``horizon`` is
    given."""
    if isinstance(timestamps, pd.DataFrame):
        return _rows_of_frame(conv, context, timestamps)
    if timestamps is not None:
        keys = _time_keys(conv, timestamps)
        _check_rows(context.n_series, len(keys), "timestamps")
        return _packed_from_keys(conv, context.ids, np.tile(keys, (context.n_series, 1)))
    offsets = _horizon_offsets(conv, horizon, freq)
    _check_rows(context.n_series, len(offsets), "horizon")
    last = context.keys[context.indptr[1:] - 1]
    return _packed_from_keys(conv, context.ids, last[:, None] + offsets[None, :])


def _rows_of_frame(conv: IrregularFrameConverter, context: PackedSeries,
                   timestamps: pd.DataFrame) -> PackedSeries:
    """A frame of (id, time) rows, each series with a context."""
    targets = conv.pack(timestamps, argument="timestamps", values=False)
    unknown = ~pd.Index(targets.ids).isin(pd.Index(context.ids))
    if unknown.any():
        missing = targets.ids[np.flatnonzero(unknown)[0]]
        raise ValueError(
            f"Series {show(missing)} in timestamps has no observations in context_df; a "
            "forecast needs each series' observed context. Add its rows to context_df."
        )
    return targets


def _time_keys(conv: IrregularFrameConverter, timestamps: object) -> np.ndarray:
    """A sequence of times for every series, as sorted distinct time keys."""
    if isinstance(timestamps, (str, bytes)) or not hasattr(timestamps, "__len__"):
        raise TypeError("timestamps must be a DataFrame of (id, time) rows or a sequence of "
                        f"times; got {type(timestamps).__name__}.")
    times = pd.Series(list(timestamps)) if not isinstance(timestamps, pd.Series) \
        else timestamps.reset_index(drop=True)
    if len(times) == 0:
        raise ValueError("timestamps is empty; give at least one time to forecast.")
    if times.isna().any():
        raise ValueError("timestamps contains missing values (NaN/NaT); remove them.")
    try:
        time_kind(times, "timestamps")
    except TypeError as error:
        raise TypeError(
            f"timestamps must be {conv.time_axis_.kind} values, like the time column the "
            f"model was fitted on; got {show(times.iloc[0])} of type "
            f"{type(times.iloc[0]).__name__}. Convert them first, e.g. with "
            "pd.to_datetime(...) or pd.to_timedelta(...)."
        ) from error
    keys = np.unique(conv.time_axis_.keys(times, "timestamps"))
    if conv.time_axis_.kind == "float" and not np.all(np.isfinite(keys)):
        raise ValueError("timestamps contains infinite values; pass finite times.")
    if len(keys) > MAX_GRID_POINTS:
        # Before the times are repeated for every series.
        raise ValueError(
            f"timestamps asks for {len(keys):,} forecast times of each series (at most "
            f"{MAX_GRID_POINTS:,} per call); split them over several calls.")
    return keys


def _horizon_offsets(conv: IrregularFrameConverter, horizon: object, freq: object
                     ) -> np.ndarray:
    """Sorted distinct offsets from each series' last row: ``horizon`` as a list, or the
    grid ``freq, 2 freq, ...`` up to a single ``horizon``."""
    if freq is None:
        if not _is_sequence(horizon):
            raise ValueError("A single horizon needs freq= (the spacing of the forecast grid); "
                             "or pass horizon as a list of offsets, or timestamps=.")
        return np.unique(_offset_keys(conv, horizon, "horizon"))
    for name, value in (("horizon", horizon), ("freq", freq)):
        # Only the first of several values would be used: say so instead.
        if _is_sequence(value):
            raise ValueError(
                f"With freq=, {name} must be a single duration or number (horizon: the "
                f"end of the grid, freq: its spacing); got a sequence. Pass a list of "
                "offsets as horizon= without freq=, or a single horizon= with freq=."
            )
    span = _offset_keys(conv, horizon, "horizon")[0]
    step = _offset_keys(conv, freq, "freq")[0]
    ratio = float(span) / float(step)
    if ratio + 1e-9 < 1:
        raise ValueError("horizon is shorter than freq; no forecast time would remain.")
    if ratio > MAX_GRID_POINTS:
        # A float ratio: a tiny freq must not overflow an int or allocate a huge grid.
        raise ValueError(
            f"horizon / freq asks for {ratio:.3g} forecast times per series (at most "
            f"{MAX_GRID_POINTS:,}); pass a larger freq= or a shorter horizon=."
        )
    count = int(np.floor(ratio + 1e-9))
    return step * np.arange(1, count + 1, dtype=np.asarray(step).dtype)


def future_inputs(conv: IrregularFrameConverter, context: PackedSeries, targets: PackedSeries,
                  future_df: pd.DataFrame | None) -> tuple[PackedSeries | None, np.ndarray]:
    """The future and impulse covariates after each series' context, checked against the
    times a forecast asks for.

    Every series asked for a time after its last context row needs rows in ``future_df``
    reaching that time (a row at or after it: the inputs up to then are known, and a last
    row with a dose of 0 says that no further dose is given), and ``future_df``'s rows of a
    series come after its context (earlier inputs belong in ``context_df``).

    Returns
    -------
    future : PackedSeries or None
        ``future_df`` packed (``None`` without it).
    position : ndarray of int, shape (context.n_series,)
        Each context series' position in ``future`` (-1: none).
    """
    roles = conv.roles
    none = np.full(context.n_series, -1)
    if not roles.controls:
        if future_df is not None:
            raise ValueError("future_df was given, but the model was fitted without future or "
                             "impulse covariates; leave it out, or fit with "
                             "future_covariates= / impulse_covariates=.")
        return None, none
    end = context.keys[context.indptr[1:] - 1]
    asked = end.copy()  # the latest time asked of each series (its context's end if none)
    asked[pd.Index(context.ids).get_indexer(targets.ids)] = targets.keys[targets.indptr[1:] - 1]
    ahead = asked > end

    def at(keys: np.ndarray, k: int) -> object:
        # One time key of series k in the user's time type, for messages.
        return conv.time_axis_.from_keys(keys[k:k + 1]).iloc[0]

    if future_df is None:
        if ahead.any():
            k = int(np.flatnonzero(ahead)[0])
            raise ValueError(
                f"The model follows future inputs ({', '.join(roles.controls)}): pass "
                f"future_df= with them for the forecast window, e.g. series {show(context.ids[k])} "
                f"from {at(end, k)} to {at(asked, k)}.")
        return None, none
    future = conv.pack_future(future_df)
    position = pd.Index(future.ids).get_indexer(context.ids)
    unknown = ~pd.Index(future.ids).isin(pd.Index(context.ids))
    if unknown.any():
        raise ValueError(f"Series {show(future.ids[np.flatnonzero(unknown)[0]])} of future_df "
                         "is not in context_df; every series needs its context.")
    has = position >= 0
    first, last = end.copy(), end.copy()  # each series' first and last future_df row
    first[has] = future.keys[future.indptr[position[has]]]
    last[has] = future.keys[future.indptr[position[has] + 1] - 1]
    early = has & (first <= end)
    if early.any():
        k = int(np.flatnonzero(early)[0])
        raise ValueError(
            f"future_df has a row of series {show(context.ids[k])} at {at(first, k)}, not "
            f"after its context's last row ({at(end, k)}); inputs up to then belong in "
            "context_df.")
    short = ahead & ~(has & (last >= asked))
    if short.any():
        k = int(np.flatnonzero(short)[0])
        reach = f"ends at {at(last, k)}" if has[k] else "has no rows"
        raise ValueError(
            f"future_df does not reach the forecast of series {show(context.ids[k])}: it "
            f"{reach}, and the forecast asks for {at(asked, k)}. Give its "
            f"inputs up to then (a last row with 0 dose says that no further dose is given); "
            f"{int(short.sum())} series are short.")
    return future, position
