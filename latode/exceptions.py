"""The exceptions latode raises, rooted in one :class:`LatodeError`.

Catch :class:`LatodeError` to handle anything latode reports on purpose. Bad user input is
reported with the built-in :class:`ValueError` / :class:`TypeError` (as scikit-learn does), so
code written for scikit-learn estimators keeps working.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "LatodeError",
    "SolverError",
    "NotFittedError",
    "TrainingDivergedError",
    "InvalidCheckpointError",
    "CheckpointInUseError",
]


class LatodeError(Exception):
    """Base class of every error latode raises on purpose."""


class SolverError(LatodeError, RuntimeError):
    """An ODE solve failed: step-size underflow, step budget or time budget exhausted.

    The message names the remedy (looser ``rtol``/``atol``, a fixed-step solver, a larger
    ``max_num_steps``, a smaller learning rate).
    """


class NotFittedError(LatodeError, _SklearnNotFittedError):
    """The estimator is used before ``fit``; also a scikit-learn ``NotFittedError``."""


class TrainingDivergedError(LatodeError, RuntimeError):
    """Training produced too many consecutive non-finite losses or failed solves.

    The estimator keeps the best weights seen before the failure.
    """


class InvalidCheckpointError(LatodeError, ValueError):
    """A file given to ``load`` is not a latode checkpoint (or is of another estimator)."""


class CheckpointInUseError(LatodeError, RuntimeError):
    """Another fit holds the lock on this ``checkpoint_dir``.

    Two fits writing one folder would each resume the other's epochs and end with whichever
    wrote last; the second is refused instead. The message names the lock file and its
    owner's process id.
    """
