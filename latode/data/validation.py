"""The one gate for user frames: every check of a long-format DataFrame lives here.

Errors say what is wrong, where (column and series) and what to do, so that nothing deeper
(torch, the solver) ever sees a bad frame.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FrameSpec", "validate_long_frame", "time_kind", "show", "check_value_column",
           "FLOAT32_MAX"]

#: The largest magnitude a value may have: the models compute in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FrameSpec:
    """Which columns of a long frame hold the series id, the time and the values.

    Parameters
    ----------
    id_col, time_col : str
    target_cols : tuple of str
        The value channels (NaN where a channel was not observed).
    """

    id_col: str = "unique_id"
    time_col: str = "ds"
    target_cols: tuple[str, ...] = ("y",)


def show(value: object) -> str:
    """A value as users read it in messages: ``'a'`` for strings, ``3``, ``2024-01-01``."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _first_series(df: pd.DataFrame, id_col: str, rows: np.ndarray) -> str:
    return show(df[id_col].to_numpy()[np.flatnonzero(rows)[0]])


def time_kind(column: pd.Series, name: str, argument: str | None = None) -> str:
    """``"datetime"``, ``"timedelta"`` or ``"float"``: how a time column is read.

    ``argument``, when given, is the frame's argument name, for messages.

    Raises
    ------
    TypeError
        For strings, objects or booleans.
    ValueError
        For datetimes in several time zones.
    """
    dtype = column.dtype
    where = "" if argument is None else f" of {argument}"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_bool_dtype(dtype):
        raise TypeError(f"Time column {name!r}{where} is boolean; pass datetimes, timedeltas "
                        "or numbers.")
    if pd.api.types.is_numeric_dtype(dtype):
        return "float"
    values = column.dropna()
    if len(values) and all(isinstance(v, pd.Timestamp) for v in values):
        zones = sorted({str(v.tz) for v in values})
        raise ValueError(
            f"Time column {name!r}{where} mixes time zones ({', '.join(zones)}); convert it to one "
            f"zone first, e.g. pd.to_datetime(df[{name!r}], utc=True)."
        )
    raise TypeError(
        f"Time column {name!r}{where} has dtype {dtype}; pass datetimes, timedeltas or numbers "
        f"(for strings use pd.to_datetime(df[{name!r}]) or pd.to_timedelta)."
    )


def _resolve_targets(
    df: pd.DataFrame, exclude: tuple[str, ...], target_cols: Sequence[str] | None,
    allow_none: bool = False,
) -> tuple[str, ...]:
    if target_cols is None:
        # Booleans count as numeric to pandas but are flags, not measurements.
        targets = tuple(
            c for c in df.columns
            if c not in exclude and pd.api.types.is_numeric_dtype(df[c].dtype)
            and not pd.api.types.is_bool_dtype(df[c].dtype)
        )
        if not targets and not allow_none:
            raise ValueError(
                f"The frame has no numeric value column besides {', '.join(map(repr, exclude))}; "
                "add one or name the value columns with target_cols=[...]."
            )
        return targets
    targets = (target_cols,) if isinstance(target_cols, str) else tuple(target_cols)
    if not targets and not allow_none:
        raise ValueError("target_cols is empty; name at least one value column, or pass "
                         "target_cols=None to take every numeric column.")
    repeated = sorted({str(c) for c in targets if targets.count(c) > 1})
    if repeated:
        raise ValueError(f"target_cols names {repeated} more than once; name each value "
                         "column once.")
    roles = [c for c in targets if c in exclude]
    if roles:
        raise ValueError(f"target_cols includes {roles}, which is the id, time, event or a "
                         "covariate column; value columns must be other columns.")
    return targets


