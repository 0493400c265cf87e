"""Data-parallel training under ``torch.distributed``, one process per rank as ``torchrun``
starts them.

Every rank holds the whole packed frame and an identical model. Each *global* batch — the
batch one process would train on — is cut into one contiguous shard per rank; each rank
computes the loss of its shard, and gradients are summed across ranks, so that a step equals
the single-process step on the global batch. The batch losses latode uses are means over a
count ``w`` (observed values for forecasters, rows for classifiers and densities), so a rank
scales its shard's loss by its share of that count:

.. math::

    L_r = L(\\text{shard}_r) \\, \\frac{w_r}{W}, \\qquad W = \\sum_r w_r, \\qquad
    \\sum_r \\nabla L_r = \\nabla L(\\text{global batch}).

Losses, metrics, solver failures and validation scores are reduced across ranks, so every
rank takes the same decisions (skip a step, lower the learning rate, stop early). Rank 0 alone
shows progress, logs to MLflow and writes checkpoints and models.

Outside ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment and no process group) every
helper here is the identity: single-process fits are unchanged.

Examples
--------
>>> world_size(), rank(), is_main()
(1, 0, True)
>>> all_reduce_sum([1.5, 2.0])
[1.5, 2.0]
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from latode._numerics import solver_error_from
from latode.exceptions import LatodeError, SolverError
from latode.training.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from latode.training.trainer import Trainer

__all__ = [
    "PeerFailureError",
    "RankRandomness",
    "Shard",
    "agree_seed",
    "all_reduce_sum",
    "broadcast_module",
    "finish",
    "init_from_env",
    "is_distributed",
    "is_main",
    "local_device",
    "own_part",
    "prepare",
    "rank",
    "shard_batches",
    "shard_rows",
    "sharded",
    "sum_gradients",
    "synchronized_loss",
    "synchronized_validation",
    "world_size",
]


# ---------------------------------------------------------------- environment
def _launched() -> bool:
    """``torchrun`` (or another launcher) described a group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str | torch.device | None = None) -> bool:
    """Join the process group the environment describes, once; ``True`` when distributed.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by ``torchrun``).
    The backend is NCCL for a CUDA ``device``, gloo otherwise. A group the caller initialised
    itself is used as it is.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if not _launched():
        return False
    cuda = device is not None and torch.device(device).type == "cuda"
    backend = "nccl" if cuda and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_device(torch.device("cuda")))
    dist.init_process_group(backend=backend)
    return True


def finish(wait: bool = True) -> None:
    """Leave the process group (if this process joined one); the CLI calls it at exit.

    ``wait`` meets every rank at a barrier first: a rank that tears gloo down while a peer
    still talks to it can abort ("terminate called without an active exception"). Pass
    ``False`` from a rank leaving on an error, whose peers may never reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def is_distributed() -> bool:
    """A process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a group; ``RANK`` before the group is joined)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if _launched() else 0


def world_size() -> int:
    """The number of ranks (1 outside a group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if _launched() else 1


def is_main() -> bool:
    """Rank 0: the one process that shows progress, tracks and writes files."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``cuda`` without an index becomes this process's GPU (``LOCAL_RANK`` modulo the GPU
    count) under a launcher; every other device is returned as it is."""
    if device.type != "cuda" or device.index is not None or "LOCAL_RANK" not in os.environ:
        return device
    count = max(torch.cuda.device_count(), 1)
    return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % count)


