"""The ``latode`` command end to end: fit from a CSV, predict to a CSV, evaluate; and bad
arguments, which give one line on stderr and exit code 2, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latode import cli
from latode.estimators import LatentODEForecaster
from latode.metrics import QUANTILE_GRID, forecast_scores, holdout_split

CONFIG = """\
model: latent-ode
params:
  latent_dim: 3
  hidden: [8]
  encoder: rnn
  encoder_hidden: 8
  max_epochs: 2
  random_state: 0
columns:
  id: patient
  time: time
  targets: [hr]
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A CSV of irregular heart rates, a config, and a model fitted from them by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    frames = []
    for i in range(8):
        minutes = np.sort(rng.choice(48 * 60, size=10, replace=False))
        frames.append(pd.DataFrame({
            "patient": f"p{i}",
            "time": pd.Timestamp("2024-03-01") + pd.to_timedelta(minutes, unit="min"),
            "hr": 70 + 8 * np.sin(minutes / 200 + i) + rng.normal(0, 1, 10)}))
    pd.concat(frames).to_csv(root / "vitals.csv", index=False)
    (root / "config.yaml").write_text(CONFIG)
    code = cli.main(["fit", "--data", str(root / "vitals.csv"), "--config",
                     str(root / "config.yaml"), "--out", str(root / "model"), "--quiet"])
    assert code == 0
    return root


def read_vitals(root):
    df = pd.read_csv(root / "vitals.csv")
    df["time"] = pd.to_datetime(df["time"])
    return df


def test_fit_writes_a_model_folder_with_the_config_applied(workdir):
    assert sorted(p.name for p in (workdir / "model").iterdir()) == ["latode.json", "model.pt"]
    meta = json.loads((workdir / "model" / "latode.json").read_text())
    assert meta["estimator"] == "LatentODEForecaster" and meta["time_kind"] == "datetime"
    model = LatentODEForecaster.load(workdir / "model" / "model.pt")
    assert (model.latent_dim, model.max_epochs, model.id_col) == (3, 2, "patient")
    assert model.n_epochs_ == 2


def test_predict_writes_the_forecast_that_the_api_gives(workdir, capsys):
    out = workdir / "forecast.csv"
    code = cli.main(["predict", "--model", str(workdir / "model"), "--context",
                     str(workdir / "vitals.csv"), "--horizon", "2h,6h", "--level", "80,95",
                     "--out", str(out)])
    assert code == 0 and "wrote 16 forecast rows for 8 series" in capsys.readouterr().out
    model = LatentODEForecaster.load(workdir / "model" / "model.pt")
    expected = model.predict(read_vitals(workdir), horizon=["2h", "6h"], level=[80, 95])
    got = pd.read_csv(out)
    got["time"] = pd.to_datetime(got["time"])
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_predict_on_a_regular_grid_and_at_given_timestamps(workdir):
    model = LatentODEForecaster.load(workdir / "model" / "model.pt")
    df = read_vitals(workdir)
    assert cli.main(["predict", "--model", str(workdir / "model"), "--context",
                     str(workdir / "vitals.csv"), "--horizon", "12h", "--freq", "4h",
                     "--quantiles", "", "--level", "", "--out",
                     str(workdir / "grid.parquet")]) == 0
    grid = pd.read_parquet(workdir / "grid.parquet")
    pd.testing.assert_frame_equal(grid, model.predict(df, horizon="12h", freq="4h",
                                                      quantiles=None))
    assert cli.main(["predict", "--model", str(workdir / "model"), "--context",
                     str(workdir / "vitals.csv"), "--timestamps", "2024-03-03T00:00,2024-03-04",
                     "--out", str(workdir / "at.parquet")]) == 0
    stamps = pd.to_datetime(["2024-03-03T00:00", "2024-03-04"], format="ISO8601")
    pd.testing.assert_frame_equal(pd.read_parquet(workdir / "at.parquet"),
                                  model.predict(df, timestamps=stamps, level=[80]))


