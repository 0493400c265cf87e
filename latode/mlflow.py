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

from latode.tracking import Tracking, load_model, log_model

__all__ = ["Tracking", "load_model", "log_model"]
