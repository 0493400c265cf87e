"""Adversarial inputs of issue #26: row order, memory budgets, tiny scales and the small
cases a hostile user found. Each test is seeded and takes a second or two."""

import time

import numpy as np
import pandas as pd
import pytest
import torch

from latode import CNFDensityEstimator, LatentODEForecaster, RNNForecaster
from latode.data import targets as targets_module
from latode.data.converter import series_codes
from latode.estimators import _forecast_output as forecast_output


def poisson_frame(n_series, rate=4.0, length=5.0, seed=0):
    """Homogeneous Poisson events with a noisy value at each."""
    rng = np.random.default_rng(seed)
    rows = [(f"s{i}", t, np.cos(t) + 0.1 * rng.normal()) for i in range(n_series)
            for t in np.sort(rng.uniform(0, length, rng.poisson(rate * length)))]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


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


# ------------------------------------------------------------------ memory budgets
@pytest.fixture(scope="module")
def fitted():
    df = decay_frame()
    return tiny_forecaster(max_epochs=1).fit(df), df


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_a_forecast_solved_in_pieces_gives_the_numbers_of_one_solve(cls, monkeypatch):
    # A grid of 10**6 forecast times once asked for 25.6 GB in one solve; over the budget the
    # forecast is solved a few times at a time, with the same draws.
    df = decay_frame(n=3)
    model = (tiny_forecaster(rtol=1e-7, atol=1e-9) if cls is LatentODEForecaster
             else RNNForecaster(hidden_dim=8, max_epochs=1, verbose=0, random_state=0,
                                time_scale=1.0)).fit(df)
    kwargs = dict(horizon=2.0, freq=0.25, level=[80], n_samples=7)
    whole = model.predict(df, **kwargs)
    paths = model.sample(df, horizon=[0.5, 1.0], n_samples=3, random_state=2)
    monkeypatch.setattr(forecast_output, "MAX_SOLVE_PAIRS", 15)
    pd.testing.assert_frame_equal(model.predict(df, **kwargs), whole, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(
        model.sample(df, horizon=[0.5, 1.0], n_samples=3, random_state=2), paths, rtol=1e-5,
        atol=1e-6)


def test_pieces_of_forecast_times_stay_within_the_budget():
    bounds = forecast_output._pieces(np.array([3, 3, 3, 3, 9, 1]), 7)
    assert bounds.tolist() == [0, 2, 4, 5, 6]


def test_a_list_of_timestamps_over_the_cap_is_refused_before_any_solve(fitted):
    model, df = fitted
    with pytest.raises(ValueError, match=r"timestamps asks for 1,000,001 forecast times"):
        model.predict(df, np.arange(1, 10**6 + 2) * 1e-6)


def test_series_times_over_the_row_budget_are_refused_before_they_are_built(fitted,
                                                                           monkeypatch):
    model, df = fitted
    monkeypatch.setattr(targets_module, "MAX_FORECAST_ROWS", 1000)
    with pytest.raises(ValueError, match=r"horizon asks for 100 forecast times of each of "
                                         r"12 series"):
        model.predict(df, horizon=1.0, freq=0.01)


@pytest.mark.parametrize("when", [1e12, -1e12])
def test_a_time_far_from_the_training_span_is_refused_at_once(fitted, when):
    model, df = fitted
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"timestamps asks for series 's\d+' .*model time "
                                         "units from its context"):
        model.predict(df, [when])
    with pytest.raises(ValueError, match="timestamps asks for series"):
        model.predict(df, pd.DataFrame({"unique_id": ["s1"], "ds": [when]}))
    assert time.perf_counter() - start < 5


@pytest.fixture(scope="module")
def events_model():
    df = poisson_frame(n_series=4, length=3.0)
    model = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=8,
                                max_epochs=1, verbose=0, random_state=0,
                                point_process=True).fit(df)
    return model, df


