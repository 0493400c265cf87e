"""LatentODEForecaster(point_process=True): events in, intensities and event draws out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latode import LatentODEForecaster, RNNForecaster
from latode.estimators._point_process import EventModel

TINY = dict(latent_dim=3, hidden=(12,), encoder="rnn", encoder_hidden=8, batch_size=8,
            verbose=0, random_state=0, point_process=True)


def poisson_frame(n_series=16, rate=4.0, length=5.0, seed=0, datetime=False):
    """Homogeneous Poisson events with a noisy value at each."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_series):
        for t in np.sort(rng.uniform(0, length, rng.poisson(rate * length))):
            rows.append((f"s{i}", t, np.cos(t) + 0.1 * rng.normal()))
    df = pd.DataFrame(rows, columns=["unique_id", "ds", "y"])
    if datetime:
        df["ds"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(df["ds"], unit="D")
    return df


@pytest.fixture(scope="module")
def frame():
    return poisson_frame()


@pytest.fixture(scope="module")
def fitted(frame):
    return LatentODEForecaster(max_epochs=10, learning_rate=0.01, **TINY).fit(frame)


def test_fitted_rate_recovers_a_homogeneous_process(fitted, frame):
    # The MLE of a homogeneous rate is events / exposure: 4 per unit by construction.
    intensity = fitted.predict_intensity(frame, horizon=[0.5, 1.0], n_samples=20)
    assert list(intensity.columns) == ["unique_id", "ds", "intensity", "intensity_q0.1",
                                       "intensity_q0.5", "intensity_q0.9"]
    assert (intensity["intensity"] > 0).all()
    assert intensity["intensity"].median() == pytest.approx(4.0, rel=0.35)
    assert (intensity["intensity_q0.1"] <= intensity["intensity_q0.9"]).all()
    assert "events_log_lik" in fitted.history_[-1]


def test_rates_are_reported_per_the_unit_asked(fitted, frame):
    per_one = fitted.predict_intensity(frame, horizon=[1.0], quantiles=None, n_samples=5)
    per_half = fitted.predict_intensity(frame, horizon=[1.0], quantiles=None, n_samples=5,
                                        per=0.5)
    np.testing.assert_allclose(per_half["intensity"], per_one["intensity"] / 2, rtol=1e-6)


def test_datetime_rates_default_to_per_day_and_convert_to_hours():
    df = poisson_frame(n_series=6, datetime=True)
    model = LatentODEForecaster(max_epochs=1, **TINY).fit(df)
    daily = model.predict_intensity(df, horizon=[pd.Timedelta("6h")], n_samples=4)
    hourly = model.predict_intensity(df, horizon=[pd.Timedelta("6h")], n_samples=4, per="h")
    np.testing.assert_allclose(hourly["intensity"], daily["intensity"] / 24, rtol=1e-6)
    assert daily["ds"].dtype == df["ds"].dtype
    # A plain number has no unit (pd.Timedelta(2) is 2 ns): refused, naming the argument.
    with pytest.raises(TypeError, match=r"per=2 is a plain number.*per must be durations with a unit"):
        model.predict_intensity(df, horizon=["6h"], per=2)
    with pytest.raises(TypeError, match=r"horizon=5 is a plain number.*horizon must be durations with a unit"):
        model.sample_events(df, horizon=5)
    assert len(model.sample_events(df, horizon="1D", n_samples=2)) > 0


def test_sampled_event_counts_match_the_integrated_intensity(fitted, frame):
    context = frame[frame["unique_id"].isin(["s0", "s1"])]
    horizon = 1.0
    events = fitted.sample_events(context, horizon, n_samples=300, random_state=1)
    last = context.groupby("unique_id")["ds"].max()
    assert list(events.columns) == ["sample_id", "unique_id", "ds"]
    offsets = events["ds"].to_numpy() - last[events["unique_id"]].to_numpy()
    assert (offsets > 0).all() and (offsets <= horizon + 1e-6).all()
    # Expected count: the posterior mean of Λ over the window, by Simpson's rule on
    # predict_intensity (an independent route through the model).
    grid = np.linspace(0, horizon, 41)
    rate = fitted.predict_intensity(context, horizon=list(grid[1:]), quantiles=None,
                                    n_samples=300, random_state=1)
    for series, group in rate.groupby("unique_id"):
        first = fitted.predict_intensity(context[context["unique_id"] == series],
                                         timestamps=[last[series] + 1e-9], quantiles=None,
                                         n_samples=300, random_state=1)["intensity"]
        values = np.concatenate([first.to_numpy(), group["intensity"].to_numpy()])
        h = grid[1] - grid[0]
        expected = h / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum()
                            + 2 * values[2:-1:2].sum())
        counts = events[events["unique_id"] == series].groupby("sample_id").size()
        counts = counts.reindex(range(300), fill_value=0)
        # Mean of 300 Poisson-mixture counts: within 4 standard errors.
        assert abs(counts.mean() - expected) < 4 * counts.std() / np.sqrt(300) + 0.05