def validate_long_frame(
    df: object,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_cols: Sequence[str] | None = None,
    *,
    require_observed: bool = True,
    require_every_column: bool = True,
    allow_empty_targets: bool = False,
    argument: str = "df",
    event_col: str | None = None,
    point_process: bool = False,
    covariate_cols: Sequence[str] = (),
) -> FrameSpec:
    """Check a long-format frame and return the :class:`FrameSpec` that reads it.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per (series, timestamp).
    id_col, time_col : str
    target_cols : sequence of str or None
        ``None`` takes every numeric column other than the id and time columns.
    require_observed : bool
        Every series must have at least one observed (non-NaN) value.
    require_every_column : bool
        With ``require_observed``: every value column must be observed somewhere (training
        needs it; a forecast's context may lack a channel altogether).
    allow_empty_targets : bool
        Accept a frame with no value column (timestamps only, e.g. the times to forecast).
    argument : str
        The argument's name in error messages.
    event_col : str or None
        A column of booleans (or non-negative integer counts) marking the rows that are events;
        never a value channel.
    point_process : bool
        The rows are events (of ``event_col``, or every row without it): a series needs an
        event or an observed value, not necessarily a value, and a frame may have no value
        column at all (a pure point process).
    covariate_cols : sequence of str
        Columns that are inputs, not values (:mod:`latode.data.covariates` checks them):
        never taken as value columns.

    Returns
    -------
    FrameSpec

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": ["a", "a"], "ds": [0.0, 1.5], "y": [1.0, None]})
    >>> validate_long_frame(df).target_cols
    ('y',)
    >>> validate_long_frame(df.iloc[[0, 0]])
    Traceback (most recent call last):
    ...
    ValueError: df has 1 duplicate (series, time) rows, e.g. series 'a' at time 0.0; ...
    """
    _check_layout(df, id_col, time_col, event_col, argument)
    exclude = (id_col, time_col) + (() if event_col is None else (event_col,)) \
        + tuple(covariate_cols)
    if (allow_empty_targets or point_process) and target_cols is not None \
            and len(target_cols) == 0:
        targets: tuple[str, ...] = ()
    else:
        targets = _resolve_targets(df, exclude, target_cols, allow_none=point_process)
    missing = [c for c in targets if c not in df.columns]
    if missing:
        raise ValueError(
            f"{argument} has no value column(s) {missing}; its columns are {list(df.columns)}. "
            "Fix target_cols=."
        )
    _check_ids(df[id_col], id_col, argument)
    _check_times(df, id_col, time_col, argument)
    for col in targets:
        check_value_column(df, id_col, col, argument)
    if event_col is not None:
        _check_events(df, id_col, event_col, argument)
    _check_unique_rows(df, id_col, time_col, argument)
    if require_observed and targets:
        _check_observed(df, id_col, targets, argument, require_every_column,
                        point_process, event_col)
    return FrameSpec(id_col=id_col, time_col=time_col, target_cols=tuple(targets))


