"""Covariates: the columns that drive a forecast without being forecast.

Four roles, in the conventions of neuralforecast and darts:

* **static** features, one row per series in a ``static_df`` keyed by the id column (age,
  sex, unit): numeric columns are standardised, other columns one-hot encoded, and a missing
  value becomes a 0 with a 0 in that column's "known" flag;
* **past covariates**, columns of the long frame observed with the targets and known only up to
  the forecast origin (a lab value that is not forecast): the encoder reads them;
* **future covariates**, columns known at any time (a scheduled treatment, an infusion rate):
  a value holds from its row until the next row of that column (piecewise constant);
* **impulse covariates**, amounts given at an instant (doses): each row's amount is an event at
  that row's time, never a value carried on.

Future and impulse covariates are *controls*: the encoder reads those of the context and the
latent dynamics read them at every time (:mod:`latode.nn.controls`), so a forecast can be
rerun under other future inputs (a what-if). This module checks the roles and the frames that
carry them and lays controls out per series; it knows nothing of torch models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latode.data.scaling import ChannelScaler
from latode.data.validation import check_value_column, show

__all__ = ["CovariateRoles", "StaticTable", "fit_input_scaler", "control_rows"]

#: The constructor parameter of each role of a long frame's covariate columns.
ROLE_PARAMETERS = ("past_covariates", "future_covariates", "impulse_covariates")


def _names(value: str | Sequence[str] | None, parameter: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{parameter} must be a column name or a list of column names; got "
                        f"{value!r}.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{parameter} names {repeated} more than once; name each column once.")
    return names


@dataclass(frozen=True)
class CovariateRoles:
    """The covariate columns of a long frame, by role (see the module docstring).

    Attributes
    ----------
    past, future, impulse : tuple of str

    Examples
    --------
    >>> roles = CovariateRoles.from_parameters(None, "rate", ["dose"])
    >>> roles.columns, roles.kinds
    (('rate', 'dose'), ('future', 'impulse'))
    >>> CovariateRoles.from_parameters("dose", None, "dose")
    Traceback (most recent call last):
    ...
    ValueError: Column 'dose' is named in both past_covariates and impulse_covariates; ...
    """

    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    impulse: tuple[str, ...] = ()

    @classmethod
    def from_parameters(cls, past, future, impulse) -> CovariateRoles:
        """Roles from the estimator's ``past_covariates``, ``future_covariates`` and
        ``impulse_covariates``, each a name, a list of names or ``None``."""
        groups = [_names(v, p) for v, p in zip((past, future, impulse), ROLE_PARAMETERS)]
        seen: dict[str, str] = {}
        for names, parameter in zip(groups, ROLE_PARAMETERS):
            for name in names:
                if name in seen:
                    raise ValueError(
                        f"Column {name!r} is named in both {seen[name]} and {parameter}; give "
                        "each column one role.")
                seen[name] = parameter
        return cls(*groups)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every covariate column of the frame, in the order the models read them."""
        return self.past + self.future + self.impulse

    @property
    def kinds(self) -> tuple[str, ...]:
        """``"past"``, ``"future"`` or ``"impulse"`` for each of :attr:`columns`."""
        return (("past",) * len(self.past) + ("future",) * len(self.future)
                + ("impulse",) * len(self.impulse))

    @property
    def controls(self) -> tuple[str, ...]:
        """The columns known ahead of time, which the latent dynamics read."""
        return self.future + self.impulse

    def role_of(self, column: str) -> str:
        return ROLE_PARAMETERS[("past", "future", "impulse").index(
            self.kinds[self.columns.index(column)])]

    def check_against(self, reserved: dict[str, str]) -> None:
        """Refuse a covariate that is also the id, time, event or a target column
        (``reserved`` maps those names to their parameter)."""
        for column in self.columns:
            if column in reserved:
                raise ValueError(
                    f"Column {column!r} is named in both {self.role_of(column)} and "
                    f"{reserved[column]}; give each column one role.")

    def check_frame(self, df: pd.DataFrame, id_col: str, argument: str,
                    columns: Sequence[str] | None = None) -> None:
        """``df`` has each covariate of ``columns`` (default: all), numeric and finite where
        given."""
        for column in self.columns if columns is None else columns:
            if column not in df.columns:
                raise ValueError(
                    f"{argument} has no column {column!r} ({self.role_of(column)}); its "
                    f"columns are {list(df.columns)}. Add it, or fix {self.role_of(column)}=.")
            check_value_column(df, id_col, column, argument, kind="Covariate")

    def state(self) -> dict:
        return {"past": list(self.past), "future": list(self.future),
                "impulse": list(self.impulse)}

    @classmethod
    def from_state(cls, state: dict | None) -> CovariateRoles:
        state = state or {}
        return cls(*(tuple(state.get(k, ())) for k in ("past", "future", "impulse")))


