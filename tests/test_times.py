"""latode.data.times: the one reader of times, durations and steps, and the callers that use it
(the forecast targets, the MLflow adapter and the CLI) accepting and refusing alike."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from latode import cli
from latode.data.targets import _offset_keys
from latode.data.time_axis import TimeAxis
from latode.data.times import (
    TimeArgumentError,
    is_plain_number,
    is_unitless,
    model_time_per_unit,
    parse_duration,
    parse_step,
    parse_time_unit,
    parse_times,
    time_step,
    user_times,
)
from latode.tracking._adapters import forecast_arguments

HOUR = pd.Timedelta("1h")


def axis(kind: str, tz: str | None = None) -> TimeAxis:
    dtype = {"float": "float64", "timedelta": "timedelta64[ns]"}.get(
        kind, "datetime64[ns]" if tz is None else f"datetime64[ns, {tz}]")
    return TimeAxis(kind=kind, tz=tz, dtype=dtype, origin=0, scale=1.0)


def model_of(kind: str, tz: str | None = None) -> SimpleNamespace:
    """What the adapter and the targets read of a fitted model: its time axis."""
    return SimpleNamespace(converter_=SimpleNamespace(time_axis_=axis(kind, tz)),
                           time_axis_=axis(kind, tz))


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", [5, 2.5, np.int64(3), np.float32(1.5), True])
def test_plain_numbers_have_no_unit(value):
    assert is_plain_number(value) and is_unitless(value)


@pytest.mark.parametrize("value", ["5", " -2.5 ", "+3.", ".5", "1e3"])
def test_text_of_a_number_has_no_unit(value):
    assert is_unitless(value) and not is_plain_number(value)


@pytest.mark.parametrize("value", [np.timedelta64(1, "h"), HOUR, "5h", "h", "P1D", None])
def test_durations_and_other_things_have_a_unit_or_are_no_number(value):
    assert not is_unitless(value)


# ---------------------------------------------------------------- durations
@pytest.mark.parametrize("value, expected", [
    ("6h", 6 * HOUR), (" 6h ", 6 * HOUR), ("+6h", 6 * HOUR), ("30min", pd.Timedelta("30min")),
    ("h", HOUR), ("D", pd.Timedelta("1D")), ("min", pd.Timedelta("1min")),
    ("W", pd.Timedelta("7D")), ("1 days 02:00:00", pd.Timedelta("26h")),
    ("P1DT2H", pd.Timedelta("26h")), (pd.Timedelta("2h"), 2 * HOUR),
    (datetime.timedelta(hours=3), 3 * HOUR), (np.timedelta64(4, "h"), 4 * HOUR),
])
def test_accepted_durations(value, expected):
    assert parse_duration(value, "horizon") == expected


@pytest.mark.parametrize("value", [5, 2.5, np.int64(3), True, "5", "-2.5", "1e3"])
def test_a_number_is_not_a_duration(value):
    # pd.Timedelta(5) and pd.Timedelta("5") are 5 nanoseconds: never what a user means.
    with pytest.raises(TimeArgumentError,
                       match=r"^freq=.* is a plain number, but the times are datetimes or "
                       r"timedeltas: freq must be durations with a unit, such as '6h'"):
        parse_duration(value, "freq")


@pytest.mark.parametrize("value", ["soon", "1M", "M", "6 parsecs", [1, 2], object()])
def test_what_reads_as_no_duration_is_named(value):
    with pytest.raises(TimeArgumentError,
                       match=r"^horizon=.* is not a duration: horizon must be durations such "
                       r"as '6h', '30min', '1D', 'h'"):
        parse_duration(value, "horizon")


@pytest.mark.parametrize("value", ["nan", "NaT", None, np.timedelta64("NaT")])
def test_a_missing_duration_is_refused(value):
    # pandas reads these as NaT instead of failing; NaT would pass for -2**63 ns.
    with pytest.raises(TimeArgumentError, match=r"horizon=.* (is missing \(NaT\)|is not a "
                       r"duration)"):
        parse_duration(value, "horizon")


@pytest.mark.parametrize("value", ["-1h", "0s", pd.Timedelta(0), -HOUR])
def test_a_duration_must_be_positive(value):
    with pytest.raises(ValueError, match=r"^step_size must be positive and finite") as caught:
        parse_duration(value, "step_size")
    assert not isinstance(caught.value, TypeError)  # the kind was right, the value was not


def test_the_kind_error_is_both_a_type_and_a_value_error():
    # Callers caught TypeError (targets, time_scale) or ValueError (the MLflow adapter).
    assert issubclass(TimeArgumentError, TypeError)
    assert issubclass(TimeArgumentError, ValueError)


# -------------------------------------------------------------------- steps
@pytest.mark.parametrize("value", [2, 2.5, np.int64(2), np.float32(0.5), 1e300])
def test_numbers_are_steps_of_numeric_times(value):
    assert parse_step(value, "float", "horizon") == float(value)


def test_text_of_numbers_is_read_only_where_values_come_as_text():
    assert parse_step(" 2.5 ", "float", "--horizon", text=True) == 2.5
    with pytest.raises(TimeArgumentError, match=r"^horizon must be numbers, since the times "
                       r"are numbers .*; got '2.5' of type str"):
        parse_step("2.5", "float", "horizon")


@pytest.mark.parametrize("value", [HOUR, np.timedelta64(1, "h"), True, "1h", None])
def test_numeric_times_refuse_durations_and_other_things(value):
    with pytest.raises(TimeArgumentError, match=r"^freq must be numbers.*positive number"):
        parse_step(value, "float", "freq", text=True)


@pytest.mark.parametrize("value", [0, -1.0, np.nan, np.inf, "-2"])
def test_a_step_must_be_positive_and_finite(value):
    with pytest.raises(ValueError, match=r"^freq must be positive and finite: .*; got"):
        parse_step(value, "float", "freq", text=True)


@pytest.mark.parametrize("kind", ["datetime", "timedelta"])
def test_steps_of_datetimes_and_timedeltas_are_durations(kind):
    assert parse_step("6h", kind, "horizon") == 6 * HOUR
    with pytest.raises(TimeArgumentError, match="horizon=2 is a plain number"):
        parse_step(2, kind, "horizon")


def test_time_unit_and_time_step_use_the_same_rules():
    assert parse_time_unit(None) == 1
    assert parse_time_unit("h") == 3600 * 10**9
    assert parse_time_unit(np.timedelta64(2, "h"), "per") == 2 * 3600 * 10**9
    with pytest.raises(TypeError, match=r"time_scale=24 is a plain number.*'6h'"):
        parse_time_unit(24, "time_scale")
    with pytest.raises(ValueError, match=r"time_scale='soon' is not a duration"):
        parse_time_unit("soon", "time_scale")
    stamps = pd.Series(pd.to_datetime(["2024-01-01"]))
    assert time_step("D", stamps, "step_size") == pd.Timedelta("1D")
    assert time_step(3, pd.Series([0, 1])) == 3.0
    with pytest.raises(ValueError, match=r"horizon must be numbers.*positive number"):
        time_step("2D", pd.Series([0.0, 1.0]))


# -------------------------------------------------------------------- times
def test_times_are_read_in_the_type_of_the_axis():
    assert parse_times(["1", 2.5], "float", "timestamps").tolist() == [1.0, 2.5]
    assert parse_times(["6h", "1 days"], "timedelta", "t").tolist() == [6 * HOUR,
                                                                        pd.Timedelta("1D")]
    stamps = parse_times(pd.Series(["2024-03-01T06:00", None], index=[5, 7]), "datetime", "t")
    assert stamps.index.tolist() == [5, 7] and stamps.iloc[0] == pd.Timestamp("2024-03-01 06:00")
    assert stamps.isna().iloc[1]


@pytest.mark.parametrize("kind, values, expected", [
    ("float", ["a", "b"], "numbers"),
    ("timedelta", ["soon"], "durations such as '6h'"),
    ("datetime", ["yesterday"], "ISO 8601 datetimes such as '2024-03-01T06:00'"),
])
def test_unreadable_times_name_the_argument_and_the_form(kind, values, expected):
    with pytest.raises(ValueError, match=rf"^--timestamps must be {expected}.*; could not "
                       rf"read \[{values[0]!r}"):
        parse_times(values, kind, "--timestamps")


def test_user_times_take_the_time_zone_of_the_axis():
    paris = axis("datetime", "Europe/Paris")
    naive, aware = ["2024-03-01T06:00"], ["2024-03-01T06:00+00:00"]
    assert user_times(naive, paris, "t").iloc[0] == pd.Timestamp("2024-03-01 06:00",
                                                                 tz="Europe/Paris")
    assert str(user_times(aware, paris, "t").dt.tz) == "Europe/Paris"
    assert user_times(aware, paris, "t").iloc[0] == pd.Timestamp("2024-03-01 06:00", tz="UTC")
    utc = user_times(["2024-03-01T07:00+01:00"], axis("datetime"), "t")
    assert utc.dt.tz is None and utc.iloc[0] == pd.Timestamp("2024-03-01 06:00")
    assert user_times(["1"], axis("float"), "t").tolist() == [1.0]


# ------------------------------------------------------------------ callers
def test_targets_adapter_and_cli_accept_the_same_durations():
    model = model_of("datetime")
    keys = _offset_keys(model.converter_, ["6h", "h", pd.Timedelta("30min")], "horizon")
    assert keys.tolist() == [6 * HOUR.value, HOUR.value, HOUR.value // 2]
    args = forecast_arguments(model, {"horizon": ["6h", "h"], "freq": None})
    assert args["horizon"] == [6 * HOUR, HOUR]
    assert cli._horizon("6h,h", "datetime", None) == ([6 * HOUR, HOUR], None)
    assert cli._horizon("12h", "datetime", "4h") == (12 * HOUR, 4 * HOUR)
    args = forecast_arguments(model, {"horizon": ["12h"], "freq": "4h"})
    assert (args["horizon"], args["freq"]) == (12 * HOUR, 4 * HOUR)


@pytest.mark.parametrize("call", [
    lambda: _offset_keys(model_of("datetime").converter_, ["6h", "6"], "horizon"),
    lambda: forecast_arguments(model_of("datetime"), {"horizon": ["6"]}),
    lambda: cli._horizon("6h,6", "datetime", None),
])
def test_targets_adapter_and_cli_refuse_a_number_as_a_duration_alike(call):
    with pytest.raises(TimeArgumentError, match=r"horizon='6' is a plain number.*must be "
                       r"durations with a unit"):
        call()


def test_the_cli_and_the_adapter_read_numbers_of_numeric_times_from_text():
    model = model_of("float")
    assert cli._horizon("1, 2.5", "float", None) == ([1.0, 2.5], None)
    assert cli._horizon("2", "float", "0.5") == (2.0, 0.5)
    args = forecast_arguments(model, {"horizon": ["2", 3], "freq": ""})
    assert args["horizon"] == [2.0, 3.0] and args["freq"] is None
    with pytest.raises(ValueError, match=r"--freq must be numbers"):
        cli._horizon("2", "float", "6h")
    with pytest.raises(ValueError, match=r"^--horizon must be positive"):
        cli._horizon("-1", "float", None)
    with pytest.raises(cli.UsageError, match=r"--horizon is empty"):
        cli._horizon(" , ", "float", None)
    with pytest.raises(cli.UsageError, match=r"with --freq give one --horizon"):
        cli._horizon("1,2", "float", "0.5")


def test_cli_timestamps_use_the_axis_time_zone():
    model = model_of("datetime", "UTC")
    times = cli._timestamps("2024-03-01T06:00, 2024-03-02", model)
    assert times.tolist() == [pd.Timestamp("2024-03-01 06:00", tz="UTC"),
                              pd.Timestamp("2024-03-02", tz="UTC")]
    with pytest.raises(ValueError, match=r"^--timestamps must be ISO 8601 datetimes"):
        cli._timestamps("tomorrow", model)


def test_a_cli_file_with_unreadable_times_is_a_usage_error(tmp_path):
    path = tmp_path / "context.csv"
    pd.DataFrame({"id": [1], "time": ["soon"]}).to_csv(path, index=False)
    with pytest.raises(cli.UsageError, match=r"^column 'time' of .*context.csv' must be "
                       r"durations such as '6h'"):
        cli.read_frame(path, "time", "timedelta")
    with pytest.raises(cli.UsageError, match=r"must be ISO 8601 datetimes"):
        cli.read_frame(path, "time")


# --------------------------------------------------------------- model_time_per_unit
def test_model_time_per_unit_counts_model_units_in_one_user_unit():
    hours = TimeAxis(kind="datetime", tz=None, dtype="datetime64[ns]", origin=0,
                     scale=float(HOUR.value))
    assert model_time_per_unit(hours) == 24.0  # one day by default
    assert model_time_per_unit(hours, "30min") == 0.5
    numeric = TimeAxis(kind="float", tz=None, dtype="float64", origin=0.0, scale=4.0)
    assert model_time_per_unit(numeric) == 0.25
    assert model_time_per_unit(numeric, 2) == 0.5


@pytest.mark.parametrize("kind, per, error, message", [
    ("datetime", 2, TypeError, r"per=2 is a plain number"),
    ("datetime", "-1h", ValueError, r"per must be positive"),
    ("float", "1D", TypeError, r"per must be numbers"),
    ("float", 0, ValueError, r"per must be positive and finite"),
])
def test_model_time_per_unit_refuses_a_unit_of_the_wrong_kind(kind, per, error, message):
    axis = TimeAxis(kind=kind, tz=None, dtype="float64", origin=0, scale=1.0)
    with pytest.raises(error, match=message):
        model_time_per_unit(axis, per)
