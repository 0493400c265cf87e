"""Adversarial inputs of issue #26: row order, memory budgets, tiny scales and the small
cases a hostile user found. Each test is seeded and takes a second or two."""

import numpy as np
import pandas as pd
import pytest

from latode import LatentODEForecaster
from latode.data.converter import series_codes


def decay_frame(n=12, k=6, seed=0):
    """y' = -0.7 y on irregular grids, ids as strings that do not sort as they appear."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2, size=(n, k)), axis=1)
    y = rng.uniform(-2, 2, size=(n, 1)) * np.exp(-0.7 * t)
    return pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(n)], k),
                         "ds": t.ravel(), "y": y.ravel()})


def tiny_forecaster(**kw):
    params = dict(latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=8, max_epochs=2,
                  batch_size=4, verbose=0, random_state=0, time_scale=1.0,
                  validation_fraction=0.25)
    params.update(kw)
    return LatentODEForecaster(**params)


def history(model):
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in model.history_]


def test_shuffled_rows_give_the_same_fit_and_forecast():
    df = decay_frame()
    shuffled = df.sample(frac=1.0, random_state=1)
    a = tiny_forecaster().fit(df)
    b = tiny_forecaster().fit(shuffled)
    assert history(a) == history(b)
    # Same weights: the same forecast to the last bit from the same context.
    pd.testing.assert_frame_equal(a.predict(df, horizon=[1.0]), b.predict(df, horizon=[1.0]))
    # A shuffled context batches the series in another order; the adaptive solver's shared
    # step control then moves the numbers within its tolerance only.
    key = ["unique_id", "ds"]
    pd.testing.assert_frame_equal(
        a.predict(shuffled, horizon=[1.0]).sort_values(key, ignore_index=True),
        a.predict(df, horizon=[1.0]).sort_values(key, ignore_index=True), rtol=1e-4)


@pytest.mark.parametrize("ids", [["b", "a", "c"], [3, 1.5, 2], [(1, 0), (0, 2), (0, 1)]])
def test_the_fit_order_of_series_is_the_sorted_ids_whatever_the_rows(ids):
    codes, uniques = series_codes(pd.Series(ids + ids[::-1]))
    assert list(uniques) == sorted(ids) and list(np.asarray(uniques)[codes]) == ids + ids[::-1]


def test_ids_that_cannot_be_compared_are_ordered_by_their_repr():
    class Tag:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return f"Tag({self.name})"

    a, b = Tag("a"), Tag("b")
    for ids in ([b, a, b], [a, b, a]):
        codes, uniques = series_codes(pd.Series(ids, dtype=object))
        assert list(uniques) == [a, b] and list(uniques[codes]) == ids
