"""Long DataFrame <-> packed tensors, and back: the data layer's public face.

:class:`IrregularFrameConverter` is fitted on a training frame (columns, time axis, channel
scaling) and then packs any frame of the same layout into a :class:`PackedSeries`, and turns
model outputs at any timestamps back into a long DataFrame with the user's id and time types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latode.data.covariates import CovariateRoles, StaticTable, fit_input_scaler
from latode.data.dtypes import in_dtype_if_exact
from latode.data.packing import PackedSeries
from latode.data.scaling import ChannelScaler
from latode.data.time_axis import TimeAxis
from latode.data.validation import FrameSpec, validate_long_frame

__all__ = ["IrregularFrameConverter", "series_codes"]


def series_codes(ids: pd.Series, canonical: bool = True
                 ) -> tuple[np.ndarray, pd.Index | np.ndarray]:
    """Integer codes of ``ids`` and the distinct ids they index.

    ``canonical``: the distinct ids in sorted order, so that they do not depend on the order
    of the rows (ids that cannot be compared, objects without ``<``, are ordered by their
    ``repr``); otherwise in order of first appearance. The ids keep their type.
    """
    if canonical:
        try:
            return pd.factorize(ids, sort=True)
        except TypeError:
            codes, uniques = pd.factorize(ids, sort=False)
            rank = np.argsort([repr(u) for u in uniques], kind="stable")
            position = np.empty_like(rank)
            position[rank] = np.arange(len(rank))
            return position[codes], np.asarray(uniques, dtype=object)[rank]
    return pd.factorize(ids, sort=False)


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
    covariates : CovariateRoles or None
        Covariate columns of the frame by role (:mod:`latode.data.covariates`); packed
        frames carry them scaled in ``PackedSeries.inputs``.

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
                 point_process: bool = False, event_col: str | None = None,
                 covariates: CovariateRoles | None = None):
        self.id_col = id_col
        self.time_col = time_col
        self.target_cols = target_cols
        self.time_scale = time_scale
        self.standardize = standardize
        self.point_process = point_process
        self.event_col = event_col
        self.covariates = covariates

    @property
    def roles(self) -> CovariateRoles:
        return self.covariates or CovariateRoles()

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, argument: str = "df",
            static_df: pd.DataFrame | None = None) -> IrregularFrameConverter:
        """Validate ``df`` (and ``static_df``) and fit the time axis, the channel scaling and
        the covariates' scaling on it."""
        roles = self.roles
        self.spec_ = validate_long_frame(df, self.id_col, self.time_col, self.target_cols,
                                         argument=argument, covariate_cols=roles.columns,
                                         **self._event_options())
        reserved = {self.id_col: "id_col", self.time_col: "time_col",
                    **{c: "target_cols" for c in self.spec_.target_cols}}
        if self.event_col is not None:
            reserved[self.event_col] = "event_col"
        roles.check_against(reserved)
        roles.check_frame(df, self.id_col, argument)
        if self.point_process and self.event_col is not None \
                and not (df[self.event_col].to_numpy() > 0).any():
            raise ValueError(
                f"No row of {argument} is an event (column {self.event_col!r} is all False or "
                "0): a point process learns from event times. Mark the events, or fit without "
                "point_process=True."
            )
        self.time_axis_ = TimeAxis.fit(df[self.time_col], self.time_col, self.time_scale)
        # Sums of floats depend on the order of their terms: the scalers read the rows in
        # the packed order, so a shuffled frame is scaled to the last bit alike.
        rows = self._row_order(df, argument)[0]
        values = df[list(self.spec_.target_cols)].to_numpy(dtype=float, na_value=np.nan)
        self.scaler_ = ChannelScaler.fit(values[rows], enabled=self.standardize)
        self.inputs_scaler_ = fit_input_scaler(
            df[list(roles.columns)].to_numpy(dtype=float, na_value=np.nan)[rows], roles.kinds,
            enabled=self.standardize)
        self.static_ = None if static_df is None else StaticTable.fit(static_df, self.id_col)
        self.id_dtype_ = str(df[self.id_col].dtype)
        return self

    @property
    def n_static(self) -> int:
        """Static features per series (0 when fitted without ``static_df``)."""
        return 0 if self.static_ is None else self.static_.n_features

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
            "covariates": self.roles.state(), "inputs_scaler": self.inputs_scaler_.state(),
            "static": None if self.static_ is None else self.static_.state(),
        }

    @classmethod
    def from_state(cls, state: dict) -> IrregularFrameConverter:
        conv = cls(state["id_col"], state["time_col"], tuple(state["target_cols"]),
                   state["time_scale"], state["standardize"],
                   state.get("point_process", False), state.get("event_col"),
                   CovariateRoles.from_state(state.get("covariates")))
        conv.spec_ = FrameSpec(state["id_col"], state["time_col"], tuple(state["target_cols"]))
        conv.time_axis_ = TimeAxis(**state["time_axis"])
        conv.scaler_ = ChannelScaler.from_state(state["scaler"])
        conv.id_dtype_ = state["id_dtype"]
        n_inputs = len(conv.roles.columns)
        conv.inputs_scaler_ = ChannelScaler.from_state(
            state.get("inputs_scaler", {"mean": [0.0] * n_inputs, "std": [1.0] * n_inputs}))
        static = state.get("static")
        conv.static_ = None if static is None else StaticTable.from_state(static)
        return conv

    # ------------------------------------------------------------------ packing
    def pack(self, df: pd.DataFrame, *, argument: str = "df", require_observed: bool = True,
             values: bool = True, static_df: pd.DataFrame | None = None) -> PackedSeries:
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
        static_df : DataFrame or None
            The series' static features, required when the converter was fitted with them.
        """
        targets = self.spec_.target_cols if values else ()
        validate_long_frame(df, self.id_col, self.time_col, targets, argument=argument,
                            require_observed=require_observed and values,
                            require_every_column=False, allow_empty_targets=not values,
                            covariate_cols=self.roles.columns,
                            **(self._event_options() if values else {}))
        if values:
            self.roles.check_frame(df, self.id_col, argument)
        packed = self._pack_validated(df, values, argument)
        if values:
            self._add_static(packed, static_df)
        return packed

    def _add_static(self, packed: PackedSeries, static_df: pd.DataFrame | None) -> None:
        if self.static_ is None:
            if static_df is not None:
                raise ValueError("static_df was given, but the model was fitted without static "
                                 "features; fit with static_df= to use them, or leave it out.")
            return
        if static_df is None:
            raise ValueError(
                f"The model was fitted with static features ({', '.join(self.static_.columns)}); "
                "pass static_df= with a row for each series.")
        packed.static = self.static_.features(static_df, packed.ids)

    def pack_future(self, future_df: pd.DataFrame, argument: str = "future_df"
                    ) -> PackedSeries:
        """Pack the future and impulse covariates of ``future_df`` (no values, no past
        covariates; every covariate cell given: 0 for no dose)."""
        roles = self.roles
        validate_long_frame(future_df, self.id_col, self.time_col, (), argument=argument,
                            require_observed=False, allow_empty_targets=True,
                            covariate_cols=roles.columns)
        roles.check_frame(future_df, self.id_col, argument, roles.controls)
        for column in roles.controls:
            missing = future_df[column].isna().to_numpy()
            if missing.any():
                series = future_df[self.id_col].to_numpy()[np.flatnonzero(missing)[0]]
                raise ValueError(
                    f"Column {column!r} of {argument} has {int(missing.sum())} missing values, "
                    f"e.g. in series {series!r}; future inputs must be given (write 0 where "
                    "no dose is given).")
        frame = future_df.assign(**{c: np.nan for c in roles.past})
        return self._pack_validated(frame, False, argument, inputs=True)

    def _event_options(self) -> dict:
        return {"point_process": self.point_process,
                "event_col": self.event_col if self.point_process else None}

    def fit_pack(self, df: pd.DataFrame, argument: str = "df",
                 static_df: pd.DataFrame | None = None) -> PackedSeries:
        """:meth:`fit` on ``df`` and :meth:`pack` it, validating the frame once.

        The series are packed in the order of their sorted ids (:func:`series_codes`), not
        of their first rows, so that the split into training and validation series and the
        batches drawn from them are the same in any row order of ``df``.
        """
        packed = self.fit(df, argument=argument, static_df=static_df)._pack_validated(
            df, True, argument, canonical=True)
        self._add_static(packed, static_df)
        return packed

    def _row_order(self, df: pd.DataFrame, argument: str, canonical: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index | np.ndarray]:
        """Rows sorted by series then time: ``(order, keys, codes, uniques)`` with the series
        in sorted-id order (``canonical``) or in order of first appearance."""
        keys = self.time_axis_.keys(df[self.time_col], self.time_col, argument)
        codes, uniques = series_codes(df[self.id_col], canonical)
        return np.lexsort((keys, codes)), keys, codes, uniques

    def _pack_validated(self, df: pd.DataFrame, values: bool,
                        argument: str = "df", inputs: bool | None = None,
                        canonical: bool = False) -> PackedSeries:
        targets = self.spec_.target_cols if values else ()
        order, keys, codes, uniques = self._row_order(df, argument, canonical)
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
            **(self._inputs(df, order) if (values if inputs is None else inputs) else {}),
        )

    def _inputs(self, df: pd.DataFrame, order: np.ndarray) -> dict:
        """The ``inputs`` and ``input_kinds`` of a packed frame (nothing without
        covariates)."""
        roles = self.roles
        if not roles.columns:
            return {}
        raw = df[list(roles.columns)].to_numpy(dtype=float, na_value=np.nan)[order]
        return {"inputs": self.inputs_scaler_.transform(raw), "input_kinds": roles.kinds}

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