def fit_input_scaler(values: np.ndarray, kinds: Sequence[str],
                     enabled: bool = True) -> ChannelScaler:
    """Scaling of covariate columns ``values`` (rows, columns; NaN where not given).

    Past and future covariates are standardised like targets. Impulses are only divided by
    their mean absolute non-zero amount, never shifted: 0 must stay "nothing given".
    """
    scaler = ChannelScaler.fit(values, enabled=enabled)
    for j, kind in enumerate(kinds):
        if kind == "impulse":
            amounts = np.abs(values[:, j])
            amounts = amounts[np.isfinite(amounts) & (amounts > 0)]
            scaler.mean[j] = 0.0
            scaler.std[j] = float(amounts.mean()) if enabled and len(amounts) else 1.0
    return scaler


def control_rows(times: np.ndarray, values: np.ndarray, row_series: np.ndarray,
                 n_series: int, kinds: Sequence[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each series' control changes, padded to the batch's busiest series.

    Parameters
    ----------
    times : ndarray, shape (rows,)
        Model times of the rows (each series' rows in time order).
    values : ndarray, shape (rows, controls)
        Scaled control values, NaN where a row does not give that control.
    row_series : ndarray of int, shape (rows,)
        The batch position of each row's series.
    n_series : int
    kinds : sequence of {"future", "impulse"}
        Kind of each control column.

    Returns
    -------
    at : ndarray, shape (n_series, K)
        Times of the changes (padding: 0).
    steps : ndarray, shape (n_series, K, n_future)
        Jumps of the future covariates at those times: the value given minus the value held
        before (held values start at 0, the training mean).
    impulses : ndarray, shape (n_series, K, n_impulse)
        Amounts given at those times (0 where none).

    Examples
    --------
    >>> at, steps, impulses = control_rows(np.array([0.0, 1.0, 2.0]),
    ...     np.array([[1.0, np.nan], [np.nan, 5.0], [3.0, np.nan]]), np.zeros(3, int), 1,
    ...     ["future", "impulse"])
    >>> at.tolist(), steps[0, :, 0].tolist(), impulses[0, :, 0].tolist()
    ([[0.0, 1.0, 2.0]], [1.0, 0.0, 2.0], [0.0, 5.0, 0.0])
    """
    kinds = list(kinds)
    future = [j for j, k in enumerate(kinds) if k == "future"]
    impulse = [j for j, k in enumerate(kinds) if k == "impulse"]
    given = ~np.isnan(values)
    keep = given.any(axis=1)
    times, values, given, row_series = times[keep], values[keep], given[keep], row_series[keep]
    counts = np.bincount(row_series, minlength=n_series)
    width = int(counts.max()) if len(counts) else 0
    slot = np.arange(len(row_series)) - np.repeat(np.cumsum(counts) - counts, counts)
    at = np.zeros((n_series, width))
    at[row_series, slot] = times
    steps = np.zeros((n_series, width, len(future)))
    for out, j in enumerate(future):
        # Held value before each row: the last given value of this column in the series.
        held = pd.Series(np.where(given[:, j], values[:, j], np.nan)).groupby(row_series).ffill()
        before = held.groupby(row_series).shift(1).fillna(0.0).to_numpy()
        steps[row_series, slot, out] = np.where(given[:, j], values[:, j] - before, 0.0)
    impulses = np.zeros((n_series, width, len(impulse)))
    for out, j in enumerate(impulse):
        impulses[row_series, slot, out] = np.where(given[:, j], values[:, j], 0.0)
    return at, steps, impulses


class StaticTable:
    """Fitted encoding of a ``static_df``: one row of numbers per series.

    Numeric (and boolean) columns are standardised with their training mean and standard
    deviation; other columns (strings, categories) become one indicator per category seen in
    training. Each source column also gets a flag that is 1 where its value is known, and a
    missing value is encoded as 0 (the training mean, or no category), so that static tables
    with gaps (unknown height, weight) need no imputation.

    Examples
    --------
    >>> static = pd.DataFrame({"unique_id": ["a", "b"], "age": [60.0, None],
    ...                        "sex": ["f", "m"]})
    >>> table = StaticTable.fit(static, "unique_id")
    >>> table.feature_names
    ['age', 'age_known', 'sex=f', 'sex=m', 'sex_known']
    >>> table.features(static, np.array(["b"]), "unique_id").tolist()
    [[0.0, 0.0, 0.0, 1.0, 1.0]]
    """

    def __init__(self, id_col: str, columns: list[str], categories: dict[str, list],
                 mean: dict[str, float], std: dict[str, float]):
        self.id_col = id_col
        self.columns = columns
        self.categories = categories
        self.mean = mean
        self.std = std

    @staticmethod
    def _frame(static_df: object, id_col: str, argument: str) -> pd.DataFrame:
        """``static_df`` with the id as a column (it may be the index, as the datasets give
        it), one row per id."""
        if not isinstance(static_df, pd.DataFrame):
            raise TypeError(f"{argument} must be a pandas DataFrame with one row per series "
                            f"(column or index {id_col!r}); got {type(static_df).__name__}.")
        frame = static_df
        if id_col not in frame.columns:
            if frame.index.name != id_col:
                raise ValueError(
                    f"{argument} has no column {id_col!r} and its index is not named "
                    f"{id_col!r}; key it by the series id, e.g. "
                    f"{argument}.rename_axis({id_col!r}).")
            frame = frame.reset_index()
        repeated = frame[id_col].duplicated()
        if repeated.any():
            raise ValueError(
                f"{argument} has {int(repeated.sum())} repeated series ids, e.g. "
                f"{show(frame[id_col][repeated].iloc[0])}; give one row per series.")
        return frame

    @classmethod
    def fit(cls, static_df: pd.DataFrame, id_col: str,
            argument: str = "static_df") -> StaticTable:
        frame = cls._frame(static_df, id_col, argument)
        columns = [c for c in frame.columns if c != id_col]
        if not columns:
            raise ValueError(f"{argument} has no column besides {id_col!r}; add the static "
                             "features or leave static_df=None.")
        categories, mean, std = {}, {}, {}
        for column in columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values.dtype):
                numbers = values.to_numpy(dtype=float, na_value=np.nan)
                if np.isinf(numbers).any():
                    raise ValueError(f"Static column {column!r} of {argument} has infinite "
                                     "values; replace them with NaN (unknown) or a number.")
                known = numbers[np.isfinite(numbers)]
                mean[column] = float(known.mean()) if len(known) else 0.0
                spread = float(known.std()) if len(known) else 0.0
                std[column] = spread if spread > 0 else 1.0
            else:
                categories[column] = sorted({str(v) for v in values.dropna()})
        return cls(id_col, columns, categories, mean, std)

    @property
    def feature_names(self) -> list[str]:
        names = []
        for column in self.columns:
            if column in self.categories:
                names += [f"{column}={c}" for c in self.categories[column]]
            else:
                names.append(column)
            names.append(f"{column}_known")
        return names

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def features(self, static_df: pd.DataFrame, ids: np.ndarray,
                 id_col: str | None = None, argument: str = "static_df") -> np.ndarray:
        """The encoded rows of ``ids`` (in that order), shape (len(ids), n_features).

        Raises
        ------
        ValueError
            When a series has no row or a fitted column is missing.
        """
        frame = self._frame(static_df, id_col or self.id_col, argument)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{argument} has no column(s) {missing}, which the model was "
                             f"fitted with; its columns are {list(frame.columns)}.")
        position = pd.Index(frame[self.id_col]).get_indexer(pd.Index(ids))
        if (position < 0).any():
            absent = np.asarray(ids)[position < 0]
            raise ValueError(
                f"{argument} has no row for {len(absent)} series, e.g. {show(absent[0])}; "
                "give every series a row of static features.")
        rows = frame.iloc[position]
        blocks = []
        for column in self.columns:
            values = rows[column]
            known = values.notna().to_numpy()
            if column in self.categories:
                text = values.astype(str).to_numpy()
                blocks += [((text == c) & known).astype(float) for c in self.categories[column]]
            else:
                if not pd.api.types.is_numeric_dtype(values.dtype):
                    raise TypeError(f"Static column {column!r} of {argument} was numeric in "
                                    f"training but has dtype {values.dtype} here.")
                numbers = values.to_numpy(dtype=float, na_value=np.nan)
                scaled = (numbers - self.mean[column]) / self.std[column]
                blocks.append(np.where(known, scaled, 0.0))
            blocks.append(known.astype(float))
        return np.stack(blocks, axis=1)

    def state(self) -> dict:
        return {"id_col": self.id_col, "columns": list(self.columns),
                "categories": {k: list(v) for k, v in self.categories.items()},
                "mean": dict(self.mean), "std": dict(self.std)}

    @classmethod
    def from_state(cls, state: dict) -> StaticTable:
        return cls(state["id_col"], list(state["columns"]), dict(state["categories"]),
                   dict(state["mean"]), dict(state["std"]))
