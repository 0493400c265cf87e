"""The shared trainer, its callbacks and checkpoints."""

from latode.training.callbacks import Callback, EarlyStopping, ProgressBar
from latode.training.checkpoint import atomic_save, safe_load
from latode.training.trainer import CHECKPOINT_NAME, Trainer

__all__ = [
    "CHECKPOINT_NAME",
    "Callback",
    "EarlyStopping",
    "ProgressBar",
    "Trainer",
    "atomic_save",
    "safe_load",
]
