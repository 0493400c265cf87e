"""fit(..., tracking=...) against a real MLflow server: what a run holds, joining and nesting
runs, tracking off, and servers that are down or fail mid-fit."""

from __future__ import annotations

import http.server
import json
import threading
import time
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from _faults import forward_request
from mlflow import MlflowClient
from sklearn.model_selection import GridSearchCV, GroupKFold

import latode.mlflow
from latode import LatentODEForecaster, RNNForecaster
from latode.tracking import Tracking, TrackingWarning


def tiny_latent_ode(**kw):
    params = dict(latent_dim=3, hidden=(8,), encoder="rnn", encoder_hidden=8, max_epochs=2,
                  batch_size=4, validation_fraction=0.25, verbose=0, random_state=0)
    params.update(kw)
    return LatentODEForecaster(**params)


def tiny_rnn(**kw):
    params = dict(hidden_dim=4, max_epochs=1, verbose=0, random_state=0,
                  validation_fraction=0.0)
    params.update(kw)
    return RNNForecaster(**params)


def without_times(history):
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in history]


def test_a_tracked_fit_logs_params_every_epoch_artifacts_and_the_model(mlflow_server, sine_df,
                                                                        monkeypatch):
    model = tiny_latent_ode().fit(sine_df, tracking=Tracking(
        uri=mlflow_server, experiment="fit-logging", run_name="tiny"))
    client = MlflowClient(mlflow_server)
    run = client.get_run(model.mlflow_run_id_)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert client.get_experiment(run.info.experiment_id).name == "fit-logging"

    params = run.data.params
    for name, value in model.get_params().items():
        assert params[name] == (value if isinstance(value, str) else repr(value))
    assert params["data.n_series"] == "8" and params["data.n_observations"] == "96"
    assert float(params["data.missing_fraction"]) == 0.0
    assert {"data.time_start", "data.time_end", "fit_seed"} <= set(params)
    assert run.data.tags["latode.estimator"] == "LatentODEForecaster"

    # Every epoch's metrics, at step = epoch, equal to the fitted history.
    for key in ("train_loss", "val_loss", "nfe_forward", "nfe_backward", "lr", "epoch_time"):
        logged = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in logged] == [1, 2]
        assert [m.value for m in logged] == pytest.approx([r[key] for r in model.history_])
    metrics = run.data.metrics
    assert metrics["n_epochs"] == 2 and metrics["best_epoch"] == model.best_epoch_
    assert {"val_backtest_mae", "val_backtest_rmse", "val_backtest_crps",
            "val_backtest_coverage_80"} <= set(metrics)

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "history.json" in artifacts
    assert plots == {"plots/loss_curve.png", "plots/forecast_val.png"}
    history = json.loads(open(client.download_artifacts(run.info.run_id, "history.json")).read())
    assert len(history) == len(model.history_)
    for logged_record, record in zip(without_times(history), without_times(model.history_)):
        assert logged_record == pytest.approx(record)

    # The fitted model, found from the run and loaded back without executing its code.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    loaded = latode.mlflow.load_model(f"runs:/{run.info.run_id}/model")
    expected = model.predict(sine_df, horizon=[0.5, 1.0], n_samples=20)
    pd.testing.assert_frame_equal(loaded.predict(sine_df, horizon=[0.5, 1.0], n_samples=20),
                                  expected)


def test_tracking_off_logs_nothing_and_writes_nothing(mlflow_server, sine_df, monkeypatch,
                                                      isolated):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(mlflow_server)

    def n_runs():
        ids = [e.experiment_id for e in client.search_experiments()]
        return len(client.search_runs(ids, max_results=1000))

    before = n_runs()
    for tracking in (None, False):
        model = tiny_rnn().fit(sine_df, tracking=tracking)
        assert not hasattr(model, "mlflow_run_id_")
    assert n_runs() == before
    assert list(isolated.iterdir()) == []  # no mlflow.db, no mlruns


def test_tracking_true_uses_the_default_sqlite_store_in_the_working_folder(
        sine_df, isolated, mlflow_server, monkeypatch):
    model = tiny_rnn().fit(sine_df, tracking={"log_model": False})
    local = f"sqlite:///{isolated / 'mlflow.db'}"
    assert (isolated / "mlflow.db").is_file()
    run = MlflowClient(local).get_run(model.mlflow_run_id_)
    assert run.info.status == "FINISHED" and run.data.params["hidden_dim"] == "4"

    # Inside a run of another store, an explicit URI gets a run of its own in its store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with mlflow.start_run() as outer:
        other = tiny_rnn().fit(sine_df, tracking=Tracking(uri=local, log_model=False))
    assert other.mlflow_run_id_ != outer.info.run_id
    run = MlflowClient(local).get_run(other.mlflow_run_id_)
    assert "mlflow.parentRunId" not in run.data.tags
    assert mlflow.get_tracking_uri() == mlflow_server  # the user's setting is back


