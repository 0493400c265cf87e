"""The range arithmetic of ``benchmarks/physionet_ranges.py`` against hand-computed answers
(no data set is read and no model is fitted)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from forecast import Task, evaluate
from physionet_ranges import range_rows, range_scale, summarize

NAN = np.nan


@pytest.fixture
def task():
    # Values already in the units of the full range: y spans [0, 1] over series a-c, and
    # series a and b alone span [0, 0.5]; z is constant in a and b and unobserved in c.
    train = pd.DataFrame({"unique_id": ["a", "a", "b", "c"], "ds": [0.0, 1.0, 0.0, 0.0],
                          "y": [0.0, 0.5, 0.25, 1.0], "z": [2.0, 2.0, NAN, NAN]})
    context = pd.DataFrame({"unique_id": ["t"], "ds": [0.0], "y": [0.4], "z": [2.0]})
    target = pd.DataFrame({"unique_id": ["t"], "ds": [1.0], "y": [0.6], "z": [NAN]})
    return Task("toy", train, context, target, ["y", "z"], pd.Series({"y": 1.0, "z": 1.0}))


def test_range_scale_is_max_minus_min_of_the_chosen_series(task):
    assert range_scale(task, np.array(["a", "b", "c"])).to_dict() == {"y": 1.0, "z": 1.0}
    assert range_scale(task, np.array(["a", "b"]))["y"] == 0.5
    # A constant or unobserved channel keeps unit scale, as the protocol's scaling does.
    assert range_scale(task, np.array(["a"]))["z"] == 1.0
    assert range_scale(task, np.array(["c"]))["z"] == 1.0


def test_a_narrower_range_scales_the_same_forecast_s_mse_by_its_square(task):
    forecast = task.target[["unique_id", "ds"]].assign(y=0.4, z=2.0)
    full = evaluate(task, forecast)["MSE"]
    assert full == pytest.approx(0.2 ** 2)
    narrow = replace(task, scale=range_scale(task, np.array(["a", "b"])))
    assert evaluate(narrow, forecast)["MSE"] == pytest.approx(full / 0.5 ** 2)


def test_range_rows_and_summary_compare_each_fraction_with_all_records(task):
    rows = range_rows(task, fractions=(1.0, 2 / 3), repeats=3, seed=0)
    assert {r["records"] for r in rows} == {3, 2}
    assert sum(r["fraction"] == 1.0 for r in rows) == 2  # one draw of all records, 2 models
    summary = summarize(rows)
    full = [s for s in summary if s["fraction"] == 1.0]
    assert all(s["full / this (median)"] == 1.0 for s in full)
    # A subset's range is never wider, so the same forecasts never score lower in its units.
    assert all(s["full / this (median)"] <= 1.0 for s in summary)
