"""MLflow tracking for latode: ``fit(..., tracking=...)``, the model as an MLflow pyfunc
model, and loading it back.

* ``fit(df, tracking=True)`` logs to MLflow's current tracking URI (``MLFLOW_TRACKING_URI``,
  else ``sqlite:///mlflow.db`` in the working folder); ``tracking="http://host:5000"`` to
  that server; :class:`Tracking` sets the experiment, the run name and nesting.
* :func:`log_model` / :func:`load_model` (also as ``latode.mlflow``) log a fitted estimator
  as a pyfunc model and read it back.

MLflow itself is imported only when one of these is used, so ``import latode`` stays fast.

Importing this package registers :class:`TrackingCallback` as the estimators' fit tracker
(:func:`latode.estimators.registry.register_fit_tracker`): the estimators never import
tracking, and ``import latode`` imports this package so ``fit(tracking=...)`` always works.
"""

from latode.estimators.registry import register_fit_tracker
from latode.tracking._config import Tracking, TrackingWarning, resolve_tracking
from latode.tracking.callback import TrackingCallback
from latode.tracking.model import load_model, log_model

register_fit_tracker(TrackingCallback)

__all__ = [
    "Tracking",
    "TrackingCallback",
    "TrackingWarning",
    "load_model",
    "log_model",
    "resolve_tracking",
]
