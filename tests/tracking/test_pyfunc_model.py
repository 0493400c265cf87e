"""latode.mlflow.log_model / load_model: the pyfunc model in this process, in a fresh one and
behind ``mlflow models serve``, compared with ``model.predict``."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest

import latode.mlflow
from latode import RNNForecaster

PARAMS_BY_CALL = [
    {"timestamps": ["2024-01-04T00:00:00", "2024-01-04T12:30:00"], "quantiles": [0.05, 0.95]},
    {"horizon": ["6h", "12h"], "n_samples": 50, "random_state": 3, "level": [80]},
]


def predict_kwargs(params):
    """What model.predict receives for pyfunc params (the reference the pyfunc must match)."""
    kwargs = dict(params)
    if "timestamps" in kwargs:
        kwargs["timestamps"] = pd.to_datetime(kwargs["timestamps"])
    return kwargs


@pytest.fixture(scope="module")
def logged(mlflow_server, clinic_df, tmp_path_factory):
    """A fitted RNNForecaster on datetime, two-channel data with string ids, logged once."""
    model = RNNForecaster(hidden_dim=6, max_epochs=2, verbose=0, random_state=0,
                          id_col="pid", time_col="time").fit(clinic_df)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("log_model"))
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "pyfunc")
        with mlflow.start_run() as run:
            info = latode.mlflow.log_model(model, input_example=clinic_df)
    return model, info, run.info.run_id


def test_log_model_returns_model_info_with_a_signature_and_example(logged, clinic_df,
                                                                    mlflow_server, monkeypatch):
    model, info, run_id = logged
    assert info.run_id == run_id
    signature = info.signature
    assert [c.name for c in signature.inputs.inputs] == ["pid", "time", "hr", "temp"]
    assert {p.name for p in signature.params.params} == {
        "timestamps", "horizon", "freq", "quantiles", "level", "n_samples", "random_state"}
    assert info.saved_input_example_info is not None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    expected = model.predict(clinic_df, horizon=["1h"])
    for uri in (info.model_uri, f"runs:/{run_id}/model"):
        loaded = latode.mlflow.load_model(uri)
        assert type(loaded) is RNNForecaster
        pd.testing.assert_frame_equal(loaded.predict(clinic_df, horizon=["1h"]), expected)


def test_pyfunc_predict_in_process_takes_every_forecast_param(logged, clinic_df, mlflow_server,
                                                              monkeypatch):
    model, info, _ = logged
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    for params in PARAMS_BY_CALL + [{"horizon": ["24h"], "freq": "6h", "level": [80, 95]}]:
        expected = model.predict(clinic_df, **predict_kwargs(params)) if "freq" not in params \
            else model.predict(clinic_df, horizon="24h", freq="6h", level=[80, 95])
        pd.testing.assert_frame_equal(pyfunc.predict(clinic_df, params=params), expected)
    with pytest.raises(Exception, match="durations with a unit"):
        pyfunc.predict(clinic_df, params={"horizon": ["6"]})


def test_pyfunc_in_a_fresh_process_returns_the_same_forecasts(logged, clinic_df, mlflow_server,
                                                              processes, tmp_path):
    model, info, _ = logged
    context = tmp_path / "context.parquet"
    clinic_df.to_parquet(context)
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "context = pd.read_parquet(sys.argv[2])\n"
        "for i, params in enumerate(json.loads(sys.argv[3])):\n"
        "    model.predict(context, params=params).to_parquet(f'{sys.argv[4]}/out{i}.parquet')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, info.model_uri, str(context), json.dumps(PARAMS_BY_CALL),
         str(tmp_path)], env=processes.env(MLFLOW_TRACKING_URI=mlflow_server),
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    for i, params in enumerate(PARAMS_BY_CALL):
        expected = model.predict(clinic_df, **predict_kwargs(params))
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"out{i}.parquet"), expected)


def test_mlflow_models_serve_answers_on_loopback_with_the_same_forecast(
        logged, clinic_df, mlflow_server, processes, tmp_path):
    model, info, _ = logged
    port = processes.free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", info.model_uri,
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
            env=processes.env(MLFLOW_TRACKING_URI=mlflow_server), cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        processes.wait_until_answers(f"http://127.0.0.1:{port}/ping", server, 180, log)
        rows = clinic_df.astype({"time": str}).astype(object)
        rows = rows.where(rows.notna(), None)
        params = PARAMS_BY_CALL[1]
        body = {"dataframe_split": {"columns": list(rows.columns),
                                    "data": rows.to_numpy().tolist()},
                "params": params}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            served = pd.DataFrame(json.loads(answer.read())["predictions"])
        # Without params the client reads latode's own message, not a generic error.
        body.pop("params")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=120)
        assert refused.value.code == 400
        answer = json.loads(refused.value.read())
        assert "Pass exactly one of timestamps= (times to forecast) or horizon=" in answer["message"]
    finally:
        processes.stop(server)
    expected = model.predict(clinic_df, **predict_kwargs(params))
    assert list(served.columns) == list(expected.columns)
    assert served["pid"].tolist() == expected["pid"].tolist()
    assert (pd.to_datetime(served["time"]) == expected["time"]).all()
    numbers = [c for c in expected.columns if c not in ("pid", "time")]
    np.testing.assert_allclose(served[numbers].to_numpy(float), expected[numbers].to_numpy(),
                               rtol=1e-8)


def test_a_model_logged_without_an_example_accepts_its_string_ids(clinic_df, mlflow_server,
                                                                 monkeypatch, tmp_path):
    model = RNNForecaster(hidden_dim=6, max_epochs=1, verbose=0, random_state=0,
                          id_col="pid", time_col="time").fit(clinic_df)
    assert clinic_df["pid"].map(type).eq(str).all()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with mlflow.start_run():
        info = latode.mlflow.log_model(model)
    assert info.signature.inputs.input_dict()["pid"].type.name == "string"
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    pd.testing.assert_frame_equal(pyfunc.predict(clinic_df, params={"horizon": ["6h"]}),
                                  model.predict(clinic_df, horizon=["6h"]))


@pytest.mark.parametrize("kind, declared", [("int", "long"), ("category", "string")])
def test_integer_and_categorical_ids_log_a_signature_the_served_model_accepts(
        kind, declared, clinic_df, mlflow_server, monkeypatch, tmp_path):
    codes = clinic_df["pid"].astype("category").cat.codes.astype("int64")
    ids = codes if kind == "int" else clinic_df["pid"].astype("category")
    df = clinic_df.assign(pid=ids)
    model = RNNForecaster(hidden_dim=6, max_epochs=1, verbose=0, random_state=0,
                          id_col="pid", time_col="time").fit(df)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for example in (None, df):  # built from the fitted state, or the training frame's rows
        with mlflow.start_run():
            info = latode.mlflow.log_model(model, input_example=example)
        assert info.signature.inputs.input_dict()["pid"].type.name == declared
        # MLflow has no categorical type: a served model takes the ids as strings.
        served = df if kind == "int" else df.assign(pid=df["pid"].astype(str))
        forecast = mlflow.pyfunc.load_model(info.model_uri).predict(
            served, params={"horizon": ["6h"]})
        expected = model.predict(df, horizon=["6h"])
        np.testing.assert_allclose(forecast["hr"], expected["hr"])
        assert list(forecast["pid"].astype(str)) == list(expected["pid"].astype(str))


def test_a_model_with_covariates_takes_them_in_its_input_frame(mlflow_server, monkeypatch,
                                                               tmp_path):
    """Static columns on each series' rows and future doses on rows marked is_future: the
    served frame gives model.predict's forecast, and the signature lists them."""
    from latode import LatentODEForecaster
    from latode.datasets import make_dosing
    from latode.tracking._adapters import FUTURE_FLAG

    dosing = make_dosing(n_series=6, hours=48.0, n_measurements=6, random_state=0)
    history = dosing.frame[dosing.frame.ds <= 36]
    model = LatentODEForecaster(target_cols="conc", impulse_covariates="dose", latent_dim=3,
                                hidden=(16,), max_epochs=2, verbose=0, random_state=0)
    model.fit(history, static_df=dosing.static)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with mlflow.start_run():
        info = latode.mlflow.log_model(model, input_example=history)
    names = [c.name for c in info.signature.inputs.inputs]
    assert {"conc", "dose", "weight", FUTURE_FLAG} <= set(names)
    plan = pd.DataFrame({"unique_id": range(6), "ds": 47.0, "dose": 100.0})
    served = pd.concat([
        history.assign(**{FUTURE_FLAG: False}),
        plan.assign(conc=np.nan, **{FUTURE_FLAG: True})], ignore_index=True)
    served = served.merge(dosing.static.reset_index(), on="unique_id")
    forecast = mlflow.pyfunc.load_model(info.model_uri).predict(
        served, params={"timestamps": [40.0, 46.0]})
    expected = model.predict(history, timestamps=[40.0, 46.0], future_df=plan,
                             static_df=dosing.static)
    pd.testing.assert_frame_equal(forecast, expected)
