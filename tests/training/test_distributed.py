"""Data-parallel training (latode.training.distributed).

The main test launches two CPU ranks with torchrun (gloo on 127.0.0.1) and checks that a
data-parallel fit equals a single-process fit with the same global batch, to float tolerance.
The comparison is exact only for objectives without random draws: the RNN forecaster
(``objective="reconstruct"``) and the ODE-Net classifier with a fixed-step solver (an adaptive
solver's steps depend on which rows share a batch). The latent ODE draws posterior noise per
rank, so for it the test checks what must still hold: both ranks end with identical weights.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from latode import ODENetClassifier, RNNForecaster
from latode.exceptions import SolverError
from latode.training import Trainer, distributed

RNN_PARAMS = dict(hidden_dim=8, max_epochs=3, batch_size=8, validation_fraction=0.25,
                  learning_rate=1e-2, patience=None, random_state=0, verbose=0)
CLASSIFIER_PARAMS = dict(width=8, solver="rk4", step_size=0.25, max_epochs=2, batch_size=16,
                         learning_rate=1e-2, random_state=0, verbose=0)


def series_frame() -> pd.DataFrame:
    """22 irregular series: 5 held out, 17 train in global batches of 8, 8 and 1, so the
    last batch leaves rank 1 with a stand-in shard."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(22):
        t = np.sort(rng.uniform(0, 10, size=int(rng.integers(4, 12))))
        rows.append(pd.DataFrame({"unique_id": i, "ds": t,
                                  "y": np.sin(t + i) + 0.1 * rng.normal(size=len(t))}))
    return pd.concat(rows, ignore_index=True)


def classification_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


