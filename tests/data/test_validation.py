"""One test per kind of bad frame: each gives a clear error naming column, series and fix."""

import numpy as np
import pandas as pd
import pytest

from latode.data import IrregularFrameConverter, validate_long_frame
from latode.data.times import parse_time_unit


def good_frame():
    return pd.DataFrame({
        "unique_id": ["a", "a", "b", "b"],
        "ds": [0.0, 1.0, 0.5, 2.0],
        "y": [1.0, 2.0, np.nan, 3.0],
        "z": [np.nan, 1.0, 0.0, 0.0],
    })


def test_good_frame_passes_and_infers_numeric_targets():
    spec = validate_long_frame(good_frame())
    assert spec.target_cols == ("y", "z")


@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda df: df.iloc[0:0], ValueError, ["empty"]),
        (lambda df: df.rename(columns={"ds": "when"}), ValueError, ["'ds'", "time_col"]),
        (lambda df: df.rename(columns={"unique_id": "sid"}), ValueError, ["'unique_id'", "id_col"]),
        (lambda df: df.assign(ds=[0.0, np.nan, 0.5, 2.0]), ValueError, ["'ds'", "NaN", "series 'a'"]),
        (lambda df: df.assign(ds=pd.to_datetime(["2024-01-01", None, "2024-01-02", "2024-01-03"])),
         ValueError, ["'ds'", "NaT", "series 'a'"]),
        (lambda df: df.assign(ds=[0.0, 0.0, 0.5, 2.0]), ValueError, ["duplicate", "series 'a'", "groupby"]),
        (lambda df: df.assign(z=[np.inf, 1.0, 0.0, 0.0]), ValueError, ["'z'", "infinite", "series 'a'"]),
        (lambda df: df.assign(y=[np.nan, np.nan, 1.0, 1.0], z=[np.nan, np.nan, 1.0, 1.0]),
         ValueError,
         ["no observed value", "'a'"]),
        (lambda df: df.assign(unique_id=["a", None, "b", "b"]), ValueError, ["'unique_id'", "missing"]),
        (lambda df: df.assign(ds=["0", "1", "2", "3"]), TypeError, ["'ds'", "pd.to_datetime"]),
        (lambda df: df.assign(ds=[pd.Timestamp("2024-01-01", tz="UTC"),
                                  pd.Timestamp("2024-01-02", tz="Europe/Paris"),
                                  pd.Timestamp("2024-01-01", tz="UTC"),
                                  pd.Timestamp("2024-01-03", tz="UTC")]),
         ValueError, ["time zones", "utc=True"]),
        (lambda df: df[["unique_id", "ds"]], ValueError, ["no numeric value column"]),
        (lambda df: df.assign(unique_id=pd.Series(["a", "a", 1, 1], dtype=object)), TypeError,
         ["'unique_id'", "['int', 'str']", ".astype(str)"]),
    ],
    ids=["empty", "missing-time", "missing-id", "nan-time", "nat-time",
         "duplicates", "infinite", "unobserved-series", "missing-id-value", "string-times",
         "mixed-tz", "no-values", "mixed-id-types"],
)
def test_bad_frames_raise_clear_errors(mutate, error, words):
    with pytest.raises(error) as info:
        validate_long_frame(mutate(good_frame()))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_non_numeric_target_is_a_type_error():
    df = good_frame().assign(y=["1", "2", "x", "3"])
    with pytest.raises(TypeError, match=r"'y'.*non-numeric.*to_numeric"):
        validate_long_frame(df, target_cols=["y", "z"])
    # with target_cols=None a text column is not a channel: it is left out, by design
    assert validate_long_frame(df).target_cols == ("z",)


def test_channel_never_observed():
    with pytest.raises(ValueError, match=r"\['z'\].*no observed value"):
        validate_long_frame(good_frame().assign(z=np.nan))


def test_not_a_dataframe_is_a_type_error():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        validate_long_frame(np.zeros((3, 3)))


def test_missing_named_target_column():
    with pytest.raises(ValueError, match="no value column"):
        validate_long_frame(good_frame(), target_cols=["y", "w"])


def test_unsorted_rows_are_sorted_and_user_frame_untouched():
    df = good_frame().iloc[[3, 0, 2, 1]]
    before = df.copy()
    conv = IrregularFrameConverter().fit(df)
    packed = conv.pack(df)
    assert df.equals(before)
    assert list(packed.ids) == ["b", "a"]  # order of first appearance
    assert np.all(np.diff(packed.times[packed.indptr[0]:packed.indptr[1]]) > 0)


def test_predict_frame_of_wrong_time_kind():
    conv = IrregularFrameConverter().fit(good_frame())
    other = good_frame().assign(ds=pd.to_timedelta([0, 1, 2, 3], unit="h"))
    with pytest.raises(TypeError, match="'ds' of df holds timedelta values.*fitted on float"):
        conv.pack(other)


def test_timestamps_finer_than_float32_name_the_series_plainly():
    # 1e7 and 1e7 + 0.25 are distinct float64 keys but one float32 time: the batch cannot
    # hold both, and the error names the series as the user wrote it (3, not np.int64(3)).
    df = pd.DataFrame({"unique_id": [3, 3, 3], "ds": [0.0, 1e7, 1e7 + 0.25],
                       "y": [1.0, 2.0, 3.0]})
    packed = IrregularFrameConverter(time_scale=None).fit_pack(df)
    with pytest.raises(ValueError, match=r"^Series 3 has timestamps closer together.*"
                                         r"merge \(e\.g\. average\) those rows"):
        packed.union_batch()


@pytest.mark.parametrize("kwargs, match", [
    (dict(id_col="ds"), r"id_col and time_col are both 'ds'"),
    (dict(target_cols=[]), r"target_cols is empty"),
    (dict(target_cols=["y", "y"]), r"target_cols names \['y'\] more than once"),
    (dict(target_cols=["y", "unique_id"]), r"target_cols includes \['unique_id'\].*id, time"),
])
def test_degenerate_column_settings_are_refused(kwargs, match):
    df = pd.DataFrame({"unique_id": ["a", "a"], "ds": [0.0, 1.0], "y": [1.0, 2.0]})
    with pytest.raises(ValueError, match=match):
        validate_long_frame(df, **kwargs)


def test_boolean_columns_are_not_taken_as_values_by_default():
    df = pd.DataFrame({"unique_id": ["a", "a"], "ds": [0.0, 1.0], "y": [1.0, 2.0],
                       "flag": [True, False]})
    assert validate_long_frame(df).target_cols == ("y",)
    with pytest.raises(TypeError, match=r"'flag'.*bool"):  # named explicitly: still refused
        validate_long_frame(df, target_cols=["y", "flag"])


@pytest.mark.parametrize("number", [5, 2.5, np.int64(3), True])
def test_a_plain_number_is_not_a_time_unit(number):
    with pytest.raises(TypeError, match=r"per=.* is a plain number.*'6h'"):
        parse_time_unit(number, "per")
    assert parse_time_unit(np.timedelta64(2, "h")) == 2 * 3600 * 10**9
