"""The one list of latode's estimators, and the hook through which a fit is tracked.

Everything that works from an estimator's name reads :data:`ESTIMATORS`: ``latode fit
--model`` (:func:`cli_models`), loading a saved or logged model (:func:`load_estimator`) and
MLflow's pyfunc adapters (:func:`task_of`). A new estimator becomes loadable, loggable and —
when it has a ``cli_name`` — fittable from the command line with one entry here.

``fit(..., tracking=...)`` asks :func:`make_fit_tracker` for a trainer callback;
:mod:`latode.tracking` registers the factory (:func:`register_fit_tracker`) when it is
imported, which ``import latode`` does. The estimators never import the tracking package:
tracking is their client.

Estimator modules are imported only when a class is asked for, so this module is cheap to
import and can be imported by the estimators' own base class.

Examples
--------
>>> estimator_class("RNNForecaster").__name__
'RNNForecaster'
>>> cli_models()
{'latent-ode': 'LatentODEForecaster', 'rnn': 'RNNForecaster'}
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ESTIMATORS", "EstimatorSpec", "FitTracker", "cli_models", "default_tracking",
           "estimator_class", "load_estimator", "make_fit_tracker", "register_fit_tracker",
           "set_default_tracking", "spec_of", "task_of"]


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator of :data:`ESTIMATORS`.

    Parameters
    ----------
    name : str
        Its class name: the name saved files and logged models record.
    module : str
        The module defining the class (imported only when the class is needed).
    task : {"forecaster", "classifier", "density"}
        What its MLflow pyfunc model takes and returns (see ``latode.tracking``).
    cli_name : str or None
        Its ``latode fit --model`` name; ``None`` when the command cannot fit it (the command
        reads long frames of series, which only forecasters take).
    """

    name: str
    module: str
    task: str
    cli_name: str | None = None


#: Class name -> :class:`EstimatorSpec`; the only place latode lists its estimators.
ESTIMATORS: dict[str, EstimatorSpec] = {spec.name: spec for spec in (
    EstimatorSpec("LatentODEForecaster", "latode.estimators.latent_ode", "forecaster",
                  "latent-ode"),
    EstimatorSpec("RNNForecaster", "latode.estimators.rnn", "forecaster", "rnn"),
    EstimatorSpec("ODENetClassifier", "latode.estimators.classifier", "classifier"),
    EstimatorSpec("ResNetClassifier", "latode.estimators.classifier", "classifier"),
    EstimatorSpec("CNFDensityEstimator", "latode.estimators.density", "density"),
    EstimatorSpec("PlanarFlowDensityEstimator", "latode.estimators.density", "density"),
)}


def cli_models() -> dict[str, str]:
    """``latode fit --model`` names -> class names.

    Returns
    -------
    dict of str to str
    """
    return {spec.cli_name: spec.name for spec in ESTIMATORS.values() if spec.cli_name}


def estimator_class(name: str) -> type:
    """The estimator class registered under its class name ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`ESTIMATORS`.

    Returns
    -------
    type

    Raises
    ------
    ValueError
        When ``name`` is not registered.
    """
    spec = ESTIMATORS.get(name)
    if spec is None:
        raise ValueError(f"Unknown latode estimator {name!r}; known: {sorted(ESTIMATORS)}.")
    return getattr(importlib.import_module(spec.module), name)


def load_estimator(path: str | os.PathLike, name: str | None = None) -> Any:
    """Read a file written by an estimator's ``save()``.

    Parameters
    ----------
    path : path
        The file.
    name : str, optional
        Its estimator's class name; read from the file when ``None``.

    Returns
    -------
    The fitted estimator.

    Raises
    ------
    latode.exceptions.InvalidCheckpointError
        When ``path`` is not a latode model file.
    """
    if name is None:
        from latode.training.checkpoint import latode_kind

        name, _ = latode_kind(path)
    return estimator_class(str(name)).load(path)


def spec_of(estimator: Any) -> EstimatorSpec:
    """The :class:`EstimatorSpec` of an estimator (or class), or of the nearest registered
    class it derives from.

    Parameters
    ----------
    estimator : estimator instance or class

    Returns
    -------
    EstimatorSpec

    Raises
    ------
    TypeError
        When neither it nor a base class is a registered latode estimator.
    """
    cls = estimator if isinstance(estimator, type) else type(estimator)
    for klass in cls.__mro__:
        spec = ESTIMATORS.get(klass.__name__)
        # The module too: a user's class that merely shares a name is not ours.
        if spec is not None and klass.__module__ == spec.module:
            return spec
    raise TypeError(f"{cls.__name__} is not a latode forecaster, classifier or density "
                    f"estimator (registered: {sorted(ESTIMATORS)}).")


def task_of(estimator: Any) -> str:
    """``"forecaster"``, ``"classifier"`` or ``"density"`` (see :func:`spec_of`)."""
    return spec_of(estimator).task


# ------------------------------------------------------------- fit tracking
class FitTracker(Protocol):
    """What :func:`register_fit_tracker`'s factory returns: a trainer callback (a
    :class:`latode.training.Callback`, given to the fit's trainer) that also ends its record
    of the fit in :meth:`finish`."""

    def finish(self, estimator: Any, data: Any = None, error: BaseException | None = None
               ) -> None:
        """Called once ``fit`` has set every fitted attribute, or has failed with ``error``."""


FitTrackerFactory = Callable[[Any, Any, dict[str, Any]], FitTracker]

# The factory latode.tracking registers on import (see register_fit_tracker).
_fit_tracker_factory: FitTrackerFactory | None = None
# What ``fit(tracking=None)`` means: no tracking, unless latode.mlflow.autolog() set one.
_default_tracking: Any = None


def set_default_tracking(tracking: Any) -> None:
    """What ``fit`` does when its ``tracking`` argument is left at ``None``, from now on
    (``latode.mlflow.autolog`` sets it; ``None`` restores no tracking).

    Parameters
    ----------
    tracking : Any
        A value ``fit(tracking=...)`` accepts, or ``None``.
    """
    global _default_tracking
    _default_tracking = tracking


def default_tracking() -> Any:
    """The ``tracking`` a fit uses when given none (see :func:`set_default_tracking`)."""
    return _default_tracking


def register_fit_tracker(factory: FitTrackerFactory | None) -> None:
    """Set what ``fit(..., tracking=...)`` builds; ``latode.tracking`` registers its
    :class:`~latode.tracking.TrackingCallback` when imported.

    Parameters
    ----------
    factory : callable or None
        ``factory(estimator, tracking, data_summary)`` returns a :class:`FitTracker` for a
        fit about to start; ``None`` unregisters it.
    """
    global _fit_tracker_factory
    _fit_tracker_factory = factory


def make_fit_tracker(estimator: Any, tracking: Any, data_summary: dict[str, Any]
                     ) -> FitTracker:
    """The registered factory's tracker for this fit.

    Parameters
    ----------
    estimator : TorchEstimator
        The estimator being fitted.
    tracking : Any
        The truthy ``tracking`` argument its ``fit`` was given.
    data_summary : dict
        Plain facts about the training data.

    Returns
    -------
    FitTracker

    Raises
    ------
    RuntimeError
        When no factory is registered (``latode.tracking`` was never imported).
    """
    if _fit_tracker_factory is None:
        raise RuntimeError("fit(tracking=...) needs latode.tracking, which registers the "
                           "MLflow callback: import latode.tracking first.")
    return _fit_tracker_factory(estimator, tracking, data_summary)