def test_score_components_split_the_bound(fitted, frame):
    parts = fitted.score_components(frame, n_samples=4)
    assert set(parts) == {"observations", "events", "kl", "total"}
    assert parts["total"] == pytest.approx(fitted.score(frame, n_samples=4))
    assert all(np.isfinite(v) for v in parts.values())
    # The event term is per event, in rates per unit: about log 4 - 1 for a homogeneous
    # rate of 4 fitted by maximum likelihood (sum log λ - ∫ λ = n log λ - n).
    assert parts["events"] == pytest.approx(np.log(4.0) - 1.0, abs=0.5)


def test_event_col_marks_events_and_events_may_come_without_values(frame):
    df = frame.copy()
    df["is_event"] = True
    df.loc[df.index[::3], "is_event"] = False          # observations only
    extra = df.groupby("unique_id", as_index=False)["ds"].max()
    extra["ds"] += 0.01
    extra["y"] = np.nan                                 # events only
    extra["is_event"] = True
    df = pd.concat([df, extra], ignore_index=True)
    model = LatentODEForecaster(max_epochs=1, event_col="is_event", **TINY).fit(df)
    assert model.converter_.channels == ("y",)          # the marker is not a channel
    score = model.score(df)
    flipped = df.assign(is_event=df["is_event"] | True)
    assert model.score(flipped) != pytest.approx(score)


def test_a_frame_of_events_only_is_a_pure_point_process(frame):
    events = frame[["unique_id", "ds"]]
    model = LatentODEForecaster(max_epochs=2, encoder="ode-rnn", **{
        k: v for k, v in TINY.items() if k != "encoder"}).fit(events)
    assert model.converter_.channels == ()
    assert np.isfinite(model.score(events))
    assert (model.predict_intensity(events, horizon=[1.0])["intensity"] > 0).all()


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("objective", ["reconstruct", "extrapolate"])
def test_both_solves_and_objectives_train(frame, adjoint, objective):
    model = LatentODEForecaster(max_epochs=1, adjoint=adjoint, objective=objective,
                                **TINY).fit(frame)
    record = model.history_[-1]
    assert np.isfinite(record["train_loss"]) and record["nfe_backward"] >= 0
    assert np.isfinite(record["events_log_lik"])


def test_save_and_load_keep_the_intensity(fitted, frame, tmp_path):
    path = fitted.save(tmp_path / "pp.pt")
    loaded = LatentODEForecaster.load(path)
    pd.testing.assert_frame_equal(loaded.predict_intensity(frame, horizon=[1.0]),
                                  fitted.predict_intensity(frame, horizon=[1.0]))


@pytest.mark.parametrize("make, error, match", [
    (lambda df: df.assign(e=1.0), TypeError, "'e'.*boolean"),
    (lambda df: df.assign(e="yes"), TypeError, "'e'.*boolean"),
    (lambda df: df.assign(e=-1), ValueError, "'e'.*negative"),
    (lambda df: df.assign(e=pd.array([None] + [True] * (len(df) - 1), dtype="boolean")),
     ValueError, "'e'.*missing"),
    (lambda df: df.assign(e=False), ValueError, "No row.*event"),
    (lambda df: df, ValueError, "no column 'e'.*event_col"),
])
def test_bad_event_columns_are_refused(frame, make, error, match):
    model = LatentODEForecaster(max_epochs=1, event_col="e", **TINY)
    with pytest.raises(error, match=match):
        model.fit(make(frame))


def test_event_col_needs_point_process(frame):
    params = dict(TINY, point_process=False)
    with pytest.raises(ValueError, match="point_process=True"):
        LatentODEForecaster(max_epochs=1, event_col="e", **params).fit(frame.assign(e=True))


