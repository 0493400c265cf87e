"""Give columns back in the dtype the user fitted with, where that dtype holds them exactly."""

from __future__ import annotations

import pandas as pd

__all__ = ["in_dtype_if_exact"]


def in_dtype_if_exact(values: pd.Series, dtype: str) -> pd.Series:
    """``values`` cast to ``dtype`` if every value survives the cast unchanged, else as given.

    Forecast times between integer timestamps (55.5 on an int64 column, 100 ms on
    whole-second datetimes) and context ids of another type than the training ids (0.5 or
    ``"p0"`` on a model fitted with integer ids) would otherwise be rounded, truncated or
    turned into other values.

    Examples
    --------
    >>> in_dtype_if_exact(pd.Series([55.0, 56.0]), "int64").dtype
    dtype('int64')
    >>> in_dtype_if_exact(pd.Series([55.0, 55.5]), "int64").tolist()
    [55.0, 55.5]
    >>> in_dtype_if_exact(pd.Series([100, 101]), "str").tolist()
    [100, 101]
    """
    try:
        cast = values.astype(dtype)
        if _holds_numbers(cast.dtype) != _holds_numbers(values.dtype):  # 100 -> "100"
            return values
        exact = bool((cast.astype(values.dtype) == values).all())
    except (TypeError, ValueError):  # e.g. Int64 refuses 55.5, int64 refuses "p0"
        return values
    return cast if exact else values


def _holds_numbers(dtype) -> bool:
    """A numeric dtype, or categories of numbers."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return pd.api.types.is_numeric_dtype(dtype)
