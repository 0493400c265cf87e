"""The one training loop every latode estimator uses.

The estimator supplies what is specific to its model — how to draw an epoch's batches, the
loss of a batch, the validation score — and the :class:`Trainer` does the rest: optimisation,
gradient clipping, NFE counting, skipping non-finite steps, recovering from solver failures,
callbacks, the per-epoch ``history`` and atomic checkpoints that make a killed fit resumable
with the same result.

Checkpoints cannot resume the wrong model: a checkpoint records its fit's tag (estimator,
parameters, data fingerprint) and seed, and another fit's is refused; a lock keeps a second
fit out of a folder in use; each file carries a checksum, and the previous epoch's file is
kept as ``checkpoint.prev.pt`` to resume from when the latest is corrupted.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from latode._numerics import count_nfe, reset_nfe, solver_error_from
from latode.exceptions import (
    CheckpointInUseError,
    InvalidCheckpointError,
    SolverError,
    TrainingDivergedError,
)
from latode.training import distributed
from latode.training.callbacks import Callback, EarlyStopping
from latode.training.checkpoint import (
    CHECKPOINT_NAME,
    LOCK_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    FolderLock,
    atomic_save,
    checkpoint_difference,
    read_checkpoint,
)

__all__ = ["Trainer", "CHECKPOINT_NAME", "ema_with_warmup"]
BatchLoss = Callable[[nn.Module, Any, int],
                     "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


def ema_with_warmup(decay: float) -> Callable:
    """An exponential moving average of the weights whose decay warms up to ``decay``.

    The n-th update (n = 1, 2, ...: the averages taken so far) uses the decay
    ``min(decay, n / (n + 9))``, as TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``: an average that starts at the first weights with the full decay lags
    about ``1 / (1 - decay)`` steps behind training (100 steps at 0.99), so early in a fit
    it holds weights from before most of the progress. With the warm-up the average follows
    closely at first and reaches the full decay after ``9 decay / (1 - decay)`` updates
    (891 at 0.99).

    Parameters
    ----------
    decay : float in (0, 1)

    Returns
    -------
    callable
        ``update(averaged, current, n_averaged)`` for ``AveragedModel(multi_avg_fn=...)``.

    Examples
    --------
    >>> average, weight = [torch.zeros(1)], [torch.ones(1)]
    >>> ema_with_warmup(0.99)(average, weight, torch.tensor(1))  # decay 1/10
    >>> average[0]
    tensor([0.9000])
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor],
               n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        step_decay = min(decay, n / (n + 9.0))
        for average, weight in zip(averaged, current, strict=True):
            average.lerp_(weight, 1.0 - step_decay)

    return update