WORKER = textwrap.dedent('''
    import sys
    from pathlib import Path

    import torch

    from latode import LatentODEForecaster, ODENetClassifier, RNNForecaster
    from latode.exceptions import InvalidCheckpointError
    from latode.training import distributed
    from test_distributed import (CLASSIFIER_PARAMS, RNN_PARAMS, classification_data,
                                  series_frame)

    out = Path(sys.argv[1])
    df = series_frame()
    rnn = RNNForecaster(**RNN_PARAMS).fit(df, checkpoint_dir=out / "checkpoints")
    # Rank 1 pointed at another (empty) folder: rank 0 would resume at epoch 3 and rank 1
    # start at 0, and their collectives would hang. Both ranks must raise instead.
    try:
        RNNForecaster(**{**RNN_PARAMS, "max_epochs": 4}).fit(
            df, checkpoint_dir=out / ("checkpoints" if distributed.rank() == 0 else "apart"))
        resumed_apart = None
    except InvalidCheckpointError as error:
        resumed_apart = str(error)
    clf = ODENetClassifier(**CLASSIFIER_PARAMS).fit(*classification_data())
    # random_state=None: the ranks draw different seeds and must agree on rank 0's.
    lode = LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn", solver="rk4",
                               step_size=0.5, max_epochs=1, batch_size=8, verbose=0,
                               random_state=None).fit(df)
    torch.save({
        "world": distributed.world_size(),
        "rnn": (rnn.module_.state_dict(), rnn.history_),
        "classifier": (clf.module_.state_dict(), clf.history_),
        "latent_ode": lode.module_.state_dict(),
        "resumed_apart": resumed_apart,
    }, out / f"rank{distributed.rank()}.pt")
    distributed.finish()
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_ranks(script: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--nnodes=1", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               str(script), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def run_two_ranks(worker: str, tmp_path: Path) -> list[dict]:
    """Run ``worker`` (a script's source) on two gloo ranks; what each rank saved to
    ``rank{r}.pt`` in ``tmp_path``."""
    script = tmp_path / "worker.py"
    script.write_text(worker)
    done = launch_two_ranks(script, str(tmp_path))
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def assert_same_fit(ddp, single, params) -> None:
    state, history = ddp
    assert len(history) == len(single.history_) == params["max_epochs"]
    for got, want in zip(history, single.history_):
        for key in ("train_loss", "val_loss", "grad_norm"):
            if key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    for name, tensor in single.module_.state_dict().items():
        np.testing.assert_allclose(state[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@pytest.mark.slow
def test_two_gloo_ranks_fit_what_one_process_fits(tmp_path):
    ranks = run_two_ranks(WORKER, tmp_path)
    assert [r["world"] for r in ranks] == [2, 2]

    df = series_frame()
    assert_same_fit(ranks[0]["rnn"], RNNForecaster(**RNN_PARAMS).fit(df), RNN_PARAMS)
    clf = ODENetClassifier(**CLASSIFIER_PARAMS).fit(*classification_data())
    assert_same_fit(ranks[0]["classifier"], clf, CLASSIFIER_PARAMS)

    # Summed gradients are the same on every rank, so the weights stay identical.
    for name, tensor in ranks[0]["latent_ode"].items():
        assert torch.equal(tensor, ranks[1]["latent_ode"][name]), name
    # Ranks that would resume from different checkpoints both stop with the same advice.
    for r in ranks:
        assert "did not resume from the same checkpoint" in r["resumed_apart"]
        assert "shared file system" in r["resumed_apart"]
    assert "this rank: 3 epochs" in ranks[0]["resumed_apart"]
    assert "this rank: 0 epochs" in ranks[1]["resumed_apart"]
    # Rank 0 wrote the checkpoint, and it holds the fit's history.
    checkpoint = torch.load(tmp_path / "checkpoints" / "checkpoint.pt", weights_only=False)
    assert len(checkpoint["history"]) == RNN_PARAMS["max_epochs"]
    # The epoch's checkpoint and the one before it; the lock went with the fit.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint.prev.pt", "checkpoint.pt"]


BACKWARD_FAILURE_WORKER = textwrap.dedent('''
    import sys
    import warnings
    from pathlib import Path

    import torch
    from torch import nn

    from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
    from latode.exceptions import SolverError
    from latode.training import Trainer, distributed

    class Field(nn.Module):
        """tanh(W z); raises SolverError inside the adjoint's backward solve when asked (the
        backward solve evaluates the field with gradients on, the forward solve without)."""

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.fail_backward = False

        def forward(self, t, z):
            if self.fail_backward and torch.is_grad_enabled():
                raise SolverError("injected backward failure")
            return torch.tanh(self.linear(z))

    torch.manual_seed(0)
    field = Field()
    module = CountedDynamics(field)
    options = SolverOptions(method="rk4", step_size=0.25, adjoint=True)
    data = [torch.randn(8, 2, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    calls = []

    def batch_loss(module, z0, step):
        calls.append(len(calls))
        # The second step's backward solve fails on rank 1 alone.
        field.fail_backward = distributed.rank() == 1 and len(calls) == 2
        return odeint_checked(module, z0, torch.tensor([0.0, 1.0]), options)[-1].pow(2).mean()

    out = Path(sys.argv[1])
    loss, batches, _, average, _ = distributed.prepare(module, batch_loss, lambda g: data, None,
                                                      0, "test")
    trainer = Trainer(module, loss, batches, max_epochs=2, learning_rate=1e-2,
                      distributed_average=average)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit()
    torch.save({"state": module.state_dict(), "bad_steps": trainer.total_bad_steps,
                "steps": trainer.global_step,
                "warnings": [str(w.message) for w in caught]},
               out / f"rank{distributed.rank()}.pt")
    distributed.finish()
''')


@pytest.mark.slow
def test_a_backward_solve_failing_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    ranks = run_two_ranks(BACKWARD_FAILURE_WORKER, tmp_path)
    # Both ranks skipped the same one step of six and went on together.
    assert [(r["bad_steps"], r["steps"]) for r in ranks] == [(1, 5), (1, 5)]
    assert any("another rank's backward pass" in w for w in ranks[0]["warnings"])
    assert any("injected backward failure" in w for w in ranks[1]["warnings"])
    for name, tensor in ranks[0]["state"].items():
        assert torch.equal(tensor, ranks[1]["state"][name]), name


def test_a_failed_backward_outside_a_distributed_fit_is_raised_as_it_came():
    error = SolverError("underflow")
    with pytest.raises(SolverError, match="underflow"):
        distributed.sum_gradients(torch.nn.Linear(2, 1), error)


# ------------------------------------------------------------ in-process behaviour
@pytest.fixture
def rank_one_of_two(monkeypatch):
    """The environment torchrun gives rank 1 of 2, before any process group exists."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")


def test_one_process_is_rank_zero_of_one():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert not distributed.is_distributed()
    assert distributed.all_reduce_sum([1.5, -2.0]) == [1.5, -2.0]
    positions = np.arange(7)
    assert distributed.own_part(positions).tolist() == positions.tolist()


def test_ranks_take_contiguous_shares_and_stand_in_when_short(rank_one_of_two):
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (1, 2, False)
    assert distributed.own_part(np.arange(7)).tolist() == [4, 5, 6]
    shards = list(distributed.shard_batches(np.arange(10, 15), 4, lambda s: s.tolist(),
                                            lambda batch: 10.0 * len(batch)))
    # Global batches [10..13] and [14]: rank 1 owns [12, 13], then borrows 14 at weight 0.
    assert [(s.batch, s.weight) for s in shards] == [([12, 13], 20.0), ([14], 0.0)]
    rows = distributed.shard_rows((torch.arange(5), torch.arange(5) * 2))
    assert [t.tolist() for t in rows.batch] == [[3, 4], [6, 8]] and rows.weight == 2.0


def test_the_synchronized_loss_passes_the_training_clock_on():
    seen = []

    def loss(module, batch, step):
        seen.append(step)
        return module(batch).pow(2).mean()

    module = torch.nn.Linear(2, 1)
    distributed.synchronized_loss(loss)(module, distributed.Shard(torch.ones(3, 2), 3.0), 5)
    assert seen == [5]


def test_only_rank_zero_writes_checkpoints(rank_one_of_two, tmp_path):
    module = torch.nn.Linear(2, 1)
    data = [torch.ones(3, 2)]
    trainer = Trainer(module, lambda m, x, step: m(x).pow(2).mean(), lambda g: data, max_epochs=2,
                      checkpoint_dir=tmp_path)
    trainer.fit()
    assert len(trainer.history) == 2
    assert not any(tmp_path.iterdir())


def test_cuda_under_a_launcher_is_this_ranks_gpu(rank_one_of_two):
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    assert distributed.local_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    count = max(torch.cuda.device_count(), 1)
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 1 % count)
