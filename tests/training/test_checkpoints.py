"""Checkpoints that cannot lie: the folder lock, its writability check, the seed and tag
checks on resume, checksums and the fallback to the previous epoch's checkpoint."""

import os
import socket
import subprocess

import pytest
import torch
from _faults import flip_tensor_bytes, read_only_folder, strip_times
from torch import nn

from latode.exceptions import CheckpointInUseError, InvalidCheckpointError
from latode.training import CHECKPOINT_NAME, Trainer
from latode.training.checkpoint import LOCK_NAME, PREVIOUS_CHECKPOINT_NAME, fingerprint

X = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5])


def squared_error(module, idx, step):
    return ((module(X[idx]).squeeze(-1) - Y[idx]) ** 2).mean()


def make_trainer(folder, loss=squared_error, **kw):
    torch.manual_seed(0)

    def batches(generator):
        order = torch.randperm(32, generator=generator)
        return [order[s:s + 8] for s in range(0, 32, 8)]

    kw.setdefault("max_epochs", 2)
    return Trainer(nn.Linear(3, 1), loss, batches, learning_rate=0.05,
                   checkpoint_dir=folder, **kw)


def test_a_second_fit_on_a_folder_in_use_is_refused_and_the_first_goes_on(tmp_path):
    refusals = []

    def loss_that_starts_a_second_fit(module, idx, step):
        if step == 0:  # while the first fit holds the folder
            with pytest.raises(CheckpointInUseError, match=f"process {os.getpid()}") as info:
                make_trainer(tmp_path).fit()
            refusals.append(str(info.value))
        return squared_error(module, idx, step)

    first = make_trainer(tmp_path, loss=loss_that_starts_a_second_fit)
    first.fit()
    assert len(refusals) == 1 and str(tmp_path) in refusals[0]
    assert "another checkpoint_dir" in refusals[0]
    assert len(first.history) == 2
    # The lock goes with the fit: the folder is free again, also after a failed fit.
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError, match="boom"):
        make_trainer(tmp_path, loss=lambda m, i, s: (_ for _ in ()).throw(RuntimeError("boom")),
                     max_epochs=3).fit()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    assert len(make_trainer(tmp_path).fit()) == 2
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_of_a_live_process_is_not_taken_over(tmp_path):
    alive = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{alive.pid} {socket.gethostname()}\n")
        with pytest.raises(CheckpointInUseError, match=f"process {alive.pid}"):
            make_trainer(tmp_path).fit()
        # Refused without touching it: the lock is still the live process's.
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(alive.pid)
    finally:
        alive.kill()
        alive.wait()


def test_a_folder_that_cannot_be_written_is_refused_before_the_first_epoch(tmp_path):
    steps = []

    def counting(module, idx, step):
        steps.append(step)
        return squared_error(module, idx, step)

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="checkpoint_dir .*a_file.* not a folder"):
        make_trainer(blocker / "checkpoints", loss=counting).fit()
    assert steps == []


def test_a_read_only_folder_is_refused_before_the_first_epoch(tmp_path):
    with read_only_folder(tmp_path) as folder:
        steps = []
        with pytest.raises(PermissionError, match="read_only"):
            make_trainer(folder, loss=lambda m, i, s: steps.append(s) or squared_error(m, i, s)
                         ).fit()
        assert steps == []


def test_a_checkpoint_of_another_seed_is_refused(tmp_path):
    make_trainer(tmp_path, seed=1, max_epochs=1).fit()
    with pytest.raises(InvalidCheckpointError, match="seeded with 1, this fit with 2"):
        make_trainer(tmp_path, seed=2).fit()


def test_a_checkpoint_of_another_tag_names_what_differs(tmp_path):
    tag = {"estimator": "E", "params": {"lr": "0.1"}, "data": {}, "data_fingerprint": "a"}
    make_trainer(tmp_path, checkpoint_tag=tag, max_epochs=1).fit()
    with pytest.raises(InvalidCheckpointError, match="lr=0.1 there, 0.2 here"):
        make_trainer(tmp_path, checkpoint_tag={**tag, "params": {"lr": "0.2"}}).fit()
    with pytest.raises(InvalidCheckpointError, match="other data.*delete"):
        make_trainer(tmp_path, checkpoint_tag={**tag, "data_fingerprint": "b"}).fit()


def test_a_checkpoint_of_an_earlier_version_is_refused_not_resumed(tmp_path):
    make_trainer(tmp_path, max_epochs=1).fit()
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    for key in ("seed", "checksum"):  # what earlier versions did not write
        del state[key]
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(InvalidCheckpointError, match="earlier version of latode.*delete"):
        make_trainer(tmp_path).fit()


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    straight = make_trainer(None, max_epochs=4).fit()
    make_trainer(tmp_path, max_epochs=3).fit()
    assert (tmp_path / PREVIOUS_CHECKPOINT_NAME).exists()
    flip_tensor_bytes(tmp_path / CHECKPOINT_NAME)
    with pytest.warns(RuntimeWarning, match="corrupted.*resuming from the epoch before"):
        resumed = make_trainer(tmp_path, max_epochs=4)
        resumed.fit()
    assert resumed.resumed_from_epoch == 2
    assert strip_times(resumed.history) == strip_times(straight)


def test_both_checkpoints_corrupted_is_an_error_that_says_what_to_delete(tmp_path):
    make_trainer(tmp_path, max_epochs=2).fit()
    flip_tensor_bytes(tmp_path / CHECKPOINT_NAME)
    flip_tensor_bytes(tmp_path / PREVIOUS_CHECKPOINT_NAME)
    with pytest.raises(InvalidCheckpointError) as info:
        make_trainer(tmp_path, max_epochs=3).fit()
    message = str(info.value)
    assert "Neither checkpoint" in message and "corrupted" in message
    assert f"Delete {CHECKPOINT_NAME} and {PREVIOUS_CHECKPOINT_NAME}" in message


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_a_pickle_in_the_checkpoint_is_refused_without_advice_to_unpickle_it(tmp_path):
    with open(tmp_path / CHECKPOINT_NAME, "wb") as handle:
        torch.save({"latode_kind": "checkpoint", "x": _Payload()}, handle)
    with pytest.raises(InvalidCheckpointError, match="Delete .*checkpoint.pt") as info:
        make_trainer(tmp_path).fit()
    assert "weights_only" not in str(info.value)


def test_fingerprint_sees_values_not_only_shapes():
    values = torch.linspace(-1, 1, 10)
    assert fingerprint({"v": values}) == fingerprint({"v": values.clone()})
    assert fingerprint({"v": values}) != fingerprint({"v": -values})
    assert fingerprint([1]) != fingerprint([1.0])
