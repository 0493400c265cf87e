"""The pyfunc model MLflow builds from a logged latode model (see
:mod:`latode.tracking.model`); MLflow is imported here at module level, so only MLflow loads
this module."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from latode.estimators.registry import load_estimator
from latode.tracking._adapters import predict_frame
from latode.tracking.model import ARTIFACT_KEY

__all__ = ["LatodePyfuncModel"]


class LatodePyfuncModel(PythonModel):
    """A latode estimator behind ``mlflow.pyfunc``: ``predict(frame, params)`` returns the
    estimator's forecast (or class probabilities, or log-densities) as a frame."""

    def __init__(self) -> None:
        self.estimator: Any = None

    def load_context(self, context: Any) -> None:
        config = context.model_config or {}
        self.estimator = load_estimator(context.artifacts[ARTIFACT_KEY],
                                        config.get("latode_estimator"))

    # MLflow reads the hint of model_input: a DataFrame hint keeps the frame as it is.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        try:
            return predict_frame(self.estimator, model_input, params)
        except (ValueError, TypeError) as error:
            # latode's input errors name the column or parameter and the fix. A served model
            # turns any other exception into a generic 400 with the message buried in a
            # stack trace; an MlflowException's message is what the client reads.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error
