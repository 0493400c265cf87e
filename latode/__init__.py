"""latode: forecasting irregularly sampled time series with latent ODEs.

The public face: estimators, data helpers and the version. Everything else lives in
private modules or subpackages.
"""

from latode.exceptions import (
    InvalidCheckpointError,
    LatodeError,
    NotFittedError,
    SolverError,
    TrainingDivergedError,
)

__version__ = "0.1.0"

__all__ = [
    "InvalidCheckpointError",
    "LatodeError",
    "NotFittedError",
    "SolverError",
    "TrainingDivergedError",
    "__version__",
]
