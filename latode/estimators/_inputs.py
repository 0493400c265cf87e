"""The one gate for array inputs of latode's array estimators (classifiers, density
estimators) and for the small arguments every estimator shares (``n_samples``).

scikit-learn's ``validate_data`` does the checking (dtype, dimensions, NaN/inf, feature count
and names); its messages do not always say which argument was wrong ("Expected 2D array",
"could not convert string to float"), so every error leaving here names the argument and the
method, keeping scikit-learn's text (its estimator checks match on it).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils import assert_all_finite, column_or_1d
from sklearn.utils.multiclass import check_classification_targets

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn < 1.6
    def validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["check_rows", "check_class_labels", "check_positive_int"]


def _naming(error: Exception, argument: str, estimator: Any, method: str) -> Exception:
    """``error`` again (ValueError or TypeError), its message prefixed with what was wrong."""
    kind = TypeError if isinstance(error, TypeError) else ValueError
    return kind(f"Invalid {argument} for {type(estimator).__name__}.{method}: {error}")


def check_rows(estimator: Any, X: Any, *, reset: bool, dtype: Any, method: str) -> np.ndarray:
    """``X`` as a finite 2-D array of ``dtype`` with the fitted number of columns.

    Parameters
    ----------
    estimator : BaseEstimator
        ``reset=True`` records ``n_features_in_`` (and ``feature_names_in_``) on it;
        ``reset=False`` checks ``X`` against them.
    X : array-like of shape (n_samples, n_features)
    reset : bool
        True in ``fit``, False afterwards.
    dtype : dtype or list of dtypes
        As for scikit-learn's ``check_array``.
    method : str
        The public method, for messages.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    ValueError, TypeError
        Naming ``X`` and the method, with scikit-learn's description of the problem.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> check_rows(BaseEstimator(), [1.0, 2.0], reset=True, dtype=np.float64, method="fit")
    Traceback (most recent call last):
    ...
    ValueError: Invalid X for BaseEstimator.fit: Expected 2D array, got 1D array instead: ...
    """
    try:
        return validate_data(estimator, X, reset=reset, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise _naming(error, "X", estimator, method) from error


def check_class_labels(estimator: Any, y: Any, n_rows: int, *, method: str) -> np.ndarray:
    """``y`` as a 1-D array of class labels, one per row of ``X``.

    Parameters
    ----------
    estimator : BaseEstimator
        For messages.
    y : array-like of shape (n_rows,)
        Labels of any type (strings, ints, ...), no NaN.
    n_rows : int
        Rows of the (checked) ``X``.
    method : str
        The public method, for messages.

    Returns
    -------
    ndarray of shape (n_rows,)

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> check_class_labels(BaseEstimator(), ["a", "b"], 3, method="fit")
    Traceback (most recent call last):
    ...
    ValueError: X has 3 rows but y has 2 labels; pass one label in y per row of X.
    """
    name = type(estimator).__name__
    if y is None:
        # scikit-learn's wording, which its estimator checks look for.
        raise ValueError(f"{name} requires y to be passed, but the target y is None; pass "
                         "one label per row of X.")
    try:
        labels = column_or_1d(y, warn=True)
        assert_all_finite(labels, input_name="y")
        check_classification_targets(labels)
    except (ValueError, TypeError) as error:
        raise _naming(error, "y", estimator, method) from error
    if len(labels) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(labels)} labels; pass one label "
                         "in y per row of X.")
    return labels


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1: a TypeError for other types (bools included), a ValueError
    below 1.

    Examples
    --------
    >>> check_positive_int(3, "n_samples")
    3
    >>> check_positive_int(0, "n_samples")
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be a positive int (1 or more); got 0.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int (1 or more); got {value!r} of type "
                        f"{type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (1 or more); got {value!r}.")
    return int(value)
