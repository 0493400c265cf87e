"""What every torch-backed latode estimator shares: parameters, seeding, devices, training,
saving and loading.

Concrete estimators inherit :class:`TorchEstimator`, declare their own parameters in
``__init__`` (stored unchanged, scikit-learn style) and implement:

* ``_fitted_state()`` — the plain data (numbers, strings, lists, dicts, tensors) besides the
  weights that describe the fitted model, including what is needed to rebuild ``module_``;
* ``_restore_fitted_state(state)`` — the inverse: set fitted attributes and build ``module_``.

A ``fit`` that takes ``tracking`` passes it to :meth:`TorchEstimator._train` and runs its
body inside ``with self._finishing_tracking(data):``, which ends the tracked run once every
fitted attribute is set (or the fit failed). The tracker itself comes from
:mod:`latode.estimators.registry`, where :mod:`latode.tracking` registers it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from latode._numerics import ADAPTIVE_METHODS, FIXED_STEP_METHODS, SolverOptions
from latode._params import InstanceOf, Interval, Options, validate_params
from latode.estimators import registry
from latode.exceptions import InvalidCheckpointError, NotFittedError
from latode.training import (
    EarlyStopping,
    ProgressBar,
    Trainer,
    atomic_save,
    distributed,
    safe_load,
)
from latode.training.checkpoint import fingerprint, read_checkpoint

__all__ = ["TorchEstimator", "COMMON_CONSTRAINTS", "SCHEDULE_CONSTRAINTS", "resolve_device",
           "seed_from"]

FORMAT_VERSION = 1

COMMON_CONSTRAINTS: dict[str, list] = {
    "solver": [Options(ADAPTIVE_METHODS + FIXED_STEP_METHODS)],
    "rtol": [Interval(float, 0, 1, closed="neither")],
    "atol": [Interval(float, 0, None, closed="neither")],
    "adjoint": [Options((True, False))],
    "step_size": [InstanceOf(type(None)), Interval(float, 0, None, closed="neither")],
    "max_num_steps": [Interval(int, 1, None)],
    "max_epochs": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "learning_rate": [Interval(float, 0, None, closed="neither")],
    "weight_decay": [Interval(float, 0, None)],
    "grad_clip": [InstanceOf(type(None)), Interval(float, 0, None, closed="neither")],
    "patience": [InstanceOf(type(None)), Interval(int, 1, None)],
    "validation_fraction": [Interval(float, 0, 1, closed="left")],
    "random_state": [InstanceOf(type(None)), Interval(int, 0, 2**32 - 1)],
    "device": [
        InstanceOf(str, torch.device, description="'auto', 'cpu', 'cuda', 'cuda:N' or a device")
    ],
    "verbose": [Interval(int, 0, None)],
}

#: The exponential learning-rate schedule of estimators that offer one (see Trainer); each
#: resolves ``lr_decay="auto"`` over its own training budget.
SCHEDULE_CONSTRAINTS: dict[str, list] = {
    "lr_decay": [Options(("auto",)), Interval(float, 0, 1, closed="right")],
    "min_learning_rate": [Interval(float, 0, None)],
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; a CUDA request without CUDA is an error.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r}."
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine. "
            "Use device='cpu' or device='auto'."
        )
    # Under torchrun, "cuda" is this process's GPU (LOCAL_RANK), not every rank's GPU 0.
    return distributed.local_device(resolved)


def seed_from(random_state: int | None) -> int:
    """An integer seed from ``random_state`` (``None`` draws a fresh one).

    Raises
    ------
    TypeError, ValueError
        Naming ``random_state`` when it is neither None, an int in [0, 2**32 - 1] nor a
        ``numpy.random.RandomState``.
    """
    if isinstance(random_state, (bool, np.bool_)) or not (
            random_state is None or isinstance(random_state, (int, np.integer,
                                                              np.random.RandomState))):
        raise TypeError(f"random_state must be None or an int in [0, 2**32 - 1]; got "
                        f"{random_state!r} of type {type(random_state).__name__}.")
    try:
        rng = check_random_state(random_state)
    except ValueError as error:
        raise ValueError(f"random_state must be None or an int in [0, 2**32 - 1]; got "
                         f"{random_state!r}.") from error
    return int(rng.randint(0, 2**31 - 1))


@contextlib.contextmanager
def seeded_by(generator: torch.Generator):
    """Run the block with torch's global CPU generator seeded from ``generator``, restoring
    it afterwards: code that draws from the global generator (a module's own ``randn``)
    becomes repeatable under the caller's seed without disturbing the user's stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        yield


def to_plain(value: Any) -> Any:
    """Convert numpy containers and scalars to what ``torch.load(weights_only=True)`` reads.

    A duration (``time_scale=pd.Timedelta("1D")``) becomes its string, ``"1 days 00:00:00"``,
    which every time argument reads as the same duration.
    """
    if isinstance(value, (datetime.timedelta, np.timedelta64)):
        return str(pd.Timedelta(value))
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


class TorchEstimator(BaseEstimator):
    """Base class of latode's torch-backed estimators (see the module docstring)."""

    #: subclasses merge their own constraints with COMMON_CONSTRAINTS
    _parameter_constraints: dict[str, list] = {}
    #: Parameters earlier versions took and this estimator no longer has; files saved with
    #: them still load (they changed nothing, so nothing is lost by dropping them).
    _retired_parameters: tuple[str, ...] = ()
    #: Parameters added since files were first saved, each with the value that reproduces
    #: what a file saved without it was fitted with.
    _added_parameters: dict[str, Any] = {}

    # ----------------------------------------------------------- fit helpers
    def _fit_seed(self, checkpoint_dir: str | os.PathLike | None) -> int:
        """The seed of this fit: :func:`seed_from` of ``random_state``, except that a fit
        with ``random_state=None`` continuing a checkpoint takes the seed that checkpoint's
        fit drew, so its validation split, initial weights and random draws stay the same.

        A checkpoint that cannot be read yields no seed here; the trainer reports it.
        """
        if self.random_state is None and checkpoint_dir is not None:
            try:
                state = read_checkpoint(checkpoint_dir, warn=False)
            except InvalidCheckpointError:
                state = None
            if state is not None and isinstance(state.get("seed"), int):
                return state["seed"]
        return seed_from(self.random_state)

    @contextlib.contextmanager
    def _finishing_tracking(self, data: Any):
        """Wrap the body of ``fit``: afterwards, hand the tracker ``_train`` started (see
        :func:`~latode.estimators.registry.make_fit_tracker`) the finished estimator, or the
        error the body raised. Only once ``fit`` has set every fitted attribute can the
        model be logged, which ``_train`` (whose caller sets ``module_``) is too early for.
        """
        try:
            yield
        except BaseException as error:
            self._finish_tracking(data, error)
            raise
        self._finish_tracking(data)

    def _finish_tracking(self, data: Any, error: BaseException | None = None) -> None:
        tracker = self.__dict__.pop("_fit_tracker", None)
        if tracker is not None:
            tracker.finish(self, data, error=error)

    def _validate_params(self) -> None:
        validate_params(self)

    def _solver_options(self, **overrides: Any) -> SolverOptions:
        values = dict(
            method=self.solver, rtol=float(self.rtol), atol=float(self.atol),
            adjoint=bool(self.adjoint), step_size=self.step_size,
            max_num_steps=int(self.max_num_steps),
        )
        values.update(overrides)
        return SolverOptions(**values)

    def _module_solvers(self, *, predicting: bool = False) -> dict[str, SolverOptions]:
        """The solver options of this estimator's module, from its current parameters.

        The one place that says which options go where: ``_build_module`` passes them to the
        module's constructor and :meth:`_solve_with_current_parameters` to its
        ``set_solver``, so both take them as the same keyword arguments.

        Parameters
        ----------
        predicting : bool
            Options for solves without gradients (an estimator may then drop the adjoint).

        Returns
        -------
        dict of str to SolverOptions
            Empty for modules that hold no options (they solve nothing, or are handed their
            options at each call).
        """
        return {}

    def _solve_with_current_parameters(self) -> None:
        """Make the fitted module solve with the estimator's current solver parameters.

        ``set_params(rtol=..., max_num_steps=..., solver=...)`` after ``fit`` thus reaches
        ``predict``, ``sample`` and ``score``, as it reaches a model after ``save``/``load``
        (which builds the module from its parameters). Bad parameters raise here, named,
        instead of inside a solve.
        """
        self._validate_params()
        solvers = self._module_solvers(predicting=True)
        if solvers:
            self.module_.set_solver(**solvers)

    def _train(
        self,
        module: torch.nn.Module,
        batch_loss,
        batches,
        *,
        max_epochs: int,
        patience: int | None,
        validate=None,
        seed: int,
        checkpoint_dir: str | os.PathLike | None = None,
        tracking: Any = None,
        data_summary: dict[str, Any] | None = None,
        data: Any = None,
        distributed_average=None,
        lr_decay: float | None = None,
    ) -> list[dict[str, float]]:
        """Train ``module`` with the shared :class:`Trainer` and this estimator's settings.

        ``max_epochs`` and ``patience`` come resolved from the caller (a forecaster's
        ``"auto"`` settings follow its data), as may ``lr_decay`` (``None``: the estimator's
        ``lr_decay`` parameter, 1.0 when it has none). Sets ``history_``, ``n_epochs_``,
        ``best_epoch_`` and ``bad_steps_``. A truthy ``tracking`` adds the registered fit
        tracker to the trainer's callbacks (on the main process only); the caller's
        ``_finishing_tracking`` block ends it. ``data`` (arrays, tensors or a dataclass of
        them: what the module trains on) is fingerprinted into the checkpoint's tag, so a
        checkpoint of other data is never resumed; pass the seed from :meth:`_fit_seed`.
        """
        early = EarlyStopping(
            monitor="val_loss" if validate is not None else "train_loss",
            patience=patience,
        )
        # Under torchrun: shard batches, sum gradients, agree on losses (see
        # latode.training.distributed); in one process everything passes through unchanged.
        batch_loss, batches, validate, averaging, rank_callbacks = distributed.prepare(
            module, batch_loss, batches, validate, seed, f"{type(self).__name__}.fit")
        distributed_average = distributed_average or averaging
        main = distributed.is_main()
        callbacks = [early, ProgressBar(max_epochs, type(self).__name__,
                                        self.verbose if main else 0), *rank_callbacks]
        if tracking is None:  # latode.mlflow.autolog() may have turned tracking on
            tracking = registry.default_tracking()
        if tracking and main:
            tracker = registry.make_fit_tracker(self, tracking, data_summary or {})
            callbacks.append(tracker)
            # fit's _finishing_tracking block calls tracker.finish once fit is done.
            self._fit_tracker = tracker
        trainer = Trainer(
            module, batch_loss, batches, validate=validate, max_epochs=int(max_epochs),
            learning_rate=float(self.learning_rate), weight_decay=float(self.weight_decay),
            grad_clip=None if self.grad_clip is None else float(self.grad_clip),
            # Estimators that declare no schedule train at a constant rate.
            lr_decay=float(getattr(self, "lr_decay", 1.0) if lr_decay is None else lr_decay),
            min_learning_rate=float(getattr(self, "min_learning_rate", 0.0)),
            # Estimators that declare no weight average end with their last weights.
            ema_decay=getattr(self, "ema_decay", None),
            callbacks=callbacks, checkpoint_dir=checkpoint_dir,
            # Fingerprinting the data costs a pass over it: only checkpoints need it.
            checkpoint_tag=(None if checkpoint_dir is None
                            else self._checkpoint_tag(data_summary, data)), seed=seed,
            distributed_average=distributed_average,
        )
        try:
            history = trainer.fit()
        finally:
            self.history_ = list(trainer.history)
            self.n_epochs_ = len(trainer.history)
            # 0 when no epoch could be compared (all within KL warm-up, or no finite loss):
            # the last weights are kept, so the last epoch is the one returned.
            self.best_epoch_ = early.best_epoch or self.n_epochs_
            self.bad_steps_ = trainer.total_bad_steps
        return history

    def _checkpoint_tag(self, data_summary: dict[str, Any] | None,
                        data: Any = None) -> dict[str, Any]:
        """What identifies a fit's checkpoint: the estimator, the parameters that change the
        fit (not ``verbose`` or ``device``; not ``max_epochs``, so a finished fit may be
        continued for more epochs), the data's summary and the fingerprint of its contents
        (``None`` when the estimator passes no ``data``)."""
        params = {k: repr(v) for k, v in sorted(self.get_params(deep=False).items())
                  if k not in ("verbose", "device", "max_epochs")}
        return {"estimator": type(self).__name__, "params": params,
                "data": {k: repr(v) for k, v in sorted((data_summary or {}).items())},
                "data_fingerprint": None if data is None else fingerprint(data)}

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_")

    # ---------------------------------------------------------- persistence
    def _fitted_state(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to ``path`` (weights and plain data; no pickle).

        Returns
        -------
        Path
            The path written.
        """
        self._check_fitted()
        params = {k: v for k, v in self.get_params(deep=False).items()}
        payload = {
            "latode_kind": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "params": to_plain(params),
            "fitted": to_plain(self._fitted_state()),
            "state_dict": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
        }
        self._check_loadable(payload)
        atomic_save(payload, path)
        return Path(path)

    def _check_loadable(self, payload: dict[str, Any]) -> None:
        """Refuse to write a file :meth:`load` could not read: ``set_params`` after ``fit``
        may have changed the architecture (``width``, ``hidden``, ...) that ``load`` rebuilds
        from the saved parameters, while the weights are still the fitted network's."""
        rebuilt = type(self)(**payload["params"])
        with torch.random.fork_rng(devices=[]):  # building draws initial weights
            rebuilt._restore_fitted_state(payload["fitted"])
        expected = {k: tuple(v.shape) for k, v in rebuilt.module_.state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in payload["state_dict"].items()}
        if expected == saved:
            return
        name = next(k for k in sorted(expected.keys() | saved.keys())
                    if expected.get(k) != saved.get(k))
        raise ValueError(
            f"The fitted network no longer matches this {type(self).__name__}'s parameters: "
            f"set_params after fit changed its architecture ({name!r} is "
            f"{list(saved[name]) if name in saved else 'absent'} in the fitted network, "
            f"{list(expected[name]) if name in expected else 'absent'} for the current "
            "parameters). Set them back, or fit again, before saving or logging the model."
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None):
        """Read an estimator written by :meth:`save`.

        Only tensors and plain data are read (``weights_only=True``); a file that is not a
        checkpoint of this estimator raises :class:`~latode.exceptions.InvalidCheckpointError`.
        """
        payload = safe_load(path, kind=cls.__name__)
        if payload.get("format_version") != FORMAT_VERSION:
            raise InvalidCheckpointError(
                f"{str(path)!r} has format version {payload.get('format_version')!r}; this "
                f"latode reads version {FORMAT_VERSION}. Save the model again with this version."
            )
        params = {**cls._added_parameters,
                  **{name: value for name, value in payload["params"].items()
                     if name not in cls._retired_parameters}}
        if device is not None:
            params["device"] = device
        estimator = cls(**params)
        estimator._restore_fitted_state(payload["fitted"])
        estimator.module_.load_state_dict(payload["state_dict"])
        estimator.module_.to(resolve_device(estimator.device))
        estimator.module_.eval()
        return estimator
