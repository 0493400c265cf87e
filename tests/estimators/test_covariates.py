"""Covariates of LatentODEForecaster: static features, past, future and impulse covariates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latode import LatentODEForecaster, RNNForecaster
from latode.datasets import make_dosing

FAST = dict(latent_dim=3, hidden=(16,), encoder_hidden=8, max_epochs=2, verbose=0,
            random_state=0)


@pytest.fixture(scope="module")
def dosing():
    return make_dosing(n_series=10, hours=48.0, n_measurements=8, random_state=0)


def split(frame: pd.DataFrame, cut: float = 36.0):
    """Context up to ``cut``; future doses after it, with a closing 0 dose at 48 h."""
    context = frame[frame["ds"] <= cut]
    after = frame[(frame["ds"] > cut) & frame["dose"].notna()][["unique_id", "ds", "dose"]]
    closing = pd.DataFrame({"unique_id": frame["unique_id"].unique(), "ds": 48.0, "dose": 0.0})
    future = pd.concat([after, closing]).drop_duplicates(["unique_id", "ds"])
    return context, future.sort_values(["unique_id", "ds"], ignore_index=True)


@pytest.fixture(scope="module")
def dosed_model(dosing):
    return LatentODEForecaster(impulse_covariates="dose", **FAST).fit(
        dosing.frame, static_df=dosing.static)


def test_covariates_are_not_targets(dosed_model):
    assert dosed_model.converter_.channels == ("conc",)


def test_future_doses_drive_the_forecast(dosing, dosed_model):
    context, future = split(dosing.frame)
    times = {"timestamps": [40.0, 44.0, 47.0], "static_df": dosing.static,
             "quantiles": None, "n_samples": 8}
    base = dosed_model.predict(context, future_df=future, **times)
    again = dosed_model.predict(context, future_df=future, **times)
    pd.testing.assert_frame_equal(base, again)
    more = future.assign(dose=future["dose"] * 3 + 100.0)
    what_if = dosed_model.predict(context, future_df=more, **times)
    assert not np.allclose(base["conc"], what_if["conc"])


def test_a_series_forecast_depends_on_its_own_future_inputs_only(dosing, dosed_model):
    context, future = split(dosing.frame)
    kw = {"timestamps": [40.0, 47.0], "static_df": dosing.static, "quantiles": None,
          "n_samples": 8}
    base = dosed_model.predict(context, future_df=future, **kw)
    other = future.assign(dose=np.where(future["unique_id"] == 0, future["dose"] + 5000.0,
                                        future["dose"]))
    changed = dosed_model.predict(context, future_df=other, **kw)
    mine = base["unique_id"] == 0
    moved = (base["conc"] - changed["conc"]).abs()
    # The others move only by the batch's shared step control (solver tolerance).
    np.testing.assert_allclose(base.loc[~mine, "conc"], changed.loc[~mine, "conc"], rtol=1e-3)
    assert moved[mine].max() > 10 * moved[~mine].max()


def test_future_frames_that_cannot_serve_are_refused_by_name(dosing, dosed_model):
    context, future = split(dosing.frame)
    kw = {"timestamps": [40.0, 47.0], "static_df": dosing.static}
    with pytest.raises(ValueError, match="pass future_df="):
        dosed_model.predict(context, **kw)
    short = future[future["ds"] < 45.0]
    with pytest.raises(ValueError, match="does not reach the forecast of series"):
        dosed_model.predict(context, future_df=short, **kw)
    without = future[future["unique_id"] != 0]
    with pytest.raises(ValueError, match="forecast of series 0: it has no rows"):
        dosed_model.predict(context, future_df=without, **kw)
    early = pd.concat([future, pd.DataFrame({"unique_id": [3], "ds": [1.0], "dose": [50.0]})])
    with pytest.raises(ValueError, match="not after its context's last row"):
        dosed_model.predict(context, future_df=early, **kw)
    gap = future.assign(dose=future["dose"].where(future.index != 0))
    with pytest.raises(ValueError, match="Column 'dose' of future_df has 1 missing"):
        dosed_model.predict(context, future_df=gap, **kw)
    stranger = pd.concat([future, pd.DataFrame({"unique_id": [99], "ds": [47.0],
                                                "dose": [0.0]})])
    with pytest.raises(ValueError, match="Series 99 of future_df is not in context_df"):
        dosed_model.predict(context, future_df=stranger, **kw)
    with pytest.raises(ValueError, match="no column 'dose' \\(impulse_covariates\\)"):
        dosed_model.predict(context.drop(columns="dose"), future_df=future, **kw)


def test_interpolation_inside_the_context_needs_no_future(dosing, dosed_model):
    context, _ = split(dosing.frame)
    inside = context[context["conc"].notna()][["unique_id", "ds"]]
    fc = dosed_model.predict(context, timestamps=inside, static_df=dosing.static,
                             quantiles=None, n_samples=4)
    assert np.isfinite(fc["conc"]).all()


def test_static_features_are_required_and_matched_by_id(dosing, dosed_model):
    context, future = split(dosing.frame)
    with pytest.raises(ValueError, match="fitted with static features \\(weight\\)"):
        dosed_model.predict(context, timestamps=[40.0], future_df=future)
    with pytest.raises(ValueError, match="static_df has no row for 1 series, e.g. 4"):
        dosed_model.predict(context, timestamps=[40.0], future_df=future,
                            static_df=dosing.static.drop(index=4))
    kw = {"timestamps": [40.0], "future_df": future, "quantiles": None, "n_samples": 8}
    base = dosed_model.predict(context, static_df=dosing.static, **kw)
    # The same rows as a column instead of the index, in another order: the same forecast.
    shuffled = dosing.static.reset_index().sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(base, dosed_model.predict(context, static_df=shuffled, **kw))
    heavier = dosed_model.predict(context, static_df=dosing.static * 1.5, **kw)
    assert not np.allclose(base["conc"], heavier["conc"])


def test_save_and_load_keep_every_role(tmp_path, dosing, dosed_model):
    context, future = split(dosing.frame)
    path = tmp_path / "dosed.pt"
    dosed_model.save(path)
    loaded = LatentODEForecaster.load(path)
    kw = {"timestamps": [40.0, 47.0], "future_df": future, "static_df": dosing.static,
          "quantiles": None, "n_samples": 8}
    pd.testing.assert_frame_equal(dosed_model.predict(context, **kw),
                                  loaded.predict(context, **kw))


def test_past_covariates_are_read_not_forecast():
    rng = np.random.default_rng(0)
    t = np.tile(np.arange(6.0), 8)
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(8), 6), "ds": t,
                       "y": rng.normal(size=48), "lab": rng.normal(size=48)})
    model = LatentODEForecaster(past_covariates=["lab"], **FAST).fit(df)
    assert model.converter_.channels == ("y",)
    kw = {"horizon": [1.0], "quantiles": None, "n_samples": 4}
    base = model.predict(df, **kw)
    assert list(base.columns) == ["unique_id", "ds", "y"]
    moved = model.predict(df.assign(lab=df["lab"] + 3.0), **kw)
    assert not np.allclose(base["y"], moved["y"])
    with pytest.raises(ValueError, match="no column 'lab' \\(past_covariates\\)"):
        model.predict(df.drop(columns="lab"), **kw)


@pytest.mark.parametrize("kwargs, message", [
    (dict(past_covariates="dose", impulse_covariates="dose"),
     "'dose' is named in both past_covariates and impulse_covariates"),
    (dict(target_cols=["conc"], future_covariates="conc"),
     "target_cols includes \\['conc'\\], which is the id, time, event or a covariate"),
    (dict(impulse_covariates="amount"), "no column 'amount' \\(impulse_covariates\\)"),
    (dict(impulse_covariates="dose", point_process=True), "do not combine with point_process"),
])
def test_bad_roles_are_refused_at_fit(dosing, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentODEForecaster(**{**FAST, **kwargs}).fit(dosing.frame)


def test_a_non_numeric_covariate_is_refused(dosing):
    frame = dosing.frame.assign(dose=dosing.frame["dose"].astype(str))
    with pytest.raises(TypeError, match="Covariate column 'dose' of df has non-numeric"):
        LatentODEForecaster(impulse_covariates="dose", **FAST).fit(frame)


def test_the_gru_baseline_reads_the_same_covariates(dosing):
    """RNNForecaster takes the same roles: its forecast follows future doses and static
    features, and the same bad future frame is refused."""
    context, future = split(dosing.frame)
    rnn = RNNForecaster(hidden_dim=8, impulse_covariates="dose", max_epochs=2, verbose=0,
                        random_state=0).fit(dosing.frame, static_df=dosing.static)
    assert rnn.converter_.channels == ("conc",)
    kw = {"timestamps": [40.0, 47.0], "static_df": dosing.static, "quantiles": None}
    base = rnn.predict(context, future_df=future, **kw)
    doubled = rnn.predict(context, future_df=future.assign(dose=future["dose"] * 2 + 50), **kw)
    assert not np.allclose(base["conc"], doubled["conc"])
    heavier = rnn.predict(context, future_df=future, **{**kw, "static_df": dosing.static * 2})
    assert not np.allclose(base["conc"], heavier["conc"])
    with pytest.raises(ValueError, match="pass future_df="):
        rnn.predict(context, **kw)


def test_static_features_alone_reach_the_encoder():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(6), 5), "ds": np.tile(np.arange(5.0), 6),
                       "y": rng.normal(size=30)})
    static = pd.DataFrame({"unique_id": np.arange(6), "unit": list("abcabc"),
                           "age": [50.0, 60.0, None, 70.0, 40.0, 55.0]})
    model = LatentODEForecaster(**FAST).fit(df, static_df=static)
    kw = {"horizon": [1.0], "quantiles": None, "n_samples": 4}
    base = model.predict(df, static_df=static, **kw)
    other = model.predict(df, static_df=static.assign(unit=list("bcabca")), **kw)
    assert not np.allclose(base["y"], other["y"])


def test_backtests_read_the_windows_future_inputs_from_the_frame(dosing):
    """cross_validation takes the doses after each cutoff from df itself (known ahead) and
    the static features from static_df: each window's forecast is predict's with them."""
    model = LatentODEForecaster(impulse_covariates="dose", **FAST)
    cv = model.cross_validation(dosing.frame, horizon=12.0, n_windows=2, quantiles=None,
                                n_samples=8, static_df=dosing.static)
    cutoff = dosing.frame["ds"].max() - 24.0
    assert sorted(cv["cutoff"].unique()) == [cutoff, cutoff + 12.0]
    first = cv[cv["cutoff"] == cutoff]
    seen = dosing.frame[dosing.frame["ds"] <= cutoff]
    fitted = LatentODEForecaster(impulse_covariates="dose", **FAST).fit(
        seen, static_df=dosing.static)
    window = dosing.frame[(dosing.frame["ds"] > cutoff)
                          & (dosing.frame["ds"] <= cutoff + 12.0)]
    future = window[["unique_id", "ds", "dose"]].fillna({"dose": 0.0})
    expected = fitted.predict(seen,
                              window[["unique_id", "ds"]], future_df=future,
                              static_df=dosing.static, quantiles=None, n_samples=8)
    np.testing.assert_allclose(first["conc"].to_numpy(), expected["conc"].to_numpy())


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_past_and_held_future_covariates_round_trip(cls, tmp_path):
    """A lab read up to the origin and an infusion rate held between its changes: the rate
    after the context moves the forecast, and a saved model forecasts the same."""
    rng = np.random.default_rng(1)
    n, k = 8, 8
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(n), k),
                       "ds": np.tile(np.arange(float(k)), n),
                       "y": rng.normal(size=n * k), "lab": rng.normal(size=n * k),
                       "rate": np.tile([1.0, np.nan, np.nan, 2.0, np.nan, np.nan, 0.5, np.nan],
                                       n)})
    kwargs = {"past_covariates": "lab", "future_covariates": "rate", "max_epochs": 2,
              "verbose": 0, "random_state": 0}
    model = cls(**kwargs).fit(df)
    assert model.converter_.channels == ("y",)
    future = pd.DataFrame({"unique_id": np.repeat(np.arange(n), 2),
                           "ds": np.tile([8.5, 10.0], n), "rate": np.tile([3.0, 3.0], n)})
    kw = {"timestamps": [9.0, 10.0], "quantiles": None, "n_samples": 4}
    base = model.predict(df, future_df=future, **kw)
    other = model.predict(df, future_df=future.assign(rate=-2.0), **kw)
    assert not np.allclose(base["y"], other["y"])
    model.save(tmp_path / "m.pt")
    pd.testing.assert_frame_equal(cls.load(tmp_path / "m.pt").predict(df, future_df=future,
                                                                      **kw), base)
