"""scikit-learn estimators built on the shared trainer."""

from latode.estimators.latent_ode import LatentODEForecaster
from latode.estimators.rnn import RNNForecaster

__all__ = ["LatentODEForecaster", "RNNForecaster"]
