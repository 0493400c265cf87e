"""Long DataFrame <-> packed tensors, and back: the data layer's public face.

:class:`IrregularFrameConverter` is fitted on a training frame (columns, time axis, channel
scaling) and then packs any frame of the same layout into a :class:`PackedSeries`, and turns
model outputs at any timestamps back into a long DataFrame with the user's id and time types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latode.data.dtypes import in_dtype_if_exact
from latode.data.packing import PackedSeries
from latode.data.scaling import ChannelScaler
from latode.data.time_axis import TimeAxis
from latode.data.validation import FrameSpec, validate_long_frame

__all__ = ["IrregularFrameConverter"]


class IrregularFrameConverter:
    """Fitted map between long frames and :class:`PackedSeries`.

    Parameters
    ----------
    id_col, time_col : str
    target_cols : sequence of str or None
        ``None``: every numeric column besides id and time.
    time_scale : float, str, Timedelta or None
        One model time unit (``None``: the training span).
    standardize : bool
        Standardise each channel with its training mean and standard deviation.
    point_process : bool
        The rows are events: packed frames carry event counts (``PackedSeries.events``).
    event_col : str or None
        With ``point_process``: a boolean (or integer count) column marking which rows are
        events; ``None`` makes every row an event.

    Examples
    --------
    >>> df = pd.DataFrame({
    ...     "unique_id": ["a", "a", "b"],
    ...     "ds": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-01 03:00"]),
    ...     "hr": [80.0, None, 72.0], "temp": [None, 37.2, 36.8]})
    >>> conv = IrregularFrameConverter().fit(df)
    >>> packed = conv.pack(df)
    >>> batch = packed.union_batch()          # one grid, times since each series' start
    >>> tuple(batch.values.shape)             # (series, union of times, channels)
    (2, 2, 2)
    >>> batch.mask[0].tolist()                # series "a": hr at +0h, temp at +6h
    [[1.0, 0.0], [0.0, 1.0]]
    >>> conv.unpack(packed).equals(df.sort_values(["unique_id", "ds"], ignore_index=True))
    True
    """

    def __init__(self, id_col: str = "unique_id", time_col: str = "ds",
                 target_cols: Sequence[str] | None = None,
                 time_scale: float | str | None = None, standardize: bool = True,
                 point_process: bool = False, event_col: str | None = None):
        self.id_col = id_col
        self.time_col = time_col
        self.target_cols = target_cols
        self.time_scale = time_scale
        self.standardize = standardize
        self.point_process = point_process
        self.event_col = event_col

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, argument: str = "df") -> IrregularFrameConverter:
        """Validate ``df`` and fit the time axis and channel scaling on it."""
        self.spec_ = validate_long_frame(df, self.id_col, self.time_col, self.target_cols,
                                         argument=argument, **self._event_options())
        if self.point_process and self.event_col is not None \
                and not (df[self.event_col].to_numpy() > 0).any():
            raise ValueError(
                f"No row of {argument} is an event (column {self.event_col!r} is all False or "
                "0): a point process learns from event times. Mark the events, or fit without "
                "point_process=True."
            )
        self.time_axis_ = TimeAxis.fit(df[self.time_col], self.time_col, self.time_scale)
        values = df[list(self.spec_.target_cols)].to_numpy(dtype=float, na_value=np.nan)
        self.scaler_ = ChannelScaler.fit(values, enabled=self.standardize)
        self.id_dtype_ = str(df[self.id_col].dtype)
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        return self.spec_.target_cols

    def state(self) -> dict:
        """Plain data that :meth:`from_state` rebuilds the fitted converter from."""
        return {
            "id_col": self.id_col, "time_col": self.time_col,
            "target_cols": list(self.spec_.target_cols),
            "time_scale": None if self.time_scale is None else str(self.time_scale),
            "standardize": self.standardize, "time_axis": self.time_axis_.state(),
            "scaler": self.scaler_.state(), "id_dtype": self.id_dtype_,
            "point_process": self.point_process, "event_col": self.event_col,
        }

    @classmethod
    def from_state(cls, state: dict) -> IrregularFrameConverter:
        conv = cls(state["id_col"], state["time_col"], tuple(state["target_cols"]),
                   state["time_scale"], state["standardize"],
                   state.get("point_process", False), state.get("event_col"))
        conv.spec_ = FrameSpec(state["id_col"], state["time_col"], tuple(state["target_cols"]))
        conv.time_axis_ = TimeAxis(**state["time_axis"])
        conv.scaler_ = ChannelScaler.from_state(state["scaler"])
        conv.id_dtype_ = state["id_dtype"]
        return conv

    # ------------------------------------------------------------------ packing
    def pack(self, df: pd.DataFrame, *, argument: str = "df", require_observed: bool = True,
             values: bool = True) -> PackedSeries:
        """Validate ``df`` and pack it (sorted by series then time; ``df`` is not modified).

        Parameters
        ----------
        df : DataFrame
            A long frame with the fitted columns (``values=False``: id and time only).
        argument : str
            The argument's name in error messages.
        require_observed : bool
            Every series needs an observed value.
        values : bool
            Read the value columns; with ``False`` the packed values are all NaN (timestamps
            to predict at).
        """
        targets = self.spec_.target_cols if values else ()
        validate_long_frame(df, self.id_col, self.time_col, targets, argument=argument,
                            require_observed=require_observed and values,
                            require_every_column=False, allow_empty_targets=not values,
                            **(self._event_options() if values else {}))
        return self._pack_validated(df, values, argument)

    def _event_options(self) -> dict:
        return {"point_process": self.point_process,
                "event_col": self.event_col if self.point_process else None}

    def fit_pack(self, df: pd.DataFrame, argument: str = "df") -> PackedSeries:
        """:meth:`fit` on ``df`` and :meth:`pack` it, validating the frame once."""
        return self.fit(df, argument=argument)._pack_validated(df, True, argument)

    def _pack_validated(self, df: pd.DataFrame, values: bool,
                        argument: str = "df") -> PackedSeries:
        targets = self.spec_.target_cols if values else ()
        keys = self.time_axis_.keys(df[self.time_col], self.time_col, argument)
        codes, uniques = pd.factorize(df[self.id_col], sort=False)
        order = np.lexsort((keys, codes))
        counts = np.bincount(codes, minlength=len(uniques))
        raw = (df[list(targets)].to_numpy(dtype=float, na_value=np.nan)[order] if values
               else np.full((len(df), len(self.channels)), np.nan))
        return PackedSeries(
            ids=np.asarray(uniques, dtype=object) if not hasattr(uniques, "to_numpy")
            else uniques.to_numpy(),
            indptr=np.concatenate([[0], np.cumsum(counts)]),
            keys=keys[order],
            times=self.time_axis_.to_model(keys[order]),
            values=self.scaler_.transform(raw) if values else raw,
            events=self._event_counts(df)[order] if values and self.point_process else None,
        )

    def _event_counts(self, df: pd.DataFrame) -> np.ndarray:
        if self.event_col is None:
            return np.ones(len(df))
        return df[self.event_col].to_numpy(dtype=np.float64)

    # ------------------------------------------------------------------ unpacking
    def to_frame(self, ids: np.ndarray, keys: np.ndarray,
                 columns: dict[str, np.ndarray]) -> pd.DataFrame:
        """A long frame from per-row ids, exact time keys and value columns.

        Ids and times come back in the user's types; values are written as given.
        """
        frame = pd.DataFrame({
            self.id_col: in_dtype_if_exact(pd.Series(ids), self.id_dtype_),
            self.time_col: self.time_axis_.from_keys(np.asarray(keys)),
        })
        # One concat, not a column at a time: forecasts with many quantile columns would
        # fragment the frame (pandas PerformanceWarning past 100 inserts).
        values = pd.DataFrame({name: np.asarray(column) for name, column in columns.items()},
                              index=frame.index)
        return pd.concat([frame, values], axis=1)

    def unpack(self, packed: PackedSeries) -> pd.DataFrame:
        """Inverse of :meth:`pack`: the packed rows as a long frame in the user's units."""
        values = self.scaler_.inverse_transform(packed.values)
        ids = packed.ids[packed.series_of_row]
        return self.to_frame(ids, packed.keys,
                             {c: values[:, i] for i, c in enumerate(self.channels)})
