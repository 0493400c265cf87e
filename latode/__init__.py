"""latode: forecasting irregularly sampled time series with latent ODEs.

The public face: estimators, data sets, exceptions and the version. Everything else lives in
private modules or subpackages.
"""

from latode import datasets
from latode.estimators import LatentODEForecaster, RNNForecaster
from latode.estimators.classifier import ODENetClassifier, ResNetClassifier
from latode.estimators.density import CNFDensityEstimator, PlanarFlowDensityEstimator
from latode.exceptions import (
    InvalidCheckpointError,
    LatodeError,
    NotFittedError,
    SolverError,
    TrainingDivergedError,
)

__version__ = "0.1.0"

__all__ = [
    "CNFDensityEstimator",
    "InvalidCheckpointError",
    "LatentODEForecaster",
    "LatodeError",
    "NotFittedError",
    "ODENetClassifier",
    "PlanarFlowDensityEstimator",
    "ResNetClassifier",
    "RNNForecaster",
    "SolverError",
    "TrainingDivergedError",
    "__version__",
    "datasets",
]
