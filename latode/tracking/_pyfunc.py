"""The pyfunc model MLflow builds from a logged latode model (see
:mod:`latode.tracking.model`); MLflow is imported here at module level, so only MLflow loads
this module."""

from __future__ import annotations

from typing import Any

import pandas as pd
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
        return predict_frame(self.estimator, model_input, params)
