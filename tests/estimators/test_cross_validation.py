"""Forecaster.cross_validation: windows after shared cutoffs, no window sees its actuals."""

import numpy as np
import pandas as pd
import pytest

from latode import LatentODEForecaster, RNNForecaster


def frame(n_series=6, seed=0):
    """Irregular float times in [0, 10], a few per unit."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_series):
        times = np.sort(rng.choice(np.arange(0.0, 10.0, 0.25), size=24, replace=False))
        rows += [(f"s{i}", t, np.sin(t + i) + 0.1 * rng.normal()) for t in times]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


def rnn(**kw):
    return RNNForecaster(hidden_dim=4, max_epochs=2, verbose=0, random_state=0, **kw)


def test_windows_hold_each_series_observations_after_each_cutoff():
    df = frame()
    cv = rnn().cross_validation(df, horizon=2.0, n_windows=3, step_size=1.5, quantiles=None)
    last = df.ds.max()
    assert sorted(cv.cutoff.unique()) == pytest.approx([last - 5.0, last - 3.5, last - 2.0])
    for cutoff, window in cv.groupby("cutoff"):
        inside = df[(df.ds > cutoff) & (df.ds <= cutoff + 2.0)]
        assert sorted(zip(window.unique_id, window.ds)) == sorted(zip(inside.unique_id,
                                                                     inside.ds))
    assert (cv["y_actual"] == cv.merge(df, on=["unique_id", "ds"])["y_y"]).all()
    assert list(cv.columns[:3]) == ["unique_id", "ds", "cutoff"]


def test_one_fit_on_the_rows_before_the_first_cutoff_unless_refit():
    df = frame()
    model = rnn()
    cv = model.cross_validation(df, horizon=2.0, n_windows=2, quantiles=None)
    assert not hasattr(model, "module_")  # the estimator itself stays unfitted
    first = sorted(cv.cutoff.unique())[0]
    once = rnn().fit(df[df.ds <= first])
    second = cv[cv.cutoff > first]
    context = df[(df.ds <= second.cutoff.iloc[0]) & df.unique_id.isin(second.unique_id)]
    expected = once.predict(context, second[["unique_id", "ds"]], quantiles=None)
    np.testing.assert_allclose(second.sort_values(["unique_id", "ds"]).y,
                               expected.sort_values(["unique_id", "ds"]).y, rtol=1e-6)
    refit = rnn().cross_validation(df, horizon=2.0, n_windows=2, quantiles=None, refit=True)
    later = refit[refit.cutoff > first].sort_values(["unique_id", "ds"])
    assert not np.allclose(later.y, second.sort_values(["unique_id", "ds"]).y)


def test_datetime_times_take_durations_and_bands_come_along():
    df = frame(n_series=4)
    df["ds"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(df.ds, unit="D")
    model = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=8,
                                max_epochs=2, verbose=0, random_state=0)
    cv = model.cross_validation(df, horizon="2D", n_windows=1, quantiles=None, level=(80,),
                                n_samples=10)
    assert cv.cutoff.iloc[0] == df.ds.max() - pd.Timedelta("2D")
    assert {"y", "y-lo-80", "y-hi-80", "y_actual"} <= set(cv.columns)


@pytest.mark.parametrize("kwargs, words", [
    (dict(horizon="2D"), "positive number"),
    (dict(horizon=2.0, n_windows=0), "n_windows=0"),
    (dict(horizon=5.0, n_windows=3), "fewer windows"),
])
def test_bad_windows_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        rnn().cross_validation(frame(), **kwargs)
