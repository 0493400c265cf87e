"""latode models in MLflow: ``latode.mlflow.log_model`` and ``latode.mlflow.load_model``.

>>> import latode.mlflow
>>> callable(latode.mlflow.log_model) and callable(latode.mlflow.load_model)
True

A logged model is an MLflow pyfunc model ("models from code": the estimator's saved weights
and plain data, no pickle), so ``mlflow.pyfunc.load_model(info.model_uri).predict(
context_df, params={"horizon": [1.0, 2.0]})`` returns ``model.predict``'s frame and
``mlflow models serve -m <uri> --env-manager local`` serves it. MLflow is imported only when
these functions run.
"""

from latode.estimators import registry
from latode.tracking import Tracking, load_model, log_model

__all__ = ["Tracking", "autolog", "load_model", "log_model"]


def autolog(disable: bool = False, tracking: Tracking | bool | str = True) -> None:
    """Track every latode fit from now on, as ``fit(tracking=tracking)`` does.

    A fit inside an active MLflow run (``with mlflow.start_run(): model.fit(df)``) logs into
    that run; otherwise each fit starts its own in ``MLFLOW_TRACKING_URI`` (default:
    ``sqlite:///mlflow.db`` in the working folder). A fit's own ``tracking=`` argument still
    wins, so ``fit(df, tracking=False)`` stays untracked.

    Parameters
    ----------
    disable : bool, default=False
        Stop tracking fits by default.
    tracking : bool, str or Tracking, default=True
        What each fit is tracked with: ``True``, a tracking URI, or a
        :class:`~latode.tracking.Tracking` (experiment, run name, nested runs...).
    """
    if not disable and not tracking:
        raise ValueError(f"tracking={tracking!r} tracks nothing; use disable=True to stop "
                         "tracking fits.")
    registry.set_default_tracking(None if disable else tracking)