def test_a_fit_inside_an_active_run_logs_into_it(mlflow_server, sine_df, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with mlflow.start_run() as outer:
        model = tiny_rnn().fit(sine_df, tracking=Tracking(log_model=False))
        assert model.mlflow_run_id_ == outer.info.run_id
        assert mlflow.active_run().info.run_id == outer.info.run_id  # still the user's run
    run = MlflowClient(mlflow_server).get_run(outer.info.run_id)
    assert run.data.params["hidden_dim"] == "4" and "train_loss" in run.data.metrics


def test_autolog_tracks_every_fit_until_disabled(mlflow_server, sine_df, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    latode.mlflow.autolog(tracking=Tracking(log_model=False))
    try:
        with mlflow.start_run() as outer:  # no tracking= argument: autolog's applies
            model = tiny_rnn().fit(sine_df)
        assert model.mlflow_run_id_ == outer.info.run_id
        run = MlflowClient(mlflow_server).get_run(outer.info.run_id)
        assert run.data.params["hidden_dim"] == "4" and "train_loss" in run.data.metrics
        untracked = tiny_rnn().fit(sine_df, tracking=False)  # a fit's own argument wins
        assert getattr(untracked, "mlflow_run_id_", None) is None
    finally:
        latode.mlflow.autolog(disable=True)
    assert getattr(tiny_rnn().fit(sine_df), "mlflow_run_id_", None) is None
    with pytest.raises(ValueError, match="disable=True"):
        latode.mlflow.autolog(tracking=False)


def test_a_grid_search_inside_a_run_gives_one_child_run_per_fit(mlflow_server, sine_df,
                                                                 monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "grid-search")
    search = GridSearchCV(tiny_rnn(), {"hidden_dim": [3, 5]}, cv=GroupKFold(n_splits=2))
    with mlflow.start_run() as parent:
        search.fit(sine_df, groups=sine_df["unique_id"],
                   tracking=Tracking(nested=True, log_model=False))
    client = MlflowClient(mlflow_server)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    # 2 candidates x 2 folds, and the refit on everything.
    assert len(children) == 5
    assert sorted(c.data.params["hidden_dim"] for c in children) == ["3", "3", "3", "5", "5"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert search.best_estimator_.mlflow_run_id_ in {c.info.run_id for c in children}


def test_a_server_that_is_down_warns_once_and_loses_no_training(processes, sine_df):
    baseline = tiny_latent_ode().fit(sine_df)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = tiny_latent_ode().fit(
            sine_df, tracking=f"http://127.0.0.1:{processes.free_port()}")
    tracking_warnings = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(tracking_warnings) == 1
    assert "no MLflow server answers" in str(tracking_warnings[0].message)
    assert time.monotonic() - start < 30
    assert not hasattr(model, "mlflow_run_id_")
    assert without_times(model.history_) == without_times(baseline.history_)
    pd.testing.assert_frame_equal(model.predict(sine_df, horizon=[1.0]),
                                  baseline.predict(sine_df, horizon=[1.0]))


class _FailingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the real server until the first epoch's metrics, then answers 503."""

    target = ""
    failing = False

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        if "log-batch" in self.path and b"train_loss" in body:
            cls.failing = True
        if cls.failing:
            self.send_response(503)
            self.end_headers()
            return
        forward_request(self, cls.target, body)

    do_GET = do_POST = do_PATCH = _handle

    def log_message(self, *args) -> None:
        pass


def test_a_server_failing_mid_fit_warns_and_the_fit_completes(mlflow_server, sine_df,
                                                              monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    handler = type("Proxy", (_FailingProxy,), {"target": mlflow_server, "failing": False})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = tiny_latent_ode(max_epochs=3).fit(
                sine_df, tracking=f"http://127.0.0.1:{proxy.server_address[1]}")
    finally:
        proxy.shutdown()
        proxy.server_close()
    tracking_warnings = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert handler.failing, "the proxy never saw the epoch metrics"
    # One warning when logging fails; one more at the end, as the failing server cannot end
    # the run either.
    assert len(tracking_warnings) == 2, [str(w.message) for w in tracking_warnings]
    assert "logging metrics failed" in str(tracking_warnings[0].message)
    assert "stays RUNNING" in str(tracking_warnings[1].message)
    assert model.n_epochs_ == 3 and hasattr(model, "module_")
    assert np.isfinite(model.score(sine_df))


def test_a_fit_that_fails_ends_its_run_as_failed(mlflow_server, sine_df):
    model = tiny_rnn(max_epochs=3)
    losses = []

    def failing_loss(module, batch, step):  # fails mid-fit, once the run has started
        losses.append(1)
        if len(losses) > 1:
            raise RuntimeError("boom")
        return RNNForecaster._batch_loss(model, module, batch, step)

    model._batch_loss = failing_loss
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(sine_df, tracking=Tracking(uri=mlflow_server, experiment="failing-fit"))
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("failing-fit")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED" and run.data.params["hidden_dim"] == "4"
    assert not hasattr(model, "mlflow_run_id_") and not hasattr(model, "_fit_tracker")


@pytest.mark.parametrize("bad", [3, ["sqlite:///x.db"]])
def test_bad_tracking_values_are_refused_before_training(bad, sine_df):
    with pytest.raises((TypeError, ValueError), match="tracking"):
        tiny_rnn().fit(sine_df, tracking=bad)


def test_tracking_settings_are_checked():
    with pytest.raises(TypeError, match="experiment"):
        Tracking(experiment="")
    with pytest.raises(TypeError, match="nested"):
        Tracking(nested="yes")
