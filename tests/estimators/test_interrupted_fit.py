"""A fit killed with SIGKILL mid-training resumes from its checkpoint to the same result, and
a checkpoint of another fit, of other data or corrupted on disk is never resumed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _faults import flip_tensor_bytes, read_only_folder, strip_times

from latode import CNFDensityEstimator, ODENetClassifier, RNNForecaster
from latode.estimators._forecaster import BaseForecaster
from latode.exceptions import CheckpointInUseError, InvalidCheckpointError
from latode.training import CHECKPOINT_NAME, safe_load
from latode.training.checkpoint import LOCK_NAME, PREVIOUS_CHECKPOINT_NAME

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
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_then_resume_equals_uninterrupted_fit(seed, tmp_path):
    # The epoch to kill after is drawn (seeded, so a failure repeats): a kill may land
    # anywhere in the fit, not at one favourable point.
    kill_after = int(np.random.default_rng(seed).integers(1, 7))
    reference = tmp_path / "reference.json"
    assert run(["-", str(reference)], tmp_path).wait(timeout=300) == 0

    ckpt_dir = tmp_path / "ckpt"
    resumed = tmp_path / "resumed.json"
    victim = run([str(ckpt_dir), str(resumed)], tmp_path)
    deadline = time.time() + 240
    while epochs_in(ckpt_dir / CHECKPOINT_NAME) < kill_after:
        assert victim.poll() is None, "the fit ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    killed_at = epochs_in(ckpt_dir / CHECKPOINT_NAME)
    assert kill_after <= killed_at < 8 and not resumed.exists()
    # no half-written temporary files stay behind as checkpoints
    assert (ckpt_dir / CHECKPOINT_NAME).exists()

    assert run([str(ckpt_dir), str(resumed)], tmp_path).wait(timeout=300) == 0
    expected = json.loads(reference.read_text())
    got = json.loads(resumed.read_text())
    assert len(got["history"]) == 8
    assert got["history"] == expected["history"]
    assert got["forecast"] == expected["forecast"]


# ---------------------------------------------------------- checkpoints that cannot lie
def series_frame(n=12, k=6, seed=0):
    rng = np.random.default_rng(seed)
    t = np.tile(np.sort(rng.uniform(0, 2, size=k)), (n, 1))
    y = rng.uniform(-2, 2, size=(n, 1)) * np.exp(-0.7 * t)
    return pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(n)], k),
                         "ds": t.ravel(), "y": y.ravel()})


def rnn(**kw):
    params = dict(hidden_dim=8, max_epochs=2, batch_size=8, patience=None, verbose=0,
                  random_state=0, time_scale=1.0)
    return RNNForecaster(**{**params, **kw})


def test_a_checkpoint_of_other_values_of_the_same_shape_is_refused(tmp_path):
    df = series_frame()
    rnn(max_epochs=1).fit(df, checkpoint_dir=tmp_path)
    negated = df.assign(y=-df["y"])  # same ids, times, shape and range
    with pytest.raises(InvalidCheckpointError, match="other data") as info:
        rnn().fit(negated, checkpoint_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "delete" in str(info.value)
    with pytest.raises(InvalidCheckpointError, match="learning_rate=0.01 there, 0.02 here"):
        rnn(learning_rate=0.02).fit(df, checkpoint_dir=tmp_path)
    # verbose and device do not change the fit: the same fit resumes.
    assert rnn(verbose=0, device="cpu").fit(df, checkpoint_dir=tmp_path).n_epochs_ == 2


def test_a_fit_on_a_checkpoint_dir_locked_by_a_running_fit_is_refused(tmp_path):
    running = subprocess.Popen(["sleep", "60"])  # stands for a fit in another process
    try:
        (tmp_path / LOCK_NAME).write_text(f"{running.pid} {socket.gethostname()}\n")
        with pytest.raises(CheckpointInUseError, match=f"process {running.pid}"):
            rnn().fit(series_frame(), checkpoint_dir=tmp_path)
        assert not (tmp_path / CHECKPOINT_NAME).exists()
    finally:
        running.kill()
        running.wait()
    # Once its owner is gone the lock is stale, taken over, and removed after the fit.
    assert rnn().fit(series_frame(), checkpoint_dir=tmp_path).n_epochs_ == 2
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_resumed_random_state_none_fit_keeps_its_validation_split(tmp_path, monkeypatch):
    held_out = []
    split = BaseForecaster._split

    def recording_split(self, n_series, seed):
        train_idx, val_idx = split(self, n_series, seed)
        held_out.append(val_idx.tolist())
        return train_idx, val_idx

    monkeypatch.setattr(BaseForecaster, "_split", recording_split)
    df = series_frame(n=40)
    kw = dict(random_state=None, validation_fraction=0.25)
    first = rnn(max_epochs=1, **kw).fit(df, checkpoint_dir=tmp_path)
    resumed = rnn(max_epochs=2, **kw).fit(df, checkpoint_dir=tmp_path)
    assert len(held_out) == 2 and len(held_out[0]) == 10
    assert held_out[1] == held_out[0]  # 1 in C(40, 10) to hold by chance
    assert resumed.n_epochs_ == 2 and resumed.history_[0] == first.history_[0]


def test_flipped_bytes_in_a_checkpoint_fall_back_to_the_previous_one(tmp_path):
    df = series_frame()
    straight = rnn(max_epochs=3).fit(df)
    rnn(max_epochs=2).fit(df, checkpoint_dir=tmp_path)
    flip_tensor_bytes(tmp_path / CHECKPOINT_NAME)
    with pytest.warns(RuntimeWarning, match="corrupted"):
        resumed = rnn(max_epochs=3).fit(df, checkpoint_dir=tmp_path)
    assert strip_times(resumed.history_) == strip_times(straight.history_)
    for name, tensor in straight.module_.state_dict().items():
        assert torch.equal(resumed.module_.state_dict()[name], tensor), name
    # With both files corrupted there is nothing to resume: an error that says what to do.
    flip_tensor_bytes(tmp_path / CHECKPOINT_NAME)
    flip_tensor_bytes(tmp_path / PREVIOUS_CHECKPOINT_NAME)
    with pytest.raises(InvalidCheckpointError, match="Neither checkpoint.*Delete") as info:
        rnn(max_epochs=4).fit(df, checkpoint_dir=tmp_path)
    assert "weights_only" not in str(info.value)


def test_a_read_only_checkpoint_dir_is_refused_before_training(tmp_path):
    with read_only_folder(tmp_path) as folder:
        model = rnn()
        with pytest.raises(PermissionError, match="checkpoint_dir .*read_only"):
            model.fit(series_frame(), checkpoint_dir=folder)
        assert model.history_ == []


def test_a_checkpoint_dir_that_cannot_be_created_is_refused_before_training(tmp_path):
    (tmp_path / "a_file").write_text("")
    model = rnn()
    with pytest.raises(PermissionError, match="checkpoint_dir .*a_file"):
        model.fit(series_frame(), checkpoint_dir=tmp_path / "a_file" / "checkpoints")
    assert model.history_ == []  # no epoch ran before the refusal


@pytest.mark.parametrize("make", [
    lambda: ODENetClassifier(width=8, max_epochs=1, verbose=0),
    lambda: CNFDensityEstimator(hidden=(8,), max_epochs=1, verbose=0),
], ids=["ODENetClassifier", "CNFDensityEstimator"])
def test_array_estimators_refuse_a_checkpoint_of_other_values(make, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    args = (X, y) if isinstance(make(), ODENetClassifier) else (X,)
    make().fit(*args, checkpoint_dir=tmp_path)
    negated = (-X, y) if len(args) == 2 else (-X,)  # same shape and range
    with pytest.raises(InvalidCheckpointError, match="other data"):
        make().fit(*negated, checkpoint_dir=tmp_path)
    # The same data resumes: random_state=None takes the seed the checkpoint's fit drew.
    assert make().set_params(max_epochs=2).fit(*args, checkpoint_dir=tmp_path).n_epochs_ == 2