# ---------------------------------------------------------------- collectives
def _comm_device() -> torch.device:
    """Where collective tensors live: NCCL needs them on this rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum each value over the ranks (float64); the values themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    buffer = torch.tensor([float(v) for v in values], dtype=torch.float64,
                          device=_comm_device())
    dist.all_reduce(buffer)
    return buffer.cpu().tolist()


def agree_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every rank, so splits and batch orders coincide even when each
    rank drew its own (``random_state=None``)."""
    if not is_distributed():
        return int(seed)
    buffer = torch.tensor([int(seed)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(buffer, src=0)
    return int(buffer.item())


def ranks_agree(value: int) -> bool:
    """Whether every rank holds the same integer ``value`` (always in one process). Every
    rank must call it: it is a collective."""
    if not is_distributed():
        return True
    extremes = torch.tensor([int(value), -int(value)], dtype=torch.int64,
                            device=_comm_device())
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    return int(extremes[0]) == -int(extremes[1])


def _check_same_seed(seed: int, what: str) -> None:
    """Raise on every rank when the ranks' seeds differ."""
    if not ranks_agree(seed):
        raise ValueError(
            f"{what} runs under torch.distributed with {world_size()} ranks, but the ranks "
            "drew different seeds, so they would split and shuffle the data differently. "
            "Set random_state to the same integer on every rank."
        )


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (in place)."""
    if not is_distributed():
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def sum_gradients(module: nn.Module, backward_error: BaseException | None = None) -> None:
    """Sum every parameter's gradient over the ranks, in one all-reduce.

    A parameter no rank gave a gradient keeps ``grad=None``, as it would in one process (Adam
    skips it instead of stepping it with a zero gradient).

    ``backward_error`` is what this rank's ``backward`` raised, if it failed (an adjoint's
    backward solve can fail on one rank alone). The same all-reduce carries the news, so
    every rank raises together: :class:`~latode.exceptions.SolverError` when the failures
    were all solver failures (the trainer then skips the step everywhere), otherwise the
    error itself on its rank and :class:`PeerFailureError` on the others.
    """
    if not is_distributed():
        if backward_error is not None:
            raise backward_error
        return
    params = [p for p in module.parameters() if p.requires_grad]
    device = params[0].device if params else _comm_device()
    dtype = params[0].dtype if params else torch.float32
    solver_failed = backward_error is not None and solver_error_from(backward_error) is not None
    other_failed = backward_error is not None and not solver_failed
    pieces = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
              for p in params]
    flags = torch.tensor([p.grad is not None for p in params] + [solver_failed, other_failed],
                         dtype=dtype, device=device)
    flat = torch.cat(pieces + [flags]).to(_comm_device())
    dist.all_reduce(flat)
    n_solver, n_other = flat[-2:].tolist()
    _raise_failure(backward_error, n_solver, n_other, "backward pass")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.device, p.dtype).clone()
        offset += n
    for p, flag in zip(params, flat[offset:-2].tolist()):
        if flag == 0:
            p.grad = None


def _raise_failure(error: BaseException | None, n_solver: float, n_other: float,
                   where: str) -> None:
    """Raise on every rank once the ranks have counted their failures of one step: the
    step is skipped everywhere after solver failures and training stops after any other."""
    if n_other:
        if error is not None and solver_error_from(error) is None:
            raise error
        raise PeerFailureError("Training failed on another rank; see its error.")
    if n_solver:
        if error is not None:
            translated = solver_error_from(error)
            if translated is error:  # already a SolverError: not its own cause
                raise error
            raise translated from error
        raise SolverError(f"An ODE solve failed in another rank's {where}; skipping this "
                          "step on every rank.")


# ---------------------------------------------------------------- sharding
@dataclass
class Shard:
    """This rank's part of a global batch.

    Attributes
    ----------
    batch : Any
        What the estimator's batch loss reads.
    weight : float
        The shard's share of the batch loss's normaliser (observed values, rows). 0 for a
        stand-in: a rank whose share of a short last batch is empty computes the loss of one
        borrowed item (so every rank runs the same collectives) and contributes nothing.
    """

    batch: Any
    weight: float


def _own_slice(n: int) -> slice:
    """This rank's contiguous part of ``n`` items (the first ``n % world`` get one more)."""
    size, extra = divmod(n, world_size())
    r = rank()
    start = r * size + min(r, extra)
    return slice(start, start + size + (r < extra))


def own_part(positions: np.ndarray) -> np.ndarray:
    """This rank's contiguous share of ``positions`` (all of them in one process)."""
    return positions[_own_slice(len(positions))]


def shard_batches(positions: np.ndarray, batch_size: int,
                  make_batch: Callable[[np.ndarray], Any],
                  weight: Callable[[Any], float]) -> Iterator[Shard]:
    """Cut ``positions`` into global batches of ``batch_size`` and yield this rank's shards.

    Parameters
    ----------
    positions : ndarray
        The epoch's order (identical on every rank).
    make_batch : callable
        Builds a batch from positions (only this rank's are ever built).
    weight : callable
        The batch loss's normaliser of a built batch.
    """
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        own = own_part(chunk)
        if len(own):
            batch = make_batch(own)
            yield Shard(batch, float(weight(batch)))
        else:
            yield Shard(make_batch(chunk[:1]), 0.0)


def shard_rows(batch: Any) -> Shard:
    """This rank's rows of a tensor batch (a tensor or a tuple of tensors with the same
    first dimension); a :class:`Shard` passes through. The weight is the number of rows."""
    if isinstance(batch, Shard):
        return batch
    tensors = batch if isinstance(batch, tuple) else (batch,)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(
            "Data-parallel training shards batches that are tensors or tuples of tensors; "
            f"got {type(batch).__name__}. Yield latode.training.distributed.Shard objects "
            "from the estimator's batches instead."
        )
    rows = _own_slice(len(tensors[0]))
    weight = float(rows.stop - rows.start)
    if weight == 0:
        rows = slice(0, 1)
    picked = tuple(t[rows] for t in tensors)
    return Shard(picked if isinstance(batch, tuple) else picked[0], weight)


def sharded(batches: Callable[[torch.Generator], Iterable[Any]]
            ) -> Callable[[torch.Generator], Iterator[Shard]]:
    """Wrap an estimator's ``batches(generator)`` so that it yields this rank's shards."""

    def shards(generator: torch.Generator) -> Iterator[Shard]:
        return (shard_rows(batch) for batch in batches(generator))

    return shards


# ---------------------------------------------------------------- losses
class PeerFailureError(LatodeError, RuntimeError):
    """Another rank failed; this rank stops too rather than wait for it forever."""


def synchronized_loss(batch_loss: Callable[[nn.Module, Any, int], Any]
                      ) -> Callable[[nn.Module, Shard, int], Any]:
    """Wrap ``batch_loss(module, batch, step)`` for one rank's :class:`Shard`.

    The returned loss back-propagates this rank's weighted share (see the module docstring)
    but its *value* is the global batch's loss, and the metrics are the global batch's
    (weighted means), so the trainer's checks and records agree on every rank. A solver
    failure on any rank raises :class:`~latode.exceptions.SolverError` on every rank (the
    trainer then skips the step everywhere); any other failure stops every rank.
    """

    def loss(module: nn.Module, shard: Shard, step: int):
        solver_failed = other_failed = 0.0
        error: BaseException | None = None
        try:
            out = batch_loss(module, shard.batch, step)
            value, metrics = out if isinstance(out, tuple) else (out, {})
            local = float(value.detach())
        except Exception as caught:  # noqa: BLE001 - every rank must learn of the failure
            error, local = caught, 0.0
            if solver_error_from(caught) is not None:
                solver_failed = 1.0
            else:
                other_failed = 1.0
        weighted = shard.weight * local if shard.weight else 0.0
        n_solver, n_other, total, summed = all_reduce_sum(
            [solver_failed, other_failed, shard.weight, weighted])
        _raise_failure(error, n_solver, n_other, "loss")
        total = total if total > 0 else 1.0
        keys = sorted(metrics)
        reduced = all_reduce_sum([shard.weight * float(metrics[k]) for k in keys])
        if shard.weight:
            share = value * (shard.weight / total)
        else:
            # A stand-in's gradient must not reach the sum, not even as 0 * inf = NaN.
            share = torch.zeros((), dtype=value.dtype, device=value.device,
                                requires_grad=True)
        global_value = summed / total
        # Value of the global loss, gradient of this rank's share.
        reported = share + (global_value - share.detach())
        return reported, {k: r / total for k, r in zip(keys, reduced)}

    return loss


def synchronized_validation(validate: Callable[[nn.Module], Any]
                            ) -> Callable[[nn.Module], Any]:
    """Wrap ``validate(module)`` so every rank returns rank 0's record (early stopping then
    decides alike everywhere). Estimators that reduce their validation over ranks themselves
    return the same record on every rank, which this leaves unchanged."""

    def agreed(module: nn.Module):
        try:
            out = validate(module)
        except SolverError as error:
            # Raising here would leave the other ranks waiting in the broadcast below.
            warnings.warn(f"Validation solve failed: {error}", RuntimeWarning, stacklevel=2)
            out = math.inf
        shared = [out]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    return agreed


# ---------------------------------------------------------------- the trainer
class RankRandomness(Callback):
    """A callback that gives each rank > 0 its own torch random stream at the start of a fit.

    Every rank starts from the same seed (identical weights); without this, ranks would draw
    the same posterior noise for different series. Rank 0 keeps the stream a single process
    would have. After a resume the streams restart from a seed that depends on the epoch, so
    a resumed stochastic fit is repeatable but not identical to an uninterrupted one.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_fit_start(self, trainer: Trainer) -> None:
        if rank() > 0:
            torch.manual_seed(self.seed + 7919 * rank() + 104729 * len(trainer.history))


def prepare(module: nn.Module, batch_loss, batches, validate, seed: int, what: str):
    """Everything :meth:`TorchEstimator._train` changes for a data-parallel fit.

    Returns ``(batch_loss, batches, validate, distributed_average, callbacks)`` for the
    trainer; in one process the inputs unchanged, ``None`` and no callbacks.
    """
    first = next(module.parameters(), None)
    if not init_from_env(None if first is None else first.device):
        return batch_loss, batches, validate, None, []
    _check_same_seed(int(seed), what)
    broadcast_module(module)
    validate = None if validate is None else synchronized_validation(validate)
    return (synchronized_loss(batch_loss), sharded(batches), validate, sum_gradients,
            [RankRandomness(seed)])
