"""A tracking server that dies during a fit: the run is ended as FAILED when the server is back
by the end of the fit; otherwise a warning names the run left RUNNING and how to end it."""

from __future__ import annotations

import http.server
import threading
import warnings

import mlflow
import pytest
from _faults import forward_request
from mlflow import MlflowClient

from latode import RNNForecaster
from latode.tracking import Tracking, TrackingWarning
from latode.tracking.callback import TrackingCallback


class _Forwarder(http.server.BaseHTTPRequestHandler):
    """Passes every request on to the real server (``target``)."""

    target = ""

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        forward_request(self, self.target, body)

    do_GET = do_POST = do_PATCH = _handle

    def log_message(self, *args) -> None:
        pass


class MortalServer:
    """The tracking server as the fit sees it, on a fixed port: :meth:`kill` makes the port
    refuse connections (a dead server), :meth:`revive` answers on it again with the same
    backing store (a restarted server)."""

    def __init__(self, target: str):
        self.handler = type("Forwarder", (_Forwarder,), {"target": target})
        self.port = 0
        self.server: http.server.ThreadingHTTPServer | None = None
        self.revive()
        self.uri = f"http://127.0.0.1:{self.port}"

    def revive(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def mortal_server(mlflow_server, monkeypatch):
    # No retries: a refused connection fails at once instead of after MLflow's backoff.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = MortalServer(mlflow_server)
    yield server
    server.kill()


def kill_and_revive_at_epochs(monkeypatch, server: MortalServer, kill_at: int,
                              revive_at: int | None) -> None:
    """Kill ``server`` just before epoch ``kill_at``'s metrics are logged, and bring it back
    at the end of epoch ``revive_at`` (never when ``None``)."""
    log_epoch = TrackingCallback.on_epoch_end

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == kill_at:
            server.kill()
        if record["epoch"] == revive_at:
            server.revive()
        log_epoch(self, trainer, record)

    monkeypatch.setattr(TrackingCallback, "on_epoch_end", on_epoch_end)


def fit_tracked(df, uri: str, experiment: str):
    model = RNNForecaster(hidden_dim=4, max_epochs=3, verbose=0, random_state=0,
                          validation_fraction=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(df, tracking=Tracking(uri=uri, experiment=experiment))
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    return model, messages


def only_run(server_uri: str, experiment: str):
    client = MlflowClient(server_uri)
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def test_a_run_whose_server_died_mid_fit_is_ended_as_failed_when_it_is_back(
        mortal_server, mlflow_server, sine_df, monkeypatch):
    kill_and_revive_at_epochs(monkeypatch, mortal_server, kill_at=1, revive_at=2)
    model, messages = fit_tracked(sine_df, mortal_server.uri, "died-and-came-back")
    assert len(messages) == 1 and "logging metrics failed" in messages[0], messages
    assert model.n_epochs_ == 3
    run = only_run(mlflow_server, "died-and-came-back")
    assert run.info.status == "FAILED"
    assert run.data.params["hidden_dim"] == "4"


def test_a_run_whose_server_stays_dead_is_named_with_how_to_end_it(
        mortal_server, mlflow_server, sine_df, monkeypatch):
    kill_and_revive_at_epochs(monkeypatch, mortal_server, kill_at=1, revive_at=None)
    model, messages = fit_tracked(sine_df, mortal_server.uri, "died-for-good")
    assert model.n_epochs_ == 3
    run = only_run(mlflow_server, "died-for-good")
    assert run.info.status == "RUNNING"
    assert len(messages) == 2, messages
    assert "logging metrics failed" in messages[0]
    advice = (f"mlflow.MlflowClient({mortal_server.uri!r})"
              f".set_terminated({run.info.run_id!r}, 'FAILED')")
    assert f"run {run.info.run_id}" in messages[1] and "stays RUNNING" in messages[1]
    assert advice in messages[1]

    # The advice works once the server answers again.
    mortal_server.revive()
    eval(advice, {"mlflow": mlflow})
    assert only_run(mlflow_server, "died-for-good").info.status == "FAILED"
