"""Times, durations and frequencies as users give them, read in one place.

Users give times in three ways: Python values (``predict(horizon=["6h"])``,
``time_scale=pd.Timedelta("1D")``), JSON values (MLflow ``params``, which hold strings and
numbers only) and command-line text (``--horizon 6h,12h``). Each of them goes through this
module, so that a value is accepted or refused, and named in errors, alike everywhere:

* :func:`parse_duration` -- a positive ``Timedelta`` from ``"6h"``, ``"h"``, ``"P1D"`` or a
  ``Timedelta``; a plain number (or text of one) is refused, as pandas would read it as
  nanoseconds;
* :func:`parse_step` -- a positive step (``horizon``, ``freq``, ``step_size``) along a time axis
  of a given kind: a number for numeric times, a duration otherwise;
* :func:`parse_times` / :func:`user_times` -- text and JSON times in the type of a time axis.

:class:`~latode.data.time_axis.TimeAxis` then maps what these return onto model time.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latode.data.validation import show

if TYPE_CHECKING:
    from latode.data.time_axis import TimeAxis

__all__ = ["TimeArgumentError", "is_plain_number", "is_unitless", "parse_duration",
           "parse_step", "parse_time_unit", "time_step", "parse_times", "user_times",
           "model_time_per_unit"]

#: Text that reads as a number without a unit: "5", "-2.5", ".5", "1e3".
_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

#: What a time of each kind of time axis looks like, for messages.
_EXPECTED_TIMES = {
    "float": "numbers",
    "timedelta": "durations such as '6h' or '1 days 02:00:00'",
    "datetime": "ISO 8601 datetimes such as '2024-03-01T06:00'",
}


class TimeArgumentError(TypeError, ValueError):
    """A time, duration or step of the wrong kind for the time axis: a number where durations
    are needed, a duration or text where numbers are, or text that reads as neither.

    It is both a ``TypeError`` and a ``ValueError``: whether a wrong value is of the wrong type
    (``5`` for a duration) or of the right type with the wrong content (``"soon"``) is not
    a distinction users act on, and code that catches either keeps working.
    """


def is_plain_number(value: object) -> bool:
    """A number without a time unit (``np.timedelta64`` counts as an integer to Python).

    Examples
    --------
    >>> is_plain_number(5), is_plain_number(np.float32(2.5)), is_plain_number(True)
    (True, True, True)
    >>> is_plain_number(np.timedelta64(1, "h")), is_plain_number("5")
    (False, False)
    """
    return isinstance(value, (numbers.Real, bool)) and not isinstance(value, np.timedelta64)


def is_unitless(value: object) -> bool:
    """A plain number or text of one (``"5"``, ``"-2.5"``, ``"1e3"``): what has no time unit.

    Text counts because command-line and JSON values arrive as text, and
    ``pd.Timedelta("5")`` is 5 nanoseconds.

    Examples
    --------
    >>> is_unitless("5"), is_unitless(" -2.5 "), is_unitless(3)
    (True, True, True)
    >>> is_unitless("5h"), is_unitless(pd.Timedelta("1h"))
    (False, False)
    """
    if isinstance(value, str):
        return _NUMBER_TEXT.fullmatch(value.strip()) is not None
    return is_plain_number(value)


def parse_duration(value: object, name: str) -> pd.Timedelta:
    """A positive duration from what users write for one.

    Parameters
    ----------
    value : str, Timedelta, datetime.timedelta or numpy.timedelta64
        ``"6h"``, ``"30min"``, ``"1 days 02:00:00"``, ISO 8601 ``"P1DT2H"``, or a unit alone
        (``"h"``, ``"D"``, ``"min"``: one of it, as in pandas frequencies).
    name : str
        The argument or option named in errors (``"horizon"``, ``"--freq"``).

    Returns
    -------
    pandas.Timedelta

    Raises
    ------
    TimeArgumentError
        For a plain number or text of one (it has no unit), and for anything that does not
        read as a duration (including ``NaT``).
    ValueError
        For a duration of zero or less.

    Examples
    --------
    >>> parse_duration("6h", "horizon")
    Timedelta('0 days 06:00:00')
    >>> parse_duration("D", "freq")
    Timedelta('1 days 00:00:00')
    >>> parse_duration("6", "horizon")
    Traceback (most recent call last):
    ...
    latode.data.times.TimeArgumentError: horizon='6' is a plain number, ...
    """
    if is_unitless(value):
        raise TimeArgumentError(
            f"{name}={value!r} is a plain number, but the times are datetimes or timedeltas: "
            f"{name} must be durations with a unit, such as '6h', '30min' or '1D' (pandas "
            "would read a bare number as nanoseconds)."
        )
    try:
        if isinstance(value, str) and value.strip().isalpha():
            # A unit alone ("h", "D") is one of it, as in pandas frequency strings; other text
            # ("6h", "P1D") is read whole.
            duration = pd.Timedelta(1, unit=value.strip())
        else:
            duration = pd.Timedelta(value)
    except (ValueError, TypeError) as error:
        raise TimeArgumentError(
            f"{name}={value!r} is not a duration: {name} must be durations such as '6h', "
            f"'30min', '1D', 'h' or pd.Timedelta(hours=6) ({error})."
        ) from None
    if duration is pd.NaT:  # pd.Timedelta("nan") and pd.Timedelta(None) are NaT, not errors
        raise TimeArgumentError(f"{name}={value!r} is missing (NaT); {name} must be durations "
                                "such as '6h', '30min' or '1D'.")
    _check_positive(duration > pd.Timedelta(0), value, name)
    return duration


def parse_step(value: object, kind: str, name: str, *, text: bool = False
               ) -> float | pd.Timedelta:
    """A positive step (``horizon``, ``freq``, ``step_size``) along a time axis of ``kind``.

    Parameters
    ----------
    value : number, str, Timedelta, ...
        A number of time units for numeric times; a duration (see :func:`parse_duration`)
        for datetimes and timedeltas.
    kind : {"float", "datetime", "timedelta"}
        The kind of the time axis (:attr:`TimeAxis.kind <latode.data.time_axis.TimeAxis>`).
    name : str
        The argument or option named in errors.
    text : bool, default False
        ``value`` comes from text (the command line, JSON ``params``), where a number may be
        written as a string: ``"2.5"`` then reads as 2.5 on numeric times. Python callers
        keep the default, so that a string never passes for a number.

    Returns
    -------
    float or pandas.Timedelta

    Raises
    ------
    TimeArgumentError
        For a value of the wrong kind: not a number on numeric times, not a duration on
        others.
    ValueError
        For a step that is not positive and finite.

    Examples
    --------
    >>> parse_step(2, "float", "horizon")
    2.0
    >>> parse_step("2", "float", "--horizon", text=True)
    2.0
    >>> parse_step("6h", "datetime", "freq")
    Timedelta('0 days 06:00:00')
    """
    if kind != "float":
        return parse_duration(value, name)
    if text and isinstance(value, str) and is_unitless(value):
        value = float(value)
    if not is_plain_number(value) or isinstance(value, bool):
        raise TimeArgumentError(
            f"{name} must be numbers, since the times are numbers (a step is a positive "
            f"number of time units); got {show(value)} of type {type(value).__name__}."
        )
    step = float(value)
    _check_positive(math.isfinite(step) and step > 0, value, name)
    return step


def _check_positive(positive: bool, value: object, name: str) -> None:
    if not positive:
        raise ValueError(f"{name} must be positive and finite: steps and durations count "
                         f"forward in time; got {show(value)}.")


def parse_time_unit(unit: str | pd.Timedelta | None, name: str = "time_unit") -> int:
    """Nanoseconds in the duration ``unit`` (``"h"``, ``"D"``, ``"30min"``, a Timedelta, ...),
    1 for ``None``; see :func:`parse_duration` for what is accepted and refused.

    Examples
    --------
    >>> parse_time_unit("h")
    3600000000000
    """
    if unit is None:
        return 1
    return int(parse_duration(unit, name).value)


def time_step(value: object, times: pd.Series, name: str = "horizon") -> float | pd.Timedelta:
    """``value`` as a step of the time column ``times``: :func:`parse_step` for the kind of
    axis the column's dtype makes.

    Examples
    --------
    >>> time_step("6h", pd.Series(pd.to_datetime(["2024-01-01"])))
    Timedelta('0 days 06:00:00')
    >>> time_step(2, pd.Series([0.0, 1.0]))
    2.0
    """
    # Datetimes and timedeltas both take durations; which of the two does not matter here.
    kind = "float" if pd.api.types.is_numeric_dtype(times) else "datetime"
    return parse_step(value, kind, name)


def parse_times(values: Sequence | pd.Series, kind: str, name: str) -> pd.Series:
    """Times from text or JSON values (ISO 8601 strings, numbers) in the type of a time axis
    of ``kind``; a Series keeps its index. Time zones are left as they are (see
    :func:`user_times`).

    Raises
    ------
    ValueError
        For values that do not read as times of that kind, naming ``name`` and the form
        expected.

    Examples
    --------
    >>> parse_times(["2024-03-01T06:00", "2024-03-02"], "datetime", "--timestamps").tolist()
    [Timestamp('2024-03-01 06:00:00'), Timestamp('2024-03-02 00:00:00')]
    >>> parse_times(["1", 2.5], "float", "timestamps").tolist()
    [1.0, 2.5]
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values))
    try:
        if kind == "float":
            return series.astype(np.float64)
        if kind == "timedelta":
            return pd.to_timedelta(series)
        # ISO 8601 for text: without a format pandas guesses one from the first value, and
        # may read "01/02" month-first.
        strings = all(isinstance(v, str) for v in series.dropna())
        return pd.to_datetime(series, format="ISO8601" if strings else None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} must be {_EXPECTED_TIMES[kind]}; could not read "
                         f"{series.head(3).tolist()!r} ({error}).") from None


