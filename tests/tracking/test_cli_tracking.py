"""The ``latode`` command with MLflow: fit --track, predict from runs:/ URIs, evaluate --track."""

from __future__ import annotations

import json

import pandas as pd
from mlflow import MlflowClient

from latode import cli


def test_fit_track_then_predict_from_the_run_and_evaluate_track(mlflow_server, sine_df,
                                                                tmp_path, capsys):
    sine_df.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "config.yaml").write_text(
        "model: rnn\nparams: {hidden_dim: 4, max_epochs: 2, random_state: 0}\n")
    assert cli.main(["fit", "--data", "train.csv", "--config", "config.yaml", "--out", "model",
                     "--quiet", "--track", "--tracking-uri", mlflow_server,
                     "--experiment", "cli", "--run-name", "from-cli"]) == 0
    run_id = json.loads((tmp_path / "model" / "latode.json").read_text())["mlflow_run_id"]
    assert f"runs:/{run_id}/model" in capsys.readouterr().out
    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    assert run.info.run_name == "from-cli" and run.data.params["hidden_dim"] == "4"
    assert len(client.get_metric_history(run_id, "train_loss")) == 2

    for model, out in ((f"runs:/{run_id}/model", "from_run.csv"), ("model", "from_dir.csv")):
        assert cli.main(["predict", "--model", model, "--tracking-uri", mlflow_server,
                         "--context", "train.csv", "--horizon", "0.5,1", "--out", out]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "from_run.csv"),
                                  pd.read_csv(tmp_path / "from_dir.csv"))

    assert cli.main(["evaluate", "--model", "model", "--data", "train.csv", "--track",
                     "--tracking-uri", mlflow_server, "--experiment", "cli"]) == 0
    eval_run_id = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]
    metrics = client.get_run(eval_run_id).data.metrics
    assert {"eval_mae", "eval_rmse", "eval_crps", "eval_coverage_80"} <= set(metrics)
    assert list(tmp_path.glob("mlflow.db")) == []  # everything went to the server


def test_an_unknown_run_is_a_one_line_error(mlflow_server, sine_df, tmp_path, capsys):
    sine_df.to_csv(tmp_path / "c.csv", index=False)
    code = cli.main(["predict", "--model", "runs:/0123456789abcdef/model", "--tracking-uri",
                     mlflow_server, "--context", "c.csv", "--horizon", "1", "--out", "f.csv"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("latode: error:")
