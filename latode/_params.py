"""Parameter constraints for the estimator layer, with scikit-learn-style messages.

scikit-learn's ``_param_validation`` is private and may change under us, so this module keeps
a small equivalent: each estimator declares ``_parameter_constraints`` (a dict from parameter
name to a list of constraints, any of which may match) and calls :func:`validate_params` at the
start of ``fit``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Interval", "Options", "InstanceOf", "Predicate", "validate_params"]


class _Constraint:
    def matches(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    # A value of the wrong *type* is a TypeError, of the right type but out of range a
    # ValueError; subclasses say which kind of mismatch they detect.
    def type_matches(self, value: Any) -> bool:
        return self.matches(value)


@dataclass(frozen=True)
class Interval(_Constraint):
    """A real or integer number in ``[low, high]``; ``closed`` picks the inclusive ends.

    Examples
    --------
    >>> Interval(float, 0, 1, closed="neither").describe()
    'a float in (0, 1)'
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def type_matches(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int:
            return isinstance(value, numbers.Integral)
        return isinstance(value, numbers.Real)

    def matches(self, value: Any) -> bool:
        if not self.type_matches(value):
            return False
        left_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        right_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return bool(left_ok and right_ok)

    def describe(self) -> str:
        name = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{name} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options(_Constraint):
    """One of a fixed set of values (compared with ``==``)."""

    values: tuple

    def __init__(self, values: Iterable[Any]):
        object.__setattr__(self, "values", tuple(values))

    def type_matches(self, value: Any) -> bool:
        return any(isinstance(value, type(v)) for v in self.values)

    def matches(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class InstanceOf(_Constraint):
    """An instance of one of ``types`` (``None`` matches when ``type(None)`` is listed)."""

    types: tuple
    description: str = ""

    def __init__(self, *types: type, description: str = ""):
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "description", description)

    def matches(self, value: Any) -> bool:
        if bool in self.types:
            return isinstance(value, self.types)
        return isinstance(value, self.types) and not isinstance(value, bool)

    def describe(self) -> str:
        if self.description:
            return self.description
        names = [("None" if t is type(None) else t.__name__) for t in self.types]
        return "an instance of " + " or ".join(names)


@dataclass(frozen=True)
class Predicate(_Constraint):
    """Any value for which ``test(value)`` is true; ``description`` says what that means."""

    test: Callable[[Any], bool]
    description: str

    def matches(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        return self.description


def validate_params(estimator: Any) -> None:
    """Check every parameter of ``estimator`` against its ``_parameter_constraints``.

    Raises
    ------
    TypeError
        When the value is of a type no constraint accepts.
    ValueError
        When the value has an accepted type but is out of range.

    Examples
    --------
    >>> class Est:
    ...     _parameter_constraints = {"rtol": [Interval(float, 0, 1, closed="neither")]}
    ...     rtol = -3
    >>> validate_params(Est())
    Traceback (most recent call last):
    ...
    ValueError: The 'rtol' parameter of Est must be a float in (0, 1). Got -3 instead.
    """
    constraints = getattr(type(estimator), "_parameter_constraints", {})
    cls = type(estimator).__name__
    for name, options in constraints.items():
        value = getattr(estimator, name)
        if any(c.matches(value) for c in options):
            continue
        expected = " or ".join(c.describe() for c in options)
        message = f"The {name!r} parameter of {cls} must be {expected}. Got {value!r} instead."
        if any(c.type_matches(value) for c in options):
            raise ValueError(message)
        raise TypeError(message)
