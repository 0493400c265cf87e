"""The classifier and the CNF density estimator in MLflow: tracked fits and pyfunc models."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import latode.mlflow
from latode.tracking import Tracking

density = pytest.importorskip("latode.estimators.density")
classifier = pytest.importorskip("latode.estimators.classifier")


def test_a_tracked_cnf_fit_logs_a_density_plot_and_a_pyfunc_of_log_densities(mlflow_server,
                                                                              monkeypatch):
    X = np.random.default_rng(0).normal(size=(120, 2)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    cnf = density.CNFDensityEstimator(hidden=(8,), solver="rk4", step_size=0.5, max_epochs=2,
                                      batch_size=64, device="cpu", random_state=0)
    cnf.fit(X, tracking=Tracking(uri=mlflow_server, experiment="density"))
    client = MlflowClient(mlflow_server)
    run_id = cnf.mlflow_run_id_
    assert {a.path for a in client.list_artifacts(run_id, "plots")} == {
        "plots/loss_curve.png", "plots/density.png"}
    assert len(client.get_metric_history(run_id, "train_loss")) == cnf.n_epochs_

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    rows = pd.DataFrame(X[:5], columns=["x0", "x1"])
    out = pyfunc.predict(rows)
    np.testing.assert_allclose(out["log_density"], cnf.score_samples(X[:5]), rtol=1e-6)


def test_a_logged_classifier_predicts_labels_and_probabilities(mlflow_server, monkeypatch):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = np.where(X["a"] + X["b"] > 0, "up", "down")
    clf = classifier.ODENetClassifier(width=4, max_epochs=2, verbose=0, random_state=0,
                                      solver="rk4", step_size=0.5).fit(X, y)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "classifier")
    with mlflow.start_run():
        info = latode.mlflow.log_model(clf, input_example=X)
    out = mlflow.pyfunc.load_model(info.model_uri).predict(X.head(7))
    np.testing.assert_allclose(out[["proba_down", "proba_up"]], clf.predict_proba(X.head(7)),
                               rtol=1e-6)
    assert out["label"].tolist() == clf.predict(X.head(7)).tolist()
    assert type(latode.mlflow.load_model(info.model_uri)) is classifier.ODENetClassifier


def test_models_fitted_on_integers_or_arrays_serve_floats_and_any_column_names(mlflow_server,
                                                                              monkeypatch):
    # No input schema: latode reads any numeric dtype (an integer-trained model serves floats,
    # JSON, int64) and a model fitted without feature names matches columns by position.
    rng = np.random.default_rng(2)
    X = rng.integers(0, 16, size=(60, 3)).astype(np.uint8)
    y = (X[:, 0] > 7).astype(int)
    clf = classifier.ODENetClassifier(width=4, max_epochs=1, verbose=0, random_state=0,
                                      solver="rk4", step_size=0.5).fit(X, y)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "schemas")
    with mlflow.start_run():
        info = latode.mlflow.log_model(clf, input_example=X[:5])
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    expected = clf.predict_proba(X[:4].astype(float))[:, 1]
    for rows in (pd.DataFrame(X[:4].astype(float)), pd.DataFrame(X[:4].astype(np.int64)),
                 pd.DataFrame(X[:4], columns=["a", "b", "c"]), X[:4].astype(float)):
        np.testing.assert_allclose(pyfunc.predict(rows)["proba_1"], expected, rtol=1e-6)


def test_loading_through_a_dead_tracking_server_fails_fast_and_clearly(processes, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{processes.free_port()}")
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"Cannot load 'runs:/abc/model': no MLflow "
                                              r"server answers at http://127\.0\.0\.1"):
        latode.mlflow.load_model("runs:/abc/model")
    assert time.perf_counter() - started < 30  # MLflow's own retries take minutes
