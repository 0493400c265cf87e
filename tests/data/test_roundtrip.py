"""Frames -> packed tensors -> frames, exactly, for every supported time type."""

import numpy as np
import pandas as pd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latode.data import IrregularFrameConverter

TIME_KINDS = ["float", "int", "datetime", "datetime-tz", "timedelta"]


def make_times(kind, raw):
    raw = np.asarray(raw, dtype=np.int64)
    if kind == "float":
        return pd.Series(raw / 7.0)
    if kind == "int":
        return pd.Series(raw)
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(raw, unit="s"))
    stamps = pd.Series(pd.Timestamp("2020-03-29") + pd.to_timedelta(raw * 1_000_003, unit="ns"))
    if kind == "datetime-tz":
        return stamps.dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    return stamps


@st.composite
def long_frames(draw):
    kind = draw(st.sampled_from(TIME_KINDS))
    n_series = draw(st.integers(1, 5))
    n_channels = draw(st.integers(1, 3))
    id_kind = draw(st.sampled_from(["str", "int"]))
    rows = []
    for s in range(n_series):
        times = draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=8, unique=True))
        for t in times:
            vals = [draw(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)))
                    for _ in range(n_channels)]
            rows.append((f"s{s}" if id_kind == "str" else 10 * s + 3, t, *vals))
        # every series and every channel needs one observed value
        rows[-1] = rows[-1][:2] + (1.5,) * n_channels
    perm = draw(st.permutations(range(len(rows))))
    rows = [rows[i] for i in perm]
    df = pd.DataFrame(rows, columns=["unique_id", "raw", *[f"c{i}" for i in range(n_channels)]])
    df["ds"] = make_times(kind, df["raw"]).to_numpy()
    if kind == "datetime-tz":
        df["ds"] = make_times(kind, df["raw"])
    df = df.drop(columns="raw").astype({f"c{i}": float for i in range(n_channels)})
    return df[["unique_id", "ds", *[f"c{i}" for i in range(n_channels)]]]


def sorted_frame(df):
    order = np.lexsort((df["ds"].rank(method="first").to_numpy(),
                        pd.factorize(df["unique_id"])[0]))
    return df.iloc[order].reset_index(drop=True)


def union_entries(conv, packed, batch):
    """The entries of a union batch (rows present in it) as a long frame in the user's units:
    what a model reads, put back the way :meth:`IrregularFrameConverter.unpack` would."""
    series_pos, grid_pos = np.nonzero(batch.present.numpy().astype(bool))
    # Row-major order, series then time: the order of the series' rows in ``packed``.
    keys = packed.keys[packed.rows_of(batch.series)]
    mask = batch.mask.numpy().astype(bool)[series_pos, grid_pos]
    values = np.where(mask, batch.values.numpy()[series_pos, grid_pos], np.nan)
    values = conv.scaler_.inverse_transform(values)
    ids = packed.ids[batch.series[series_pos]]
    return conv.to_frame(ids, keys, {c: values[:, i] for i, c in enumerate(conv.channels)})


@settings(max_examples=250, deadline=None)
@given(long_frames())
def test_frames_round_trip_through_union_tensors(df):
    conv = IrregularFrameConverter(standardize=False).fit(df)
    packed = conv.pack(df)
    expected = sorted_frame(df)
    # packed -> frame
    pd.testing.assert_frame_equal(conv.unpack(packed), expected)
    # union grid tensors (float64) -> frame: batching loses no observation or mask
    union = packed.union_batch(dtype=torch.float64)
    pd.testing.assert_frame_equal(union_entries(conv, packed, union), expected)
    assert int(union.mask.sum()) == int(df.iloc[:, 2:].notna().to_numpy().sum())
    assert torch.all(union.times[1:] > union.times[:-1])
    # each row sits at its own model time: grid time since the series' first row + origin
    series_pos, grid_pos = np.nonzero(union.present.numpy().astype(bool))
    np.testing.assert_allclose(union.times.numpy()[grid_pos] + union.origins[series_pos],
                               packed.times, rtol=1e-12, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(long_frames())
def test_standardisation_is_inverted(df):
    conv = IrregularFrameConverter(standardize=True).fit(df)
    packed = conv.pack(df)
    observed = packed.values[~np.isnan(packed.values)]
    assert np.all(np.isfinite(observed))
    back = conv.unpack(packed)
    expected = sorted_frame(df)
    pd.testing.assert_frame_equal(back[["unique_id", "ds"]], expected[["unique_id", "ds"]])
    np.testing.assert_allclose(back.iloc[:, 2:].to_numpy(), expected.iloc[:, 2:].to_numpy(),
                               rtol=1e-9, atol=1e-6)


def test_time_scaling_maps_training_span_to_unit_interval_and_back():
    df = pd.DataFrame({"unique_id": ["a"] * 3, "y": [1.0, 2.0, 3.0],
                       "ds": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05"])})
    conv = IrregularFrameConverter().fit(df)
    packed = conv.pack(df)
    np.testing.assert_allclose(packed.times, [0.0, 0.25, 1.0])
    axis = conv.time_axis_
    later = axis.from_keys(axis.to_keys(np.array([1.5])))
    assert later.iloc[0] == pd.Timestamp("2024-01-07")
    hourly = IrregularFrameConverter(time_scale="h").fit(df).pack(df)
    np.testing.assert_allclose(hourly.times, [0.0, 24.0, 96.0])


def test_converter_state_round_trip():
    df = pd.DataFrame({"unique_id": [1, 1, 2], "ds": [0.0, 2.0, 1.0], "y": [1.0, 2.0, 4.0]})
    conv = IrregularFrameConverter(time_scale=2.0).fit(df)
    clone = IrregularFrameConverter.from_state(conv.state())
    pd.testing.assert_frame_equal(clone.unpack(clone.pack(df)), conv.unpack(conv.pack(df)))
