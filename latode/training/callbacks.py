"""Callbacks: what varies between fits (progress, early stopping, checkpoints, tracking).

A callback sees the :class:`~latode.training.trainer.Trainer` at three moments:
``on_fit_start``, ``on_epoch_end`` (with the epoch's record, a dict of floats) and
``on_fit_end``. It may set ``trainer.stop_training = True`` to end training.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from latode.training.trainer import Trainer

__all__ = ["Callback", "ProgressBar", "EarlyStopping"]


class Callback:
    """Base class; every hook does nothing by default."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch (also when resuming)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Called after each epoch with that epoch's history record."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after the last epoch, also when training stops early or fails."""

    # Callbacks with state that must survive a resume implement these two.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class ProgressBar(Callback):
    """A tqdm bar over epochs showing the latest losses; silent when ``verbose=0``."""

    def __init__(self, total: int, description: str = "fit", verbose: int = 1):
        self.total = total
        self.description = description
        self.verbose = verbose
        self._bar = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.verbose:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total, initial=len(trainer.history), desc=self.description,
                unit="epoch", leave=self.verbose > 1,
            )

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self._bar is not None:
            shown = {k: f"{record[k]:.4g}" for k in ("train_loss", "val_loss") if k in record}
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Keeps a copy of the best weights in ``best_state`` (the trainer's moving average when it
    keeps one); the trainer restores them at the end.
    """

    def __init__(self, monitor: str = "val_loss", patience: int | None = 10,
                 min_delta: float = 0.0):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.best_score = float("inf")
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.wait = 0

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        key = self.monitor if self.monitor in record else "train_loss"
        if key == "train_loss" and record.get("kl_weight", 1.0) < 1.0:
            # An epoch of KL warm-up reports a loss with the KL term turned down: lower than
            # the bound later epochs report, it would win as "best" unfairly. Neither the
            # best weights nor the patience move until the objective is the full bound
            # (validation losses always use the full bound).
            return
        score = record.get(key)
        if score is not None and score < self.best_score - self.min_delta:
            self.best_score = float(score)
            self.best_epoch = int(record["epoch"])
            self.best_state = copy.deepcopy(trainer.evaluated.state_dict())
            self.wait = 0
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                trainer.stop_training = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score, "best_epoch": self.best_epoch,
            "best_state": self.best_state, "wait": self.wait,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.best_state = state["best_state"]
        self.wait = state["wait"]
