"""Solver failures after ``fit``: in ``predict``, ``sample`` and ``score`` they raise
:class:`~latode.exceptions.SolverError` naming the remedy, never torchdiffeq's bare
``AssertionError`` and never a silent NaN.

Solver parameters changed with ``set_params`` after ``fit`` reach these methods (as they
reach a model after ``save``/``load``, which rebuilds the module from its parameters).
"""

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch

from latode._numerics import SolverOptions
from latode.estimators import LatentODEForecaster, RNNForecaster
from latode.estimators.classifier import ODENetClassifier
from latode.estimators.density import CNFDensityEstimator
from latode.exceptions import SolverError

REMEDY = r"Try looser tolerances \(rtol/atol\), a fixed-step solver"


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 2, size=(6, 6)), axis=1)
    return pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(6)], 6),
                         "ds": t.ravel(), "y": np.sin(t + np.arange(6)[:, None]).ravel()})


@pytest.fixture(scope="module")
def fitted():
    df = frame()
    model = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=8,
                                time_scale=1.0, max_epochs=2, verbose=0,
                                random_state=0).fit(df)
    return model, df


FORECAST_CALLS = {
    "predict": lambda model, df: model.predict(df, horizon=[0.5, 1.0], n_samples=4),
    "sample": lambda model, df: model.sample(df, horizon=[0.5, 1.0], n_samples=2),
    "score": lambda model, df: model.score(df, n_samples=2),
}


@pytest.mark.parametrize("method", FORECAST_CALLS)
def test_a_step_budget_set_after_fit_is_a_solver_error_naming_the_remedy(fitted, method):
    model, df = fitted
    # torchdiffeq's budget counts steps between consecutive output times: tight tolerances
    # make even the short gaps of the training grid (score) need more than one.
    starved = copy.deepcopy(model).set_params(max_num_steps=1, rtol=1e-9, atol=1e-10)
    with pytest.raises(SolverError, match=r"max_num_steps") as info:
        FORECAST_CALLS[method](starved, df)
    assert re.search(REMEDY, str(info.value))
    assert isinstance(info.value.__cause__, AssertionError)  # torchdiffeq's, translated


def test_the_same_model_forecasts_again_once_the_budget_is_restored(fitted):
    model, df = fitted
    before = FORECAST_CALLS["predict"](model, df)
    changed = copy.deepcopy(model).set_params(max_num_steps=1, rtol=1e-9, atol=1e-10)
    with pytest.raises(SolverError):
        FORECAST_CALLS["predict"](changed, df)
    changed.set_params(max_num_steps=model.max_num_steps, rtol=model.rtol, atol=model.atol)
    pd.testing.assert_frame_equal(FORECAST_CALLS["predict"](changed, df), before)


def test_solver_settings_after_fit_reach_the_forecast(fitted):
    model, df = fitted
    adaptive = FORECAST_CALLS["predict"](model, df)["y"].to_numpy()
    fine = copy.deepcopy(model).set_params(solver="rk4", step_size=0.01)
    coarse = copy.deepcopy(model).set_params(solver="euler", step_size=0.5)
    # rk4 with a small step agrees with dopri5; one Euler step of 0.5 does not: the
    # setting reached the solve.
    assert np.max(np.abs(FORECAST_CALLS["predict"](fine, df)["y"].to_numpy() - adaptive)) < 1e-4
    assert np.max(np.abs(FORECAST_CALLS["predict"](coarse, df)["y"].to_numpy() - adaptive)) \
        > 1e-4


def test_settings_after_fit_predict_as_after_save_and_load(fitted, tmp_path):
    model, df = fitted
    changed = copy.deepcopy(model).set_params(solver="rk4", step_size=0.25)
    changed.save(tmp_path / "model.pt")
    loaded = LatentODEForecaster.load(tmp_path / "model.pt")
    pd.testing.assert_frame_equal(FORECAST_CALLS["predict"](changed, df),
                                  FORECAST_CALLS["predict"](loaded, df))


@pytest.mark.parametrize("solver, step_size, match", [
    ("dopri5", None, "step size underflowed"),
    ("euler", 0.5, "forecast is not finite"),
])
def test_a_diverged_solve_is_an_error_not_nan(fitted, solver, step_size, match):
    model, df = fitted
    broken = copy.deepcopy(model).set_params(solver=solver, step_size=step_size)
    with torch.no_grad():  # weights that are not finite make the latent state NaN
        next(broken.module_.dynamics.parameters()).fill_(float("nan"))
    with pytest.raises(SolverError, match=match):
        FORECAST_CALLS["predict"](broken, df)
    with pytest.raises(SolverError):
        FORECAST_CALLS["score"](broken, df)