def test_evaluate_reports_the_backtest_metrics(workdir, capsys):
    out = workdir / "metrics.json"
    code = cli.main(["evaluate", "--model", str(workdir / "model"), "--data",
                     str(workdir / "vitals.csv"), "--holdout", "0.3", "--n-samples", "50",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "crps" in printed and "coverage_80" in printed
    metrics = json.loads(out.read_text())["hr"]
    # The same backtest through the API.
    model = LatentODEForecaster.load(workdir / "model" / "model.pt")
    context, holdout = holdout_split(read_vitals(workdir), "patient", "time", 0.3)
    forecast = model.predict(context, holdout[["patient", "time"]], quantiles=QUANTILE_GRID,
                             level=[80], n_samples=50, random_state=0)
    expected = forecast_scores(holdout, forecast, id_col="patient", time_col="time",
                               targets=["hr"], quantiles=QUANTILE_GRID, level=[80]).loc["hr"]
    assert metrics["n"] == len(holdout) == 24
    for name in ("mae", "rmse", "crps", "coverage_80"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-12)


def test_evaluate_over_windows_scores_each_cutoffs_forecasts(workdir, capsys):
    out = workdir / "windows.json"
    code = cli.main(["evaluate", "--model", str(workdir / "model"), "--data",
                     str(workdir / "vitals.csv"), "--n-windows", "3", "--horizon", "8h",
                     "--step-size", "6h", "--n-samples", "20", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "3 windows of 8h" in printed
    metrics = json.loads(out.read_text())["hr"]
    # The same windows through the API: the fitted model forecasts every window (windows
    # overlap by 2 h, so a time may count twice, once per cutoff).
    from latode.estimators._backtest import backtest_windows, forecast_window

    model = LatentODEForecaster.load(workdir / "model" / "model.pt")
    df = read_vitals(workdir)
    windows = list(backtest_windows(df, "patient", "time", "8h", 3, "6h"))
    assert len(windows) == 3
    frames = [forecast_window(model, seen, actual, cutoff, quantiles=QUANTILE_GRID,
                              level=[80], n_samples=20, random_state=0)
              for cutoff, seen, actual in windows]
    cv = pd.concat(frames, ignore_index=True)
    assert metrics["n"] == len(cv) == sum(len(actual) for _, _, actual in windows)
    assert metrics["mae"] == pytest.approx((cv["hr"] - cv["hr_actual"]).abs().mean(),
                                           rel=1e-9)
    assert cli.main(["evaluate", "--model", str(workdir / "model"), "--data",
                     str(workdir / "vitals.csv"), "--n-windows", "3"]) == 2
    assert "--n-windows needs --horizon" in capsys.readouterr().err


def bad_arguments(root: Path) -> dict[str, list[str]]:
    model, data = str(root / "model"), str(root / "vitals.csv")
    return {
        "no command": [],
        "unknown command": ["train"],
        "missing --out": ["fit", "--data", data],
        "missing data file": ["fit", "--data", str(root / "nope.csv"), "--out", str(root / "x")],
        "wrong extension": ["fit", "--data", str(root / "config.yaml"), "--out", str(root)],
        "unknown model kind": ["fit", "--data", data, "--out", str(root / "x"),
                               "--model", "transformer"],
        "wrong id column": ["fit", "--data", data, "--out", str(root / "x"), "--id-col", "id"],
        "no horizon": ["predict", "--model", model, "--context", data, "--out", "f.csv"],
        "number horizon on datetimes": ["predict", "--model", model, "--context", data,
                                        "--horizon", "1,2", "--out", "f.csv"],
        "bad quantiles": ["predict", "--model", model, "--context", data, "--horizon", "1h",
                          "--quantiles", "low", "--out", "f.csv"],
        "quantile out of range": ["predict", "--model", model, "--context", data,
                                  "--horizon", "1h", "--quantiles", "1.5", "--out", "f.csv"],
        "not a model folder": ["predict", "--model", str(root), "--context", data,
                               "--horizon", "1h", "--out", "f.csv"],
        "no such model": ["predict", "--model", "nowhere", "--context", data,
                          "--horizon", "1h", "--out", "f.csv"],
        "holdout out of range": ["evaluate", "--model", model, "--data", data,
                                 "--holdout", "2"],
    }


@pytest.mark.parametrize("case", sorted(bad_arguments(Path("/")).keys()))
def test_bad_arguments_give_one_line_and_exit_code_2(case, workdir, capsys, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(bad_arguments(workdir)[case])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("latode"), err
    assert "error:" in err and "Traceback" not in err


def test_config_errors_are_bad_input(workdir, tmp_path, capsys):
    cases = {"unknown key": "models: rnn\n", "not yaml": "params: [1, 2\n",
             "bad parameter": "params: {latent_dim: -1}\n",
             "unknown parameter": "params: {depth: 3}\n"}
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text)
        code = cli.main(["fit", "--data", str(workdir / "vitals.csv"), "--config", str(path),
                         "--id-col", "patient", "--time-col", "time", "--max-epochs", "1",
                         "--out", str(tmp_path / "m"), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, (name, err)
    assert "latent_dim" in err or "depth" in err


def test_an_unexpected_failure_is_one_line_with_exit_code_1(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "evaluate", broken)
    code = cli.main(["evaluate", "--model", "m", "--data", "d.csv"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == ("latode: error: unexpected RuntimeError: disk on fire (run with --debug "
                   "for the traceback)")


def test_the_command_runs_as_a_module_and_as_a_console_script(workdir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "latode", "predict", "--model",
                           str(workdir / "model"), "--context", str(tmp_path / "none.csv"),
                           "--horizon", "1h", "--out", "f.csv"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"latode: error: no such file: {str(tmp_path / 'none.csv')!r}"]
    script = Path(sys.executable).parent / "latode"
    if script.exists():  # installed with pip install -e .
        shown = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                               env=env, timeout=120)
        assert shown.returncode == 0
        assert all(word in shown.stdout for word in ("fit", "predict", "evaluate"))


def test_version_prints_the_package_version(capsys):
    import latode

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"latode {latode.__version__}"


def test_the_example_config_builds_a_valid_estimator():
    root = Path(__file__).resolve().parents[1]
    config = cli._read_config(root / "examples" / "config.yaml")
    args = cli.build_parser().parse_args(["fit", "--data", "d.csv", "--out", "m"])
    estimator = cli._make_estimator(args, config)
    estimator._validate_params()
    assert type(estimator).__name__ == "LatentODEForecaster"
    assert estimator.hidden == [64, 64] and estimator.target_cols == ["y"]


def test_covariates_through_the_command_line(tmp_path):
    """--impulse and --static at fit, --future and --static at predict: the API's forecast."""
    from latode.datasets import make_dosing
    from latode.estimators.registry import load_estimator

    dosing = make_dosing(n_series=6, hours=48.0, n_measurements=6, random_state=0)
    history = dosing.frame[dosing.frame.ds <= 36]
    history.to_csv(tmp_path / "doses.csv", index=False)
    dosing.static.reset_index().to_csv(tmp_path / "static.csv", index=False)
    plan = pd.DataFrame({"unique_id": range(6), "ds": 47.0, "dose": 100.0})
    plan.to_csv(tmp_path / "plan.csv", index=False)
    assert cli.main(["fit", "--data", str(tmp_path / "doses.csv"), "--target", "conc",
                     "--impulse", "dose", "--static", str(tmp_path / "static.csv"),
                     "--max-epochs", "2", "--seed", "0", "--out", str(tmp_path / "model"),
                     "--quiet"]) == 0
    assert cli.main(["predict", "--model", str(tmp_path / "model"), "--context",
                     str(tmp_path / "doses.csv"), "--timestamps", "40,46", "--future",
                     str(tmp_path / "plan.csv"), "--static", str(tmp_path / "static.csv"),
                     "--out", str(tmp_path / "fc.csv")]) == 0
    model = load_estimator(tmp_path / "model" / "model.pt")
    expected = model.predict(history, timestamps=[40.0, 46.0], future_df=plan,
                             static_df=dosing.static, level=(80,))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fc.csv"), expected, check_dtype=False)
    code = cli.main(["predict", "--model", str(tmp_path / "model"), "--context",
                     str(tmp_path / "doses.csv"), "--timestamps", "40,46", "--static",
                     str(tmp_path / "static.csv"), "--out", str(tmp_path / "fc2.csv")])
    assert code == 2