def _check_layout(df: object, id_col: str, time_col: str, event_col: str | None,
                  argument: str) -> None:
    """A non-empty DataFrame with the id, time (two distinct columns) and event columns."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{argument} must be a pandas DataFrame in long format (one row per series and "
            f"timestamp); got {type(df).__name__}."
        )
    if len(df) == 0:
        raise ValueError(f"{argument} is empty; pass at least one observation.")
    if id_col == time_col:
        raise ValueError(f"id_col and time_col are both {id_col!r}; the series id and the "
                         "timestamp must be two columns.")
    for role, col in (("id_col", id_col), ("time_col", time_col)):
        if col not in df.columns:
            raise ValueError(
                f"{argument} has no column {col!r} ({role}); its columns are "
                f"{list(df.columns)}. Pass {role}= with the right name."
            )
    if event_col is not None and event_col not in df.columns:
        raise ValueError(
            f"{argument} has no column {event_col!r} (event_col); its columns are "
            f"{list(df.columns)}. Add it or pass event_col= with the right name."
        )


def _check_ids(ids: pd.Series, id_col: str, argument: str) -> None:
    """Every row has a series id, and the ids are of one kind."""
    if ids.isna().any():
        raise ValueError(
            f"Column {id_col!r} of {argument} has {int(ids.isna().sum())} missing series ids; "
            "drop or fill those rows."
        )
    _check_id_types(ids, id_col, argument)


def _check_unique_rows(df: pd.DataFrame, id_col: str, time_col: str, argument: str) -> None:
    """One row per (series, time)."""
    duplicated = df.duplicated(subset=[id_col, time_col]).to_numpy()
    if duplicated.any():
        row = np.flatnonzero(duplicated)[0]
        raise ValueError(
            f"{argument} has {int(duplicated.sum())} duplicate (series, time) rows, e.g. series "
            f"{show(df[id_col].iloc[row])} at time {show(df[time_col].iloc[row])}; keep one row "
            f"per series and time, e.g. df.groupby([{id_col!r}, {time_col!r}], "
            "as_index=False).mean()."
        )


def _check_observed(df: pd.DataFrame, id_col: str, targets: Sequence[str], argument: str,
                    require_every_column: bool, point_process: bool,
                    event_col: str | None) -> None:
    """Every value column (with ``require_every_column``) and every series has an observed
    value (or, for a point process, an event)."""
    never = [c for c in targets if df[c].isna().all()] if require_every_column else []
    if never:
        raise ValueError(
            f"Value column(s) {never} of {argument} have no observed value at all; drop "
            "them from target_cols (nothing can be learned about them)."
        )
    observed = df[list(targets)].notna().any(axis=1)
    if point_process:
        observed |= True if event_col is None else df[event_col].to_numpy() > 0
    per_series = observed.groupby(df[id_col].to_numpy(), sort=False).any()
    if not per_series.all():
        empty = per_series.index[~per_series.to_numpy()]
        raise ValueError(
            f"{len(empty)} series of {argument} have no observed value in {list(targets)}, "
            f"e.g. {show(empty[0])}; drop those series or give them at least one observation."
        )


def _check_id_types(ids: pd.Series, id_col: str, argument: str) -> None:
    """Ids of one kind: ``"1"`` and ``1`` in one column would be two series that print alike
    (and a forecast's ids could not come back in one dtype), and ``1`` and ``1.0`` would be
    merged into one series (they compare equal)."""
    if ids.dtype != object:
        return

    def kind(value: object) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, numbers.Integral):
            return "int"
        if isinstance(value, numbers.Number):
            return "float"
        return type(value).__name__

    kinds = ids.map(kind).unique()
    if len(kinds) > 1:
        raise TypeError(
            f"Column {id_col!r} of {argument} mixes series ids of types {sorted(kinds)}; use "
            f"one type, e.g. df[{id_col!r}] = df[{id_col!r}].astype(str)."
        )


def _check_times(df: pd.DataFrame, id_col: str, time_col: str, argument: str) -> None:
    column = df[time_col]
    kind = time_kind(column, time_col, argument)
    bad = column.isna().to_numpy()
    label = "NaT" if kind != "float" else "NaN"
    if kind == "float":
        bad = bad | ~np.isfinite(column.to_numpy(dtype=float, na_value=np.nan))
        label = "NaN or infinite"
    if bad.any():
        raise ValueError(
            f"Column {time_col!r} of {argument} has {int(bad.sum())} {label} timestamps, e.g. "
            f"in series {_first_series(df, id_col, bad)}; drop or fill those rows."
        )


def check_value_column(df: pd.DataFrame, id_col: str, col: str, argument: str,
                       kind: str = "Value") -> None:
    """Column ``col`` of ``df`` is numeric (not boolean), finite and within float32's range
    where given (NaN: not given). ``kind`` names the column's role in messages."""
    column = df[col]
    remedy = " or drop it from target_cols" if kind == "Value" else ""
    if pd.api.types.is_complex_dtype(column.dtype):
        raise TypeError(
            f"{kind} column {col!r} of {argument} is complex ({column.dtype}); the models "
            f"read real numbers: pass its real and imaginary parts as two columns, e.g. "
            f"df[{col!r}].to_numpy().real and .imag."
        )
    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(
        column.dtype
    ):
        sample = column.dropna()
        example = f" (e.g. {sample.iloc[0]!r})" if len(sample) else ""
        raise TypeError(
            f"{kind} column {col!r} of {argument} has non-numeric dtype {column.dtype}{example}; "
            f"convert it with pd.to_numeric(df[{col!r}], errors='coerce'){remedy}."
        )
    values = column.to_numpy(dtype=float, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise ValueError(
            f"{kind} column {col!r} of {argument} has {int(infinite.sum())} infinite values, "
            f"e.g. in series {_first_series(df, id_col, infinite)}; replace them with NaN "
            "(not observed) or a finite value."
        )
    # The models compute in float32: a larger value would become inf there (and its square
    # overflows the float64 spread used to standardise), giving NaN forecasts.
    too_large = np.abs(np.nan_to_num(values)) > FLOAT32_MAX
    if too_large.any():
        raise ValueError(
            f"{kind} column {col!r} of {argument} has {int(too_large.sum())} values beyond "
            f"±{FLOAT32_MAX:.1e} (float32's range, in which the models compute), e.g. in "
            f"series {_first_series(df, id_col, too_large)}; rescale the column, e.g. "
            f"df[{col!r}] / 1e30."
        )


def _check_events(df: pd.DataFrame, id_col: str, event_col: str, argument: str) -> None:
    """Event markers: booleans, or non-negative integer counts (several events at one time)."""
    column = df[event_col]
    dtype = column.dtype
    if column.isna().any():
        raise ValueError(
            f"Event column {event_col!r} of {argument} has {int(column.isna().sum())} missing "
            f"values, e.g. in series {_first_series(df, id_col, column.isna().to_numpy())}; "
            "mark every row True (an event) or False (an observation only)."
        )
    if not (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)):
        raise TypeError(
            f"Event column {event_col!r} of {argument} has dtype {dtype}; it must be boolean "
            f"(True where the row is an event) or integer counts, e.g. "
            f"df[{event_col!r}].astype(bool). Values belong in the value columns."
        )
    counts = column.to_numpy(dtype=np.int64)
    if (counts < 0).any():
        raise ValueError(
            f"Event column {event_col!r} of {argument} has negative counts, e.g. in series "
            f"{_first_series(df, id_col, counts < 0)}; counts of events are 0 or more."
        )