@pytest.mark.parametrize("kwargs, words", [
    (dict(horizon=1e7), r"horizon=10000000.0 is 3.\d+e\+06 model time units"),
    (dict(horizon=1.0, n_samples=20_000), "n_samples=20000 draws"),
    (dict(horizon=1e5), "candidate events"),
])
def test_sample_events_over_the_budget_is_refused_before_thinning(events_model, kwargs,
                                                                  words, monkeypatch):
    # Thinning starts with a Poisson draw of candidate counts; the refusal must come first.
    # (Bounding the intensity before it solves over the whole horizon, which takes as long
    # as the model's dynamics make it, so the refusal is not timed.)
    model, df = events_model

    def thinning(*args, **kwargs):
        raise AssertionError("sample_events began to thin before refusing")

    monkeypatch.setattr(torch, "poisson", thinning)
    with pytest.raises(ValueError, match=words):
        model.sample_events(df, **kwargs)


def test_score_with_draws_over_the_budget_is_refused_naming_n_samples(fitted):
    model, df = fitted
    with pytest.raises(ValueError, match=r"score with n_samples=10000000 draws .* pass "
                                         r"n_samples=2796202 or fewer"):
        model.score(df, n_samples=10**7)


def test_score_in_smaller_batches_under_the_budget_is_finite(fitted):
    model, df = fitted
    assert np.isfinite(model.score(df, n_samples=50_000))


def test_cnf_sample_over_the_budget_is_refused_at_once():
    X = np.random.default_rng(0).normal(size=(64, 2))
    model = CNFDensityEstimator(hidden=(8,), max_epochs=1, batch_size=64, verbose=0,
                                random_state=0).fit(X)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_samples=1000000000 draws of 2 features would "
                                         r"take 14.9 GiB"):
        model.sample(10**9)
    assert time.perf_counter() - start < 1


# ------------------------------------------------------------------ tiny scales in the CNF
@pytest.mark.parametrize("scale", [1e-200, 1e-160])
def test_a_cnf_on_a_scale_whose_variance_underflows_is_refused(scale):
    # The exact answer for X * 1e-200 is ~918 nats; an underflowed variance scored -1.77.
    X = np.random.default_rng(0).normal(size=(64, 2)) * scale
    with pytest.raises(ValueError, match=r"column 0 has values too small to standardise"):
        CNFDensityEstimator(hidden=(8,), max_epochs=1, verbose=0, random_state=0).fit(X)


def test_a_cnf_on_a_constant_column_is_refused_naming_it():
    X = np.random.default_rng(0).normal(size=(64, 2))
    X[:, 1] = 3.0
    with pytest.raises(ValueError, match=r"column 1 is constant \(every value is 3.0\).*point "
                                         "mass.*Drop the column"):
        CNFDensityEstimator(hidden=(8,), max_epochs=1, verbose=0, random_state=0).fit(X)


def test_a_level_below_one_is_refused_as_a_fraction_not_read_as_percent(fitted):
    model, df = fitted
    with pytest.raises(ValueError, match=r"level is in percent.*write level=\[80\]"):
        model.predict(df, horizon=[1.0], level=[0.8])


def test_ids_one_and_one_point_zero_are_not_merged_silently():
    df = pd.DataFrame({"unique_id": pd.Series([1, 1, 1.0, 1.0], dtype=object),
                       "ds": [0.0, 1.0, 0.0, 1.0], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(TypeError, match=r"mixes series ids of types \['float', 'int'\]"):
        RNNForecaster(max_epochs=1, verbose=0).fit(df)


def test_a_complex_target_is_refused_not_cut_to_its_real_part():
    df = pd.DataFrame({"unique_id": [0, 0, 1, 1], "ds": [0.0, 1.0, 0.0, 1.0],
                       "y": np.array([1 + 1j, 2, 3, 4 - 2j])})
    with pytest.raises(TypeError, match="Value column 'y' of df is complex"):
        RNNForecaster(max_epochs=1, verbose=0).fit(df)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_a_model_file_with_python_objects_is_refused_without_advice_to_unpickle_it(tmp_path):
    import torch

    from latode.exceptions import InvalidCheckpointError

    torch.save({"latode_kind": "LatentODEForecaster", "x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InvalidCheckpointError, match="is not a latode file") as info:
        LatentODEForecaster.load(tmp_path / "evil.pt")
    assert "weights_only" not in str(info.value)