def test_a_bad_solver_parameter_set_after_fit_is_named(fitted):
    model, df = fitted
    with pytest.raises(ValueError, match="'max_num_steps' parameter of LatentODEForecaster"):
        FORECAST_CALLS["predict"](copy.deepcopy(model).set_params(max_num_steps=0), df)


def test_the_rnn_baseline_has_no_solve_to_fail():
    df = frame()
    model = RNNForecaster(hidden_dim=8, time_scale=1.0, max_epochs=1, verbose=0,
                          random_state=0).fit(df)
    assert "max_num_steps" not in model.get_params()  # no solve, so no solver settings
    assert np.isfinite(FORECAST_CALLS["predict"](model, df)["y"]).all()


def test_classifier_and_density_estimator_predict_time_failures_are_solver_errors():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 3)) + 2.0 * y[:, None]
    clf = ODENetClassifier(width=4, max_epochs=1, verbose=0, random_state=0).fit(X, y)
    clf.set_params(max_num_steps=1)
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(SolverError, match="max_num_steps"):
            method(X)
    cnf = CNFDensityEstimator(hidden=(4,), max_epochs=1, device="cpu", random_state=0).fit(X)
    cnf.set_params(max_num_steps=1)
    with pytest.raises(SolverError, match="max_num_steps"):
        cnf.score_samples(X)
    with pytest.raises(SolverError, match="max_num_steps"):
        cnf.sample(3, random_state=0)


@pytest.mark.parametrize("solver, step_size, match", [
    ("dopri5", None, "step size underflowed"),  # the adaptive solve notices Λ = NaN
    ("euler", 0.5, "not finite"),  # a fixed-step solve does not: our check does
])
def test_a_non_finite_intensity_is_an_error_in_every_point_process_method(solver, step_size,
                                                                         match):
    df = frame()
    model = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=8,
                                point_process=True, time_scale=1.0, max_epochs=1, verbose=0,
                                random_state=0).fit(df)
    model.set_params(solver=solver, step_size=step_size)
    with torch.no_grad():  # λ = softplus(NaN): thinning would keep nothing, silently
        model.module_.intensity.net[-1].bias.fill_(float("nan"))
    with pytest.raises(SolverError, match=match):
        model.sample_events(df, horizon=1.0, n_samples=2, random_state=0)
    with pytest.raises(SolverError, match=match):
        model.score_components(df, n_samples=2)


def _no_module(*args, **kwargs):
    raise RuntimeError("a module was built after fit")


def test_settings_after_fit_are_set_on_the_fitted_module_without_building_another(monkeypatch):
    df = frame()
    model = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="ode-rnn", encoder_hidden=4,
                                time_scale=1.0, max_epochs=1, verbose=0,
                                random_state=0).fit(df)
    model.set_params(rtol=1e-5, atol=1e-6, max_num_steps=500, encoder_solver="rk4")
    monkeypatch.setattr(model, "_build_module", _no_module)
    for call in FORECAST_CALLS.values():
        call(model, df)
    assert model.module_.solver == SolverOptions(rtol=1e-5, atol=1e-6, max_num_steps=500)
    # The ODE-RNN's options: its own method, the latent solve's tolerances, no adjoint.
    assert model.module_.encoder.solver == SolverOptions(method="rk4", rtol=1e-5, atol=1e-6,
                                                         max_num_steps=500)


def test_the_ode_net_predicts_with_the_current_settings_without_building_a_network(
        monkeypatch):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    X = rng.normal(size=(20, 3)) + 2.0 * y[:, None]
    clf = ODENetClassifier(width=4, adjoint=True, max_epochs=1, verbose=0,
                           random_state=0).fit(X, y)
    clf.set_params(solver="rk4", step_size=0.5)
    monkeypatch.setattr(clf, "_build_module", _no_module)
    clf.predict_proba(X)
    # Prediction drops the adjoint: without gradients it would only add overhead.
    assert clf.module_.body.options == SolverOptions(method="rk4", step_size=0.5,
                                                     max_num_steps=1000, rtol=clf.rtol,
                                                     atol=clf.atol)