class Trainer:
    """Train ``module`` by minimising ``batch_loss`` with Adam.

    Parameters
    ----------
    module : nn.Module
        The model; its parameters are optimised in place.
    batch_loss : callable
        ``batch_loss(module, batch, step)`` returns a scalar loss tensor, or
        ``(loss, metrics)`` where ``metrics`` maps names to floats averaged into the epoch's
        record. ``step`` is the training clock, :attr:`global_step` before this batch's
        update (0 on the first batch): schedules inside a loss (a KL warm-up) read it here,
        so they continue where a resumed fit stopped and no loss needs the trainer.
    batches : callable
        ``batches(generator)`` returns the epoch's batches; shuffle with ``generator`` (a
        ``torch.Generator`` whose state is checkpointed) so a resumed fit sees the same ones.
    validate : callable or None
        ``validate(module)`` returns the validation loss (float) or a dict of floats that
        includes ``"val_loss"``; called without gradients, in eval mode, after each epoch.
    max_epochs : int
    learning_rate, weight_decay : float
    grad_clip : float or None
        Clip the gradients' global norm to this value.
    max_bad_steps : int
        Consecutive failed steps (non-finite loss or gradient, solver failure) after which
        training stops with :class:`TrainingDivergedError`, keeping the best weights.
    lr_decay_on_bad : float
        Factor applied to the learning rate after each failed step.
    lr_decay : float
        Factor in (0, 1] applied to the learning rate after each optimisation step (an
        exponential schedule, as Rubanova et al. 2019 use with 0.999); 1.0 keeps it constant.
    min_learning_rate : float
        Floor of that schedule: the decay stops there (a rate already below it, after failed
        steps, is left alone).
    ema_decay : float in (0, 1) or None
        Keep an exponential moving average of the weights, updated after every step with
        this decay (torch's :class:`~torch.optim.swa_utils.AveragedModel`; warmed up, see
        :func:`ema_with_warmup`): validation, early stopping and the weights ``fit`` ends
        with use the average. With few series a step moves the weights far, and forecasts
        from consecutive epochs' weights differ more than their validation scores tell; the
        average removes that lottery. ``None``: the last weights.
    callbacks : sequence of Callback
    checkpoint_dir : path or None
        Write ``checkpoint.pt`` there atomically after every epoch (keeping the one before
        as ``checkpoint.prev.pt``) and resume from it. The folder is locked while ``fit``
        runs (a second fit on it raises :class:`~latode.exceptions.CheckpointInUseError`)
        and must be writable (``PermissionError`` before the first epoch otherwise).
    checkpoint_tag : dict or None
        Plain data identifying the run (estimator, parameters, data fingerprint); a
        checkpoint with another tag is refused instead of being resumed into the wrong model.
    seed : int
        Seeds the batch generator; recorded in the checkpoint, whose seed must match (the
        caller's validation split and initial weights follow it).
    distributed_average : callable or None
        ``distributed_average(module, error)``, called after ``backward`` with the exception
        ``backward`` raised on this process (or ``None``); averages gradients across
        processes when training under ``torch.distributed``, and raises on every process
        when ``backward`` failed on any (see :mod:`latode.training.distributed`).
    """

    def __init__(
        self,
        module: nn.Module,
        batch_loss: BatchLoss,
        batches: Callable[[torch.Generator], Iterable[Any]],
        *,
        validate: Callable[[nn.Module], float | dict[str, float]] | None = None,
        max_epochs: int = 100,
        learning_rate: float = 1e-2,
        weight_decay: float = 0.0,
        grad_clip: float | None = None,
        max_bad_steps: int = 10,
        lr_decay_on_bad: float = 0.5,
        lr_decay: float = 1.0,
        min_learning_rate: float = 0.0,
        ema_decay: float | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        checkpoint_tag: dict[str, Any] | None = None,
        seed: int = 0,
        distributed_average: Callable[[nn.Module, BaseException | None], None] | None = None,
    ):
        self.module = module
        self.batch_loss = batch_loss
        self.batches = batches
        self.validate = validate
        self.max_epochs = max_epochs
        self.grad_clip = grad_clip
        self.max_bad_steps = max_bad_steps
        self.lr_decay_on_bad = lr_decay_on_bad
        if not 0.0 < lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1] (1.0: constant rate); got {lr_decay!r}.")
        if not min_learning_rate >= 0.0:
            raise ValueError(f"min_learning_rate must be >= 0; got {min_learning_rate!r}.")
        self.lr_decay = lr_decay
        self.min_learning_rate = min_learning_rate
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None; got {ema_decay!r}.")
        self.averaged = None if ema_decay is None else AveragedModel(
            module, multi_avg_fn=ema_with_warmup(float(ema_decay)))
        self.callbacks = list(callbacks)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_tag = checkpoint_tag or {}
        self.seed = int(seed)
        self._lock: FolderLock | None = None
        self.distributed_average = distributed_average
        self.optimizer = torch.optim.Adam(
            module.parameters(), lr=learning_rate, weight_decay=weight_decay
        )
        self.generator = torch.Generator().manual_seed(int(seed))
        self.history: list[dict[str, float]] = []
        self.stop_training = False
        self.total_bad_steps = 0
        #: Optimisation steps taken (skipped steps not counted); checkpointed, so schedules
        #: that depend on it (KL warm-up) continue where a resumed fit stopped.
        self.global_step = 0
        self.resumed_from_epoch = 0
        self._consecutive_bad = 0
        self._last_good_state = copy.deepcopy(module.state_dict())

    # ------------------------------------------------------------------ public
    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation scores and early stopping keeps: the moving average with
        ``ema_decay``, else the module itself."""
        return self.module if self.averaged is None else self.averaged.module

    def fit(self) -> list[dict[str, float]]:
        """Run (or resume) training; returns the history, one dict per epoch."""
        try:
            self._resume_on_every_rank()
            for callback in self.callbacks:
                callback.on_fit_start(self)
            try:
                while not self.stop_training and len(self.history) < self.max_epochs:
                    record = self._run_epoch(epoch=len(self.history) + 1)
                    self.history.append(record)
                    for callback in self.callbacks:
                        callback.on_epoch_end(self, record)
                    self._last_good_state = copy.deepcopy(self.module.state_dict())
                    self._save_checkpoint()
            finally:
                self._restore_best()
                for callback in self.callbacks:
                    callback.on_fit_end(self)
        finally:
            if self._lock is not None:
                self._lock.release()
        return self.history

    # ------------------------------------------------------------------ epoch
    def _run_epoch(self, epoch: int) -> dict[str, float]:
        self.module.train()
        start = time.perf_counter()
        totals: dict[str, float] = {}
        good_steps = 0
        bad_steps = 0
        for batch in self.batches(self.generator):
            outcome = self._step(batch)
            if outcome is None:
                bad_steps += 1
                continue
            good_steps += 1
            for key, value in outcome.items():
                totals[key] = totals.get(key, 0.0) + value
        record: dict[str, float] = {"epoch": float(epoch)}
        for key, value in totals.items():
            record[key] = value / good_steps
        record.setdefault("train_loss", math.nan)
        record.update(self._validation_record())
        record["lr"] = self.learning_rate
        record["bad_steps"] = float(bad_steps)
        record["epoch_time"] = time.perf_counter() - start
        return record

    def _step(self, batch: Any) -> dict[str, float] | None:
        """One optimisation step; returns its metrics, or ``None`` when it was skipped."""
        reset_nfe(self.module)
        try:
            out = self.batch_loss(self.module, batch, self.global_step)
            loss, metrics = out if isinstance(out, tuple) else (out, {})
            nfe_forward = count_nfe(self.module)
            if not torch.isfinite(loss):
                return self._bad_step("the loss is not finite")
            self.optimizer.zero_grad(set_to_none=True)
            backward_error = None
            try:
                loss.backward()
            except Exception as error:  # noqa: BLE001 - the other ranks must learn of it
                if self.distributed_average is None:
                    raise
                # An adjoint's backward solve can fail on one rank alone; raising here would
                # leave the others waiting for this rank's gradients forever.
                backward_error = error
            nfe_backward = count_nfe(self.module) - nfe_forward
            if self.distributed_average is not None:
                self.distributed_average(self.module, backward_error)
            norm = self._clip_gradients()
            if not math.isfinite(norm):
                return self._bad_step("the gradient is not finite")
            self.optimizer.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.module)
            self.global_step += 1
            self._decay_learning_rate()
        except (SolverError, AssertionError) as error:
            solver_error = solver_error_from(error)
            if solver_error is None:
                raise
            # Go back to the last weights that completed an epoch: the failed step may have
            # followed an update that made the dynamics stiff.
            self.module.load_state_dict(self._last_good_state)
            self.optimizer.zero_grad(set_to_none=True)
            return self._bad_step(str(solver_error), warn=True)
        self._consecutive_bad = 0
        return {
            "train_loss": float(loss.detach()),
            "nfe_forward": float(nfe_forward),
            "nfe_backward": float(nfe_backward),
            "grad_norm": norm,
            **{k: float(v) for k, v in metrics.items()},
        }

    def _clip_gradients(self) -> float:
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.grad_clip if self.grad_clip is not None else math.inf
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def _decay_learning_rate(self) -> None:
        """One step of the exponential schedule, never below ``min_learning_rate``."""
        if self.lr_decay == 1.0:
            return
        for group in self.optimizer.param_groups:
            if group["lr"] > self.min_learning_rate:
                group["lr"] = max(group["lr"] * self.lr_decay, self.min_learning_rate)

    def _bad_step(self, reason: str, warn: bool = False) -> None:
        self.total_bad_steps += 1
        self._consecutive_bad += 1
        for group in self.optimizer.param_groups:
            group["lr"] *= self.lr_decay_on_bad
        if warn:
            warnings.warn(
                f"Skipped a training step: {reason} Weights went back to the last good "
                f"epoch; learning rate reduced to {self.learning_rate:.3g}.",
                RuntimeWarning,
                stacklevel=3,
            )
        if self._consecutive_bad >= self.max_bad_steps:
            raise TrainingDivergedError(
                f"Training stopped after {self._consecutive_bad} consecutive failed steps "
                f"(last: {reason}). The best weights seen so far are kept. Lower the "
                f"learning_rate, set grad_clip, or loosen the solver tolerances."
            )
        return None

    def _validation_record(self) -> dict[str, float]:
        if self.validate is None:
            return {}
        evaluated = self.evaluated
        evaluated.eval()
        try:
            with torch.no_grad():
                out = self.validate(evaluated)
        except SolverError as error:
            warnings.warn(f"Validation solve failed: {error}", RuntimeWarning, stacklevel=3)
            out = math.inf
        finally:
            evaluated.train()
        if isinstance(out, dict):
            return {k: float(v) for k, v in out.items()}
        return {"val_loss": float(out)}

    def _restore_best(self) -> None:
        for callback in self.callbacks:
            if isinstance(callback, EarlyStopping) and callback.best_state is not None:
                self.module.load_state_dict(callback.best_state)
                return
        if self.averaged is not None and self.global_step:
            self.module.load_state_dict(self.averaged.module.state_dict())

    # ------------------------------------------------------------- checkpoints
    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _lock_checkpoint_dir(self) -> None:
        """Take the folder's lock, which also proves it writable before the first epoch."""
        # Under torch.distributed only rank 0 writes, so only rank 0 locks.
        if self.checkpoint_dir is None or not distributed.is_main():
            return
        lock = FolderLock(self.checkpoint_dir, LOCK_NAME)
        lock.acquire()
        self._lock = lock

    def _save_checkpoint(self) -> None:
        path = self._checkpoint_path()
        # Under torch.distributed every rank holds the same state; rank 0 alone writes it.
        if path is None or not distributed.is_main():
            return
        atomic_save(
            {
                "latode_kind": "checkpoint",
                "tag": self.checkpoint_tag,
                "seed": self.seed,
                "module": self.module.state_dict(),
                "averaged": None if self.averaged is None else self.averaged.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": self.history,
                "stopped": self.stop_training,
                "total_bad_steps": self.total_bad_steps,
                "global_step": self.global_step,
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                # Training draws on a GPU come from its own generator (the latent ODE's
                # posterior noise): without its state a resumed fit would draw anew.
                "cuda_rng": (torch.cuda.get_rng_state_all() if torch.cuda.is_initialized()
                             else None),
                "callbacks": [cb.state_dict() for cb in self.callbacks],
            },
            path,
            checksum=True,
            previous=path.with_name(PREVIOUS_CHECKPOINT_NAME),
        )

    def _resume_on_every_rank(self) -> None:
        """:meth:`_resume_if_possible`, with the ranks of a distributed fit agreeing first:
        a rank that resumed alone (a node-local ``checkpoint_dir``, or a checkpoint only one
        rank rejects) would run other epochs than the rest and hang their collectives."""
        try:
            self._lock_checkpoint_dir()
            self._resume_if_possible()
            problem = None
        except (InvalidCheckpointError, CheckpointInUseError, PermissionError) as error:
            problem = error
        if not distributed.is_distributed():
            if problem is not None:
                raise problem
            return
        (failures,) = distributed.all_reduce_sum([problem is not None])
        if failures or not distributed.ranks_agree(len(self.history)):
            raise InvalidCheckpointError(
                f"The {distributed.world_size()} ranks of this distributed fit did not resume "
                f"from the same checkpoint (this rank: {len(self.history)} epochs"
                f"{'; ' + str(problem) if problem else ''}). checkpoint_dir must be one "
                "folder every rank reads (a shared file system), or empty on every rank."
            ) from problem

    def _resume_if_possible(self) -> None:
        if self.checkpoint_dir is None:
            return
        state = read_checkpoint(self.checkpoint_dir)
        if state is None:
            return
        difference = checkpoint_difference(state, self.checkpoint_tag, self.seed)
        if difference:
            raise InvalidCheckpointError(
                f"The checkpoint in {str(self.checkpoint_dir)!r} belongs to another fit: "
                f"{difference}. Resuming it would continue another model. Pass another "
                f"checkpoint_dir, or delete {str(self._checkpoint_path())!r} (and "
                f"{PREVIOUS_CHECKPOINT_NAME}) to start over."
            )
        self.module.load_state_dict(state["module"])
        if self.averaged is not None and state.get("averaged") is not None:
            self.averaged.load_state_dict(state["averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state["history"])
        # A run that stopped early stays stopped; one that reached its max_epochs continues
        # when asked for more epochs.
        self.stop_training = bool(state["stopped"])
        self.total_bad_steps = int(state["total_bad_steps"])
        self.global_step = int(state.get("global_step", 0))
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng")
        if cuda_rng is not None and torch.cuda.is_available() \
                and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)
        for callback, cb_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(cb_state)
        self.resumed_from_epoch = len(self.history)
        self._last_good_state = copy.deepcopy(self.module.state_dict())
