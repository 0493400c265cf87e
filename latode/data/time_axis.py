"""The map between a user's time column and the model's float time axis.

A time column holds datetimes (naive or in one time zone), timedeltas or plain numbers. Each is
turned into an exact *time key* — int64 nanoseconds for datetimes and timedeltas, float64 for
numbers — which orders and de-duplicates timestamps without rounding, and into model time

    t_model = (key - origin) / scale,

where ``origin`` and ``scale`` are fitted on training data (the training span maps to [0, 1]
unless ``time_scale`` is given). The original values are kept alongside, so observed and
requested timestamps come back exactly in the user's types. What users write for times,
durations and steps is read by :mod:`latode.data.times`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latode.data.dtypes import in_dtype_if_exact
from latode.data.times import parse_time_unit
from latode.data.validation import time_kind

__all__ = ["TimeAxis"]


@dataclass
class TimeAxis:
    """Fitted time map of one estimator (see the module docstring).

    Attributes
    ----------
    kind : {"datetime", "timedelta", "float"}
    tz : str or None
        The time zone of tz-aware datetimes.
    dtype : str
        The column's dtype, restored on output.
    origin : float
        Time key of model time 0.
    scale : float
        Time-key units per model time unit.
    """

    kind: str
    tz: str | None
    dtype: str
    origin: int | float
    scale: float

    @classmethod
    def fit(cls, times: pd.Series, name: str, time_scale: float | str | None = None) -> TimeAxis:
        """Fit origin and scale on training times.

        Parameters
        ----------
        times : pandas.Series
        name : str
            Column name, for messages.
        time_scale : float, str, Timedelta or None
            Length of one model time unit: a number for float times, a duration for datetimes
            and timedeltas; ``None`` makes the training span one unit.
        """
        kind = time_kind(times, name)
        tz = str(times.dt.tz) if kind == "datetime" and times.dt.tz is not None else None
        keys = time_keys(times, kind)
        # int64 nanoseconds stay integers: a float64 origin near 1.7e18 ns would round
        # timestamps to 256 ns.
        origin = float(keys.min()) if kind == "float" else int(keys.min())
        span = float(keys.max() - keys.min())
        if time_scale is None:
            scale = span if span > 0 else 1.0
        elif kind == "float":
            if isinstance(time_scale, bool) or not isinstance(time_scale, numbers.Real):
                raise TypeError(
                    f"time_scale={time_scale!r} is not a number, but the time column {name!r} "
                    "holds numbers: give the length of one model time unit in those numbers "
                    "(e.g. time_scale=24.0), or None."
                )
            scale = float(time_scale)
        else:
            scale = float(parse_time_unit(time_scale, "time_scale"))
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"time_scale={time_scale!r} must be a positive duration or number.")
        return cls(kind=kind, tz=tz, dtype=str(times.dtype), origin=origin, scale=scale)

    def keys(self, times: pd.Series, name: str, argument: str | None = None) -> np.ndarray:
        """Exact time keys of ``times``, checking they are of the fitted kind.

        ``argument`` (the frame's parameter name, e.g. ``"context_df"``) is named in errors.
        """
        kind = time_kind(times, name, argument)
        if kind != self.kind:
            where = f" of {argument}" if argument else ""
            raise TypeError(
                f"Time column {name!r}{where} holds {kind} values but the model was fitted "
                f"on {self.kind} times; pass {self.kind} timestamps."
            )
        if kind == "datetime":
            tz = str(times.dt.tz) if times.dt.tz is not None else None
            if (tz is None) != (self.tz is None):
                raise TypeError(
                    f"Time column {name!r} is {'tz-aware' if tz else 'naive'} but the model was "
                    f"fitted on {'tz-aware' if self.tz else 'naive'} datetimes; convert it with "
                    ".dt.tz_localize / .dt.tz_convert."
                )
        return time_keys(times, kind)

    def to_model(self, keys: np.ndarray) -> np.ndarray:
        """Model time (float64) of time keys."""
        if self.kind == "float":
            return (np.asarray(keys, dtype=np.float64) - self.origin) / self.scale
        offsets = np.asarray(keys, dtype=np.int64) - np.int64(self.origin)
        return offsets.astype(np.float64) / self.scale

    def to_keys(self, t: np.ndarray) -> np.ndarray:
        """Time keys of model times (rounded to the nanosecond for datetimes)."""
        scaled = np.asarray(t, dtype=np.float64) * self.scale
        if self.kind == "float":
            return scaled + self.origin
        return np.rint(scaled).astype(np.int64) + np.int64(self.origin)

    def from_keys(self, keys: np.ndarray) -> pd.Series:
        """Times in the user's type for exact time keys.

        Where that type cannot hold them (a forecast at 55.5 on an integer time column, or
        at 100 ms on whole-second datetimes) they come back as float64 or in nanoseconds
        rather than rounded onto another time.
        """
        if self.kind == "float":
            times = pd.Series(np.asarray(keys, dtype=np.float64))
            if pd.api.types.is_float_dtype(self.dtype):  # float32 stays float32, as given
                return times.astype(self.dtype)
            return in_dtype_if_exact(times, self.dtype)
        ns = np.asarray(keys, dtype=np.int64)
        if self.kind == "timedelta":
            return in_dtype_if_exact(pd.Series(pd.to_timedelta(ns, unit="ns")), self.dtype)
        stamps = pd.to_datetime(ns, unit="ns", utc=self.tz is not None)
        if self.tz is not None:
            stamps = stamps.tz_convert(self.tz)
        return in_dtype_if_exact(pd.Series(stamps), self.dtype)

    def state(self) -> dict:
        return dict(kind=self.kind, tz=self.tz, dtype=self.dtype, origin=self.origin,
                    scale=self.scale)


def time_keys(times: pd.Series, kind: str) -> np.ndarray:
    """int64 nanoseconds (datetimes since the epoch, in UTC; timedeltas) or float64."""
    if kind == "float":
        return times.to_numpy(dtype=np.float64)
    if kind == "datetime":
        if times.dt.tz is not None:
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        return times.dt.as_unit("ns").to_numpy().view(np.int64)
    return times.dt.as_unit("ns").to_numpy().view(np.int64)
