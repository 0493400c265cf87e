"""The shrink arithmetic of ``benchmarks/physionet_shrink.py`` against hand-computed answers
(no data set is read and no model is fitted)."""

import numpy as np
import pandas as pd
import pytest
from physionet_shrink import shrink_weights, shrunk_forecast

NAN = np.nan


@pytest.fixture
def frames():
    # Around a mean of 0: series a was last read at 1 and then shows 0.5; series b was last
    # read at 2 and then shows 1 and 1 (three targets at half their last reading). Channel z
    # is never a target; channel y of series c is never read.
    context = pd.DataFrame({"unique_id": ["a", "a", "b", "c"], "ds": [0.0, 1.0, 0.0, 0.0],
                            "y": [3.0, 1.0, 2.0, NAN], "z": [1.0, NAN, 4.0, 5.0]})
    target = pd.DataFrame({"unique_id": ["a", "b", "b", "c"], "ds": [2.0, 1.0, 2.0, 1.0],
                           "y": [0.5, 1.0, 1.0, NAN], "z": [NAN, NAN, NAN, NAN]})
    return context, target, pd.Series({"y": 0.0, "z": 0.0})


def test_the_weight_is_least_squares_through_the_mean(frames):
    context, target, mean = frames
    weights = shrink_weights(context, target, ["y", "z"], mean)
    # sum(x y) / sum(x x) = (1 * 0.5 + 2 * 1 + 2 * 1) / (1 + 4 + 4)
    assert weights["y"] == pytest.approx(4.5 / 9.0)
    assert weights["z"] == 1.0  # no target values: the last value as it is


def test_the_shrunk_forecast_moves_the_last_value_toward_the_mean(frames):
    context, target, _ = frames
    mean = pd.Series({"y": 1.0, "z": 2.0})
    forecast = shrunk_forecast(context, target, ["y", "z"], mean, pd.Series({"y": 0.5,
                                                                             "z": 0.0}))
    # a: 1 + 0.5 (1 - 1); b: 1 + 0.5 (2 - 1); c never showed y: its mean. z: the mean.
    assert forecast["y"].tolist() == [1.0, 1.5, 1.5, 1.0]
    assert forecast["z"].tolist() == [2.0, 2.0, 2.0, 2.0]