def user_times(values: Sequence | pd.Series, axis: TimeAxis, name: str) -> pd.Series:
    """:func:`parse_times` in the time type of ``axis``, time zone included: naive datetimes
    are taken to be in the axis' zone, others are converted to it (to UTC, then naive, for
    an axis of naive datetimes).

    Examples
    --------
    >>> from latode.data.time_axis import TimeAxis
    >>> axis = TimeAxis("datetime", "Europe/Paris", "datetime64[ns, Europe/Paris]", 0, 1.0)
    >>> user_times(["2024-03-01T06:00"], axis, "timestamps").tolist()
    [Timestamp('2024-03-01 06:00:00+0100', tz='Europe/Paris')]
    """
    times = parse_times(values, axis.kind, name)
    if axis.kind != "datetime":
        return times
    if axis.tz is not None:
        naive = times.dt.tz is None
        return times.dt.tz_localize(axis.tz) if naive else times.dt.tz_convert(axis.tz)
    if times.dt.tz is not None:
        return times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def model_time_per_unit(axis: TimeAxis, per: object = None, name: str = "per") -> float:
    """Model time units in one ``per`` of the user's time on ``axis``: the unit of rates and
    of event-time densities.

    Parameters
    ----------
    axis : TimeAxis
        A fitted converter's ``time_axis_``.
    per : number or duration, optional
        A positive number for numeric times (default 1.0); a duration for datetimes and
        timedeltas (default one day), as :func:`parse_step` reads them.
    name : str
        The argument named in errors.

    Examples
    --------
    >>> from latode.data.time_axis import TimeAxis
    >>> axis = TimeAxis(kind="timedelta", tz=None, dtype="timedelta64[ns]", origin=0,
    ...                 scale=3.6e12)  # one model time unit is an hour
    >>> model_time_per_unit(axis), model_time_per_unit(axis, "30min")
    (24.0, 0.5)
    """
    default = 1.0 if axis.kind == "float" else pd.Timedelta(days=1)
    step = parse_step(default if per is None else per, axis.kind, name)
    return (step if axis.kind == "float" else step.value) / axis.scale