def test_intensity_methods_need_a_point_process(frame):
    plain = LatentODEForecaster(max_epochs=1, **dict(TINY, point_process=False)).fit(frame)
    for call in (lambda: plain.predict_intensity(frame, horizon=[1.0]),
                 lambda: plain.sample_events(frame, 1.0),
                 lambda: plain.score_components(frame)):
        with pytest.raises(ValueError, match="point_process=True"):
            call()
    with pytest.raises(TypeError):
        RNNForecaster(point_process=True)


@pytest.mark.parametrize("horizon", [-1.0, 0, "1D", None])
def test_sample_events_refuses_bad_horizons(fitted, frame, horizon):
    with pytest.raises(ValueError, match="horizon"):
        fitted.sample_events(frame, horizon)


def test_row_order_never_makes_negative_time_gaps(fitted, frame):
    # Rows are ordered by time within each series before anything reads them, so a frame
    # whose rows are shuffled within each series (consecutive rows with negative gaps)
    # describes the same events. (Series keep their order: posterior draws go to series in
    # order of appearance.)
    shuffled = frame.sample(frac=1.0, random_state=0).sort_values(
        "unique_id", key=lambda ids: ids.str[1:].astype(int), kind="stable")
    assert (np.diff(shuffled["ds"].to_numpy()) < 0).sum() > len(frame) // 4
    assert fitted.score(shuffled) == pytest.approx(fitted.score(frame), rel=1e-6)
    pd.testing.assert_frame_equal(
        fitted.predict_intensity(shuffled, horizon=[1.0]).sort_values("unique_id",
                                                                       ignore_index=True),
        fitted.predict_intensity(frame, horizon=[1.0]).sort_values("unique_id",
                                                                    ignore_index=True))


def test_sampled_events_of_a_series_do_not_depend_on_the_other_series(fitted, frame):
    # Own generator (seed and id), own bound: alone or among others, in any order or batch.
    ids = frame["unique_id"].unique()
    together = fitted.sample_events(frame, horizon=2.0, n_samples=3, random_state=5)
    batch_size = fitted.batch_size
    fitted.set_params(batch_size=1)
    try:
        backwards = fitted.sample_events(frame.iloc[::-1], horizon=2.0, n_samples=3,
                                         random_state=5)
    finally:
        fitted.set_params(batch_size=batch_size)
    for sid in ids[:3]:
        alone = fitted.sample_events(frame[frame["unique_id"] == sid], horizon=2.0,
                                     n_samples=3, random_state=5)
        mine = together[together["unique_id"] == sid].reset_index(drop=True)
        assert len(mine) > 0
        pd.testing.assert_frame_equal(alone, mine, rtol=1e-4)
        pd.testing.assert_frame_equal(
            backwards[backwards["unique_id"] == sid].reset_index(drop=True), mine, rtol=1e-4)


def test_the_point_process_is_a_component_handed_the_forecasters_pieces(fitted, frame):
    # Not a mixin reaching into its host: the forecaster builds an EventModel from its fitted
    # module and converter at each call (so set_params reaches it) and delegates.
    assert not issubclass(LatentODEForecaster, EventModel)
    events = fitted._event_model("predict_intensity")
    assert events.module is fitted.module_ and events.converter is fitted.converter_
    kwargs = dict(horizon=[0.5, 1.0], level=[80], n_samples=4, random_state=2)
    pd.testing.assert_frame_equal(events.predict_intensity(frame, **kwargs),
                                  fitted.predict_intensity(frame, **kwargs))


def test_intensity_and_forecast_summaries_are_named_and_read_alike(fitted, frame):
    # One builder writes the summary columns of the values and of the intensity.
    kwargs = dict(horizon=[1.0], quantiles=[0.25, 0.75], level=[50, 90], n_samples=8)
    rates = fitted.predict_intensity(frame, **kwargs)
    forecast = fitted.predict(frame, **kwargs)
    assert list(rates.columns[2:]) == [c.replace("y", "intensity", 1)
                                       for c in forecast.columns[2:]]
    # The 50% interval's bounds are the quartiles, however they are asked for.
    for frame_, name in ((rates, "intensity"), (forecast, "y")):
        np.testing.assert_array_equal(frame_[f"{name}-lo-50"], frame_[f"{name}_q0.25"])
        np.testing.assert_array_equal(frame_[f"{name}-hi-50"], frame_[f"{name}_q0.75"])
        assert (frame_[f"{name}-lo-90"] <= frame_[f"{name}-lo-50"]).all()
