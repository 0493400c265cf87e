"""Several processes using a fresh SQLite tracking store at the same moment: each run is
logged and the store stays usable (MLflow's schema creation races without latode's lock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import pytest
from mlflow import MlflowClient

from latode import RNNForecaster
from latode.tracking import TrackingWarning

N_PROCESSES = 4
PROCESS_TIMEOUT_S = 240

# Each process imports everything and builds its frame, says it is ready, then waits for the
# start signal, so that all of them open the fresh database within milliseconds of another.
FIT_SCRIPT = """
import json, pathlib, sys, time, warnings
import numpy as np, pandas as pd
from latode import RNNForecaster
from latode.tracking import TrackingWarning

uri, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
t = np.linspace(0.0, 3.0, 6)
df = pd.DataFrame({"unique_id": np.repeat([0, 1], 6), "ds": np.tile(t, 2),
                   "y": np.sin(np.concatenate([t, t + 1.0]))})
model = RNNForecaster(hidden_dim=4, max_epochs=1, verbose=0, random_state=0,
                      validation_fraction=0.0)
ready.touch()
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model.fit(df, tracking=uri)
print(json.dumps({
    "run_id": getattr(model, "mlflow_run_id_", None),
    "tracking_warnings": [str(w.message) for w in caught
                          if issubclass(w.category, TrackingWarning)]}))
"""


@pytest.mark.slow
def test_four_fits_opening_a_fresh_sqlite_store_at_once_all_log_their_runs(
        tmp_path, processes, sine_df):
    database = tmp_path / "fresh.db"
    uri = f"sqlite:///{database}"
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(N_PROCESSES)]
    fits = [subprocess.Popen([sys.executable, str(script), uri, str(r), str(go)],
                             cwd=tmp_path, env=processes.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
            for r in ready]
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the fit processes never got ready"
            assert all(f.poll() is None for f in fits), [f.communicate() for f in fits]
            time.sleep(0.05)
        go.touch()
        outputs = [fit.communicate(timeout=PROCESS_TIMEOUT_S) for fit in fits]
    finally:
        for fit in fits:
            processes.stop(fit)
    results = []
    for fit, (stdout, stderr) in zip(fits, outputs, strict=True):
        assert fit.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [r["tracking_warnings"] for r in results] == [[]] * N_PROCESSES
    run_ids = {r["run_id"] for r in results}
    assert None not in run_ids and len(run_ids) == N_PROCESSES

    # The store is intact: a later fit in this process logs to it as well.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        later = RNNForecaster(hidden_dim=4, max_epochs=1, verbose=0, random_state=0,
                              validation_fraction=0.0).fit(sine_df, tracking=uri)
    assert not [w for w in caught if issubclass(w.category, TrackingWarning)]
    runs = MlflowClient(uri).search_runs(["0"])
    assert {run.info.run_id for run in runs} == run_ids | {later.mlflow_run_id_}
    assert all(run.info.status == "FINISHED" for run in runs)
    assert all(run.data.params["hidden_dim"] == "4" for run in runs)
