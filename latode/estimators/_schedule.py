"""How long a forecaster trains: batch size, epochs and patience that follow the data.

A fixed number of epochs means very different training for 50 series (one optimisation step
an epoch at 50 series a batch) and for 4000 (eighty). With ``"auto"``, the plan is set in
optimisation steps instead: batches small enough that even a few dozen series give several
steps an epoch, about :data:`TARGET_STEPS` steps in all, and a patience of about a tenth of
that, so early stopping waits the same number of steps at any data size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AUTO", "AUTO_FINAL_LR_FRACTION", "TARGET_STEPS", "TrainingPlan", "training_plan",
           "decay_over", "resolve_lr_decay", "plan_lr_decay", "prediction_chunk"]

AUTO = "auto"
#: Optimisation steps an ``"auto"`` plan aims for (before early stopping).
TARGET_STEPS = 2000
#: Largest batch an ``"auto"`` plan uses, and the smallest.
MAX_BATCH, MIN_BATCH = 50, 8
#: Fewest and most epochs an ``"auto"`` plan runs (an estimator may cap it lower).
MIN_EPOCHS, MAX_EPOCHS = 10, 300
#: ``lr_decay="auto"``: the learning rate falls exponentially to this fraction of its start
#: over a plan's ``decay_epochs``.
AUTO_FINAL_LR_FRACTION = 0.1


@dataclass(frozen=True)
class TrainingPlan:
    """Resolved training length.

    Attributes
    ----------
    batch_size, max_epochs : int
    patience : int or None
    decay_epochs : int
        Epochs over which ``lr_decay="auto"`` brings the rate down to
        :data:`AUTO_FINAL_LR_FRACTION`: ``max_epochs``, or with an ``"auto"`` ``max_epochs``
        the plan's length before an estimator's epoch cap (about :data:`TARGET_STEPS`
        steps). The cap bounds a fit's time; it does not hurry the schedule, so a capped
        fit ends at a rate above the fraction.
    """

    batch_size: int
    max_epochs: int
    patience: int | None
    decay_epochs: int


def training_plan(n_train: int, batch_size: int | str, max_epochs: int | str,
                  patience: int | str | None, most_epochs: int = MAX_EPOCHS) -> TrainingPlan:
    """Resolve ``"auto"`` settings for ``n_train`` training series.

    ``most_epochs`` caps an ``"auto"`` ``max_epochs`` (small data sets reach it: a few steps an
    epoch would otherwise ask for hundreds of epochs).

    Examples
    --------
    >>> training_plan(50, "auto", "auto", "auto")
    TrainingPlan(batch_size=13, max_epochs=300, patience=50, decay_epochs=500)
    >>> training_plan(3000, "auto", "auto", "auto")
    TrainingPlan(batch_size=50, max_epochs=34, patience=10, decay_epochs=34)
    >>> training_plan(3000, 100, 5, None)
    TrainingPlan(batch_size=100, max_epochs=5, patience=None, decay_epochs=5)
    >>> training_plan(50, "auto", "auto", "auto", most_epochs=150)
    TrainingPlan(batch_size=13, max_epochs=150, patience=50, decay_epochs=500)
    """
    n_train = max(int(n_train), 1)
    if batch_size == AUTO:
        batch_size = min(MAX_BATCH, max(MIN_BATCH, math.ceil(n_train / 4)))
    steps_per_epoch = math.ceil(n_train / int(batch_size))
    if max_epochs == AUTO:
        decay_epochs = max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))
        max_epochs = min(most_epochs, decay_epochs)
    else:
        decay_epochs = max_epochs
    if patience == AUTO:
        patience = max(10, math.ceil(TARGET_STEPS / 10 / steps_per_epoch))
    return TrainingPlan(int(batch_size), int(max_epochs), patience, int(decay_epochs))


def decay_over(n_steps: int, final_fraction: float) -> float:
    """The per-step learning-rate factor that reaches ``final_fraction`` of the starting rate
    after ``n_steps`` optimisation steps (the ``lr_decay="auto"`` schedules).

    Examples
    --------
    >>> round(decay_over(100, 0.01) ** 100, 6)
    0.01
    """
    return float(final_fraction) ** (1.0 / max(1, int(n_steps)))


def resolve_lr_decay(lr_decay: float | str, n_steps: int, final_fraction: float) -> float:
    """An estimator's per-step learning-rate factor: ``lr_decay`` itself, or with ``"auto"``
    the factor that reaches ``final_fraction`` of the starting rate after ``n_steps``
    optimisation steps (:func:`decay_over`).

    Examples
    --------
    >>> resolve_lr_decay(0.999, 100, 0.1)
    0.999
    >>> round(resolve_lr_decay("auto", 100, 0.1) ** 100, 6)
    0.1
    """
    if lr_decay == AUTO:
        return decay_over(n_steps, final_fraction)
    return float(lr_decay)


def plan_lr_decay(lr_decay: float | str, plan: TrainingPlan, n_train: int) -> float:
    """The per-step learning-rate factor of a plan: ``lr_decay`` itself, or with ``"auto"``
    the factor that brings the rate down to :data:`AUTO_FINAL_LR_FRACTION` of its start by
    the last step of the plan's ``decay_epochs`` on ``n_train`` training series.

    Examples
    --------
    >>> plan = training_plan(50, "auto", "auto", "auto", most_epochs=225)
    >>> round(plan_lr_decay("auto", plan, 50) ** (500 * 4), 6)
    0.1
    >>> explicit = training_plan(50, "auto", 100, "auto")
    >>> round(plan_lr_decay("auto", explicit, 50) ** (100 * 4), 6)
    0.1
    >>> plan_lr_decay(0.999, plan, 50)
    0.999
    """
    steps = plan.decay_epochs * math.ceil(max(int(n_train), 1) / plan.batch_size)
    return resolve_lr_decay(lr_decay, steps, AUTO_FINAL_LR_FRACTION)


def prediction_chunk(batch_size: int | str) -> int:
    """Series per solve when forecasting or scoring: the training batch size, or
    :data:`MAX_BATCH` with ``"auto"``."""
    return MAX_BATCH if batch_size == AUTO else int(batch_size)
