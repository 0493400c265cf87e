"""latode: forecasting irregularly sampled time series with latent ODEs.

The public face: estimators, data sets, exceptions and the version. Everything else lives in
private modules or subpackages.
"""

# tracking: imported for its effect. It registers the fit tracker behind
# ``fit(tracking=...)`` with the estimators (which never import it), and every import of a
# latode module runs this file first, so that holds however latode is imported.
from latode import datasets, tracking  # noqa: F401
from latode._version import __version__
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
