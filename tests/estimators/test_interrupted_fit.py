"""A fit killed with SIGKILL mid-training resumes from its checkpoint to the same result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latode.training import CHECKPOINT_NAME, safe_load

SCRIPT = r"""
import json, sys
import numpy as np, pandas as pd
from latode import LatentODEForecaster

rng = np.random.default_rng(0)
n, k = 96, 12
t = np.tile(np.sort(rng.uniform(0, 2, size=k)), (n, 1))
y = rng.uniform(-2, 2, size=(n, 1)) * np.exp(-0.7 * t)
df = pd.DataFrame({"unique_id": np.repeat(np.arange(n), k), "ds": t.ravel(), "y": y.ravel()})
model = LatentODEForecaster(latent_dim=3, hidden=(32,), encoder="ode-rnn", max_epochs=8,
                            batch_size=16, patience=None, verbose=0, random_state=0)
model.fit(df, checkpoint_dir=sys.argv[1] if sys.argv[1] != "-" else None)
history = [{k: v for k, v in r.items() if k != "epoch_time"} for r in model.history_]
fc = model.predict(df, horizon=[0.5], quantiles=None)
json.dump({"history": history, "forecast": fc.y.tolist()}, open(sys.argv[2], "w"))
"""


def run(args, tmp_path, **popen):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), *args], env=env, **popen)


def epochs_in(checkpoint: Path) -> int:
    try:
        return len(safe_load(checkpoint, kind="checkpoint")["history"])
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_fit(tmp_path):
    reference = tmp_path / "reference.json"
    assert run(["-", str(reference)], tmp_path).wait(timeout=300) == 0

    ckpt_dir = tmp_path / "ckpt"
    resumed = tmp_path / "resumed.json"
    victim = run([str(ckpt_dir), str(resumed)], tmp_path)
    deadline = time.time() + 240
    while epochs_in(ckpt_dir / CHECKPOINT_NAME) < 3:
        assert victim.poll() is None, "the fit ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    killed_at = epochs_in(ckpt_dir / CHECKPOINT_NAME)
    assert 3 <= killed_at < 8 and not resumed.exists()
    # no half-written temporary files stay behind as checkpoints
    assert (ckpt_dir / CHECKPOINT_NAME).exists()

    assert run([str(ckpt_dir), str(resumed)], tmp_path).wait(timeout=300) == 0
    expected = json.loads(reference.read_text())
    got = json.loads(resumed.read_text())
    assert len(got["history"]) == 8
    assert got["history"] == expected["history"]
    assert got["forecast"] == expected["forecast"]
