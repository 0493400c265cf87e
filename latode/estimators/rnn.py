"""RNNForecaster: the GRU-Δt baseline every latode benchmark compares against."""

from __future__ import annotations

from latode._params import Interval
from latode.estimators._covariates import covariate_shapes, initialise_dose_rates
from latode.estimators._forecaster import (
    FORECASTER_CONSTRAINTS,
    SOLVER_PARAMETERS,
    BaseForecaster,
)
from latode.nn.latent_ode import Covariates
from latode.nn.rnn_baseline import GRUForecastNet

__all__ = ["RNNForecaster"]


class RNNForecaster(BaseForecaster):
    """A GRU with time gaps as input that forecasts from its last state.

    The GRU reads each series forward in time (inputs ``[x * mask, mask, Δt]``), and a head
    maps ``[h, τ - t_last]`` to the channel means at any time τ after the observations it has
    read; it is trained on the one-step-ahead Gaussian likelihood of the observed values, or,
    with ``objective="extrapolate"``, reads each series' first ``context_fraction`` and is
    scored one step ahead inside it and from its last state on everything after. Same data,
    training and forecast API as :class:`~latode.LatentODEForecaster`; it solves no ODE, so
    it takes none of the solver parameters (``solver``, ``rtol``, ``atol``, ``adjoint``,
    ``step_size``, ``max_num_steps``). To search both in one grid, give each its own
    parameter grid (a list of dicts).

    Parameters
    ----------
    hidden_dim : int, default=64
        Width of the GRU's state.
    objective : {"reconstruct", "extrapolate"}, default="reconstruct"
    context_fraction : float in (0, 1) or (low, high), default=0.5
        As for :class:`~latode.LatentODEForecaster`.
    Other parameters
        ``max_epochs``, ``batch_size``, ``learning_rate``, ``weight_decay``, ``grad_clip``,
        ``patience``, ``ema_decay``, ``validation_fraction``, ``id_col``, ``time_col``,
        ``target_cols``, ``past_covariates``, ``future_covariates``, ``impulse_covariates``,
        ``time_scale``, ``standardize``, ``random_state``, ``device`` and ``verbose``: as for
        :class:`~latode.LatentODEForecaster` (the GRU reads the covariates of the rows it
        steps through; its head reads static features, held future covariates and the doses'
        compartment curves at each forecast time).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"unique_id": [0] * 6 + [1] * 6, "ds": list(range(6)) * 2,
    ...                    "y": np.r_[np.arange(6.0), -np.arange(6.0)]})
    >>> rnn = RNNForecaster(hidden_dim=8, max_epochs=2, verbose=0, random_state=0).fit(df)
    >>> rnn.predict(df, horizon=[1, 2]).shape
    (4, 6)
    """

    # Every forecaster constraint but the ODE solve's: get_params lists only what is used.
    _retired_parameters = SOLVER_PARAMETERS
    _parameter_constraints = {
        **{k: v for k, v in FORECASTER_CONSTRAINTS.items() if k not in SOLVER_PARAMETERS},
        "hidden_dim": [Interval(int, 1, None)],
    }

    def __init__(self, hidden_dim=64, *, objective="reconstruct", context_fraction=0.5,
                 max_epochs="auto", batch_size="auto", learning_rate=1e-2, weight_decay=0.0,
                 grad_clip=1.0, patience="auto", ema_decay=0.99, validation_fraction=0.2,
                 id_col="unique_id", time_col="ds", target_cols=None, past_covariates=None,
                 future_covariates=None, impulse_covariates=None, time_scale=None,
                 standardize=True, random_state=None, device="cpu", verbose=1):
        self.hidden_dim = hidden_dim
        self.objective = objective
        self.context_fraction = context_fraction
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.ema_decay = ema_decay
        self.validation_fraction = validation_fraction
        self.id_col = id_col
        self.time_col = time_col
        self.target_cols = target_cols
        self.past_covariates = past_covariates
        self.future_covariates = future_covariates
        self.impulse_covariates = impulse_covariates
        self.time_scale = time_scale
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _build_module(self, n_channels: int) -> GRUForecastNet:
        return GRUForecastNet(n_channels, int(self.hidden_dim),
                              **covariate_shapes(self.converter_))

    def _fit_module(self, module, packed, *args, **kwargs):
        initialise_dose_rates(module, packed)
        super()._fit_module(module, packed, *args, **kwargs)

    def _series_log_likelihood(self, module, batch, n_samples, generator):
        if generator is not None:
            read, rows = batch.mask, None
        else:
            rows = self._read_rows(batch, module.training)
            read = batch.mask * rows.unsqueeze(-1)
        return module.log_likelihood(batch.times, batch.values, batch.mask, read_mask=read,
                                     covariates=Covariates.of_batch(batch, rows))

    def _predictive_means(self, module, batch, target_times, n_samples, generator,
                          needed=None):
        mean = module.predict_mean(batch.times, batch.values, batch.mask, target_times,
                                   Covariates.of_batch(batch))
        return mean.unsqueeze(0).expand((n_samples,) + tuple(mean.shape))
