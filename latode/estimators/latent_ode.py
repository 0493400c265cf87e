"""LatentODEForecaster: the latent ODE of Rubanova et al. (2019) as a forecaster of long frames."""

from __future__ import annotations

import pandas as pd

from latode._numerics import SolverOptions
from latode._params import InstanceOf, Interval, Options, Predicate
from latode.estimators._base import SCHEDULE_CONSTRAINTS, seeded_by
from latode.estimators._covariates import covariate_shapes, initialise_dose_rates
from latode.estimators._forecaster import FORECASTER_CONSTRAINTS, BaseForecaster
from latode.estimators._point_process import EventModel
from latode.nn.latent_ode import LEVELS, Covariates, LatentODE, is_slope_points
from latode.nn.point_process import initialise_rate

__all__ = ["LatentODEForecaster"]


class LatentODEForecaster(BaseForecaster):
    """Forecast irregularly sampled series with a latent ODE.

    An encoder (``"rnn"``: GRU with time gaps; ``"ode-rnn"``: hidden state following an ODE
    between observations) reads each series' context forwards to a Gaussian q(z) at its last
    observation, the forecast origin; z follows a learned ODE from there through any
    requested times (later: a forecast; earlier: a reconstruction) and a decoder maps it to
    each channel's mean. With ``level="last"`` (the default) each series is modelled relative
    to its own last observed value per channel, so a forecast starts where the series is,
    not where the population is. A forecast depends on that series' rows only. Training
    maximises the ELBO (or the IWAE bound with ``n_iwae_samples > 1``) of the observed values
    only; timestamps are taken as they are, never resampled onto a grid.

    Parameters
    ----------
    latent_dim : int, default=8
    hidden : tuple of int, default=(64, 64)
        Widths of the latent dynamics network.
    encoder : {"ode-rnn", "rnn"}, default="ode-rnn"
    encoder_hidden : int, default=32
    encoder_solver : str, default="euler"
        Solver of the ODE-RNN's hidden state between observations.
    n_iwae_samples : int, default=1
        Posterior samples per series in training; > 1 trains on the IWAE bound.
    objective : {"extrapolate", "reconstruct"}, default="extrapolate"
        ``"extrapolate"``: the encoder reads only the first ``context_fraction`` of each
        series' observed span and the bound scores all of its observations, which trains
        forecasting from a prefix directly (the "extrap" mode of Rubanova et al. 2019).
        ``"reconstruct"``: the encoder reads every observation and the bound scores them all
        (Chen et al. 2018), for interpolation. Validation (early stopping) uses the same
        reading.
    context_fraction : float in (0, 1) or (low, high), default=(0.5, 1.0)
        The prefix read with ``objective="extrapolate"`` (unused otherwise); a pair
        ``(low, high)`` with ``0 < low <= high <= 1`` draws the fraction uniformly per series
        and batch, so the encoder learns to read contexts of many lengths; validation spreads
        its fractions evenly over the range, the same every epoch.
    point_process : bool, default=False
        Also model *when* events happen: the latent state drives an intensity λ(t) > 0 and
        the bound adds the inhomogeneous Poisson log-likelihood of the event times,
        ``sum_i log λ(t_i) - ∫ λ dt`` over each series' observed span, with the integral
        solved alongside z(t) (Chen et al. 2018 §5.1; Rubanova et al. 2019). The encoder
        reads the event times too. Adds :meth:`predict_intensity`, :meth:`sample_events`
        and :meth:`score_components`; the frame may then have no value column at all.
    event_col : str or None, default=None
        With ``point_process``: a boolean column (or non-negative integer counts) marking
        the rows that are events, so rows can be observations without being events, and
        events can come without values. ``None``: every row is an event.
    solver, rtol, atol, adjoint, step_size, max_num_steps
        The latent ODE solve (torchdiffeq); ``adjoint=True`` keeps memory constant in the
        number of solver steps.
    max_epochs, batch_size, patience : int or "auto", default="auto"
        Training length: Adam on batches of ``batch_size`` series for at most ``max_epochs``
        epochs, early stopping after ``patience`` epochs without a better validation loss
        (the best weights are kept). ``"auto"`` follows the number of training series: batches
        of 8 to 50 series, about 2000 optimisation steps but at most 225 epochs, and a
        patience of about 200 steps (:func:`latode.estimators._schedule.training_plan`), so
        that 50 series and 4000 train alike.
    learning_rate, weight_decay, grad_clip, validation_fraction
        Adam's rate and weight decay, the gradient-norm clip, and the fraction of series held
        out for early stopping.
    lr_decay : float in (0, 1] or "auto", default="auto"
        Learning-rate factor per optimisation step (Rubanova et al. 2019 use 0.999); 1.0
        keeps the rate constant. ``"auto"`` lowers the rate exponentially to a tenth of
        ``learning_rate`` over the plan: by the last step of an explicit ``max_epochs``, or
        over the "auto" plan's 2000 or so steps, which its 225-epoch cap may end early on
        small data (the cap bounds the time; it does not hurry the schedule). A fit then
        slows down as it goes instead of still moving at full rate when its epochs run out
        (on the benchmarks' small data sets, about the errors of a constant rate over 300
        epochs in 60% of the time).
    min_learning_rate : float, default=0.0
        Floor of that decay (Rubanova et al.: ``learning_rate / 10``).
    ema_decay : float in (0, 1) or None, default=0.99
        Validate, early-stop and end with an exponential moving average of the weights over
        roughly the last ``1 / (1 - ema_decay)`` optimisation steps (fewer early in a fit:
        the decay warms up to ``ema_decay``, see
        :func:`~latode.training.trainer.ema_with_warmup`). With few series one step
        moves the weights far and forecasts from one epoch to the next differ more than their
        validation scores show; the average steadies them. ``None``: the last weights.
    kl_warmup : int, default=0
        Optimisation steps over which the weight of the KL term in the training loss rises
        linearly to 1 (0: no warm-up). Early on the decoder then learns to use z0 before the
        prior pulls the posterior in; validation and ``score`` always use the full bound.
    free_bits : float, default=0.5
        Nats of KL per latent dimension that training does not charge for ("free bits",
        Kingma et al. 2016): each series' KL in each dimension counts as at least this much.
        With few series the full KL term pulls most dimensions of q(z) back to the prior
        (on nlme's Spruce, six of eight), leaving the forecast too little of each series to
        tell, for instance, where in a season a tree is; the floor lets every dimension
        carry some of it. Applies to the ELBO (``n_iwae_samples=1``); validation, early
        stopping and ``score`` use the full bound. 0 trains on the ELBO itself.
    observation_std : float or None, default=None
        Standard deviation of the Gaussian observation noise, fixed, in standardised units
        (a fraction of each channel's training standard deviation; data units with
        ``standardize=False``). ``None`` learns it per channel, which gives the best
        likelihood; a small fixed value (Rubanova et al. 2019 fix 0.01 on [0, 1]-scaled
        PhysioNet) weighs the reconstruction more against the KL term, so the posterior
        keeps more of each series and mean forecasts follow the data more closely. With
        ``horizon_noise`` it is the noise at the forecast origin; its growth is learned.
    level : {"last", "mean", None}, default="last"
        The per-series level each channel is modelled relative to: its last value in the
        context, the mean of its context values, or none (the population's mean). The encoder
        also reads the level, so the dynamics can still depend on it. With ``"last"`` a
        forecast starts exactly at each channel's last observed value (a channel the series
        has not shown yet, at the population's mean) and the model learns how series move on
        from there.
    slope_points : int, default=4
        The encoder also reads each channel's recent trend: the slope of a least-squares line
        through its last ``slope_points`` values in the context (as the straight-line
        baseline draws it), so that a series' own trend, like its level, need not be inferred
        from the population's. 0 reads none (the papers' model, with ``level=None``).
    clock : bool, default=False
        Give the dynamics and the decoder each series' age, the time since its first row
        (admission, enrolment, planting), so that the model can learn how series evolve with
        it. Only meaningful when every series' first row is its natural start, in training
        and in the contexts passed to ``predict``.
    horizon_noise : bool, default=True
        Let the observation noise grow with the time from the forecast origin: its variance
        is ``observation_std**2 + diffusion**2 * |t - origin|`` per channel, the spread a
        random walk adds to the measurement noise, with ``diffusion`` learned. Predictive
        intervals then widen with the horizon, and training weighs each error by how far
        ahead it lies, so the near future, which the context says most about, is fitted
        most closely. False: the same noise at every horizon (the papers' model).
    mean_reversion : bool, default=True
        Let each channel's mean drift from the series' level toward a long-run mean, as an
        Ornstein-Uhlenbeck process's does: ``m + (level - m) * (1 - j) * exp(-k * h)`` at a
        time ``h`` from the reading the level came from, where ``m`` (in standardised units),
        the rate ``k`` and the share ``j`` that a reading's own noise puts behind at once are
        learned per channel; the latent ODE adds each series' own movement to this. Measured
        values that scatter around a common range (vital signs, lab values) are then not
        carried forward as if the last reading were exact, which one latent state cannot
        learn for many channels at once. ``k`` and ``j`` start near 0, so a fit starts from
        the model without it, and stay there on data where each series keeps its own level.
        Needs a ``level``; with ``level=None`` there is nothing to revert from and it is
        off.
    id_col, time_col : str, default="unique_id", "ds"
    target_cols : str, list of str or None
        Value channels; ``None`` takes every numeric column besides id, time and the
        covariates.
    past_covariates : str, list of str or None
        Columns observed with the targets and known only up to the forecast origin (a lab
        value that is not forecast): the encoder reads them; they are not forecast.
    future_covariates : str, list of str or None
        Columns known at any time (a scheduled treatment, an infusion rate): each value holds
        from its row until the column's next row. The encoder reads those of the context and
        the latent dynamics follow them, dz/dt = f(z, u(t)); ``predict`` takes their values
        after the context in ``future_df``.
    impulse_covariates : str, list of str or None
        Amounts given at an instant (doses), each row's amount an event at that row's time.
        They fill compartments that empty at learned rates and drive the dynamics
        (:mod:`latode.nn.controls`); ``predict`` takes the future ones in ``future_df``, so
        that a forecast can be rerun under other doses.
    time_scale : float, str, Timedelta or None
        One model time unit; ``None`` maps the training span to [0, 1].
    standardize : bool, default=True
        Standardise each channel on the training data (inverted on output).
    random_state : int or None
        Makes a fit identical run to run on the same machine.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    verbose : int, default=1
        0 silences the progress bar.

    Attributes
    ----------
    module_ : LatentODE
    converter_ : IrregularFrameConverter
    history_ : list of dict
        One record per epoch: losses, NFE forward/backward, learning rate, time.
    n_epochs_, best_epoch_ : int

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.sort(np.random.default_rng(0).uniform(0, 6, size=(8, 12)), axis=1)
    >>> df = pd.DataFrame({"unique_id": np.repeat(np.arange(8), 12), "ds": t.ravel(),
    ...                    "y": np.sin(t + np.arange(8)[:, None]).ravel()})
    >>> model = LatentODEForecaster(latent_dim=4, hidden=(16,), encoder="rnn",
    ...                             max_epochs=2, verbose=0, random_state=0).fit(df)
    >>> fc = model.predict(df, horizon=[0.5, 1.0])
    >>> list(fc.columns)
    ['unique_id', 'ds', 'y', 'y_q0.1', 'y_q0.5', 'y_q0.9']
    """

    _parameter_constraints = {
        **FORECASTER_CONSTRAINTS,
        "latent_dim": [Interval(int, 1, None)],
        "hidden": [InstanceOf(tuple, list)],
        "encoder": [Options(("ode-rnn", "rnn"))],
        "encoder_hidden": [Interval(int, 1, None)],
        "encoder_solver": [Options(("euler", "midpoint", "rk4", "dopri5"))],
        "n_iwae_samples": [Interval(int, 1, None)],
        "point_process": [InstanceOf(bool)],
        "event_col": [InstanceOf(type(None), str)],
        **SCHEDULE_CONSTRAINTS,
        "kl_warmup": [Interval(int, 0, None)],
        "free_bits": [Interval(float, 0, None)],
        "observation_std": [InstanceOf(type(None)), Interval(float, 0, None, closed="neither")],
        "level": [Options(LEVELS)],
        "slope_points": [Predicate(is_slope_points, "0, or an int >= 2")],
        "clock": [InstanceOf(bool)],
        "horizon_noise": [InstanceOf(bool)],
        "mean_reversion": [InstanceOf(bool)],
    }
    _added_parameters = {"slope_points": 0, "horizon_noise": False, "free_bits": 0.0,
                         "mean_reversion": False}
    # A latent ODE's epoch costs several of the GRU-Δt's, so its cap is its own: on the small
    # sets of benchmarks/README.md, 600 epochs lowered the errors by 4% for 1.7x the time.
    _most_epochs = 225

    def __init__(self, latent_dim=8, hidden=(64, 64), encoder="ode-rnn", encoder_hidden=32,
                 encoder_solver="euler", n_iwae_samples=1, *, objective="extrapolate",
                 context_fraction=(0.5, 1.0), point_process=False, event_col=None,
                 solver="dopri5", rtol=1e-3, atol=1e-4, adjoint=False, step_size=None,
                 max_num_steps=2000, max_epochs="auto", batch_size="auto", learning_rate=1e-2,
                 lr_decay="auto", min_learning_rate=0.0, ema_decay=0.99, kl_warmup=0,
                 free_bits=0.5,
                 observation_std=None, level="last", slope_points=4, clock=False,
                 horizon_noise=True, mean_reversion=True, weight_decay=0.0,
                 grad_clip=1.0, patience="auto", validation_fraction=0.2, id_col="unique_id",
                 time_col="ds", target_cols=None, past_covariates=None,
                 future_covariates=None, impulse_covariates=None, time_scale=None,
                 standardize=True, random_state=None, device="cpu", verbose=1):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.encoder = encoder
        self.encoder_hidden = encoder_hidden
        self.encoder_solver = encoder_solver
        self.n_iwae_samples = n_iwae_samples
        self.objective = objective
        self.context_fraction = context_fraction
        self.point_process = point_process
        self.event_col = event_col
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.adjoint = adjoint
        self.step_size = step_size
        self.max_num_steps = max_num_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.min_learning_rate = min_learning_rate
        self.ema_decay = ema_decay
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.observation_std = observation_std
        self.level = level
        self.slope_points = slope_points
        self.clock = clock
        self.horizon_noise = horizon_noise
        self.mean_reversion = mean_reversion
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
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

    def _build_module(self, n_channels: int) -> LatentODE:
        return LatentODE(
            n_channels, latent_dim=int(self.latent_dim), hidden=tuple(self.hidden),
            encoder=self.encoder, encoder_hidden=int(self.encoder_hidden),
            **self._module_solvers(),
            point_process=bool(self.point_process),
            observation_std=None if self.observation_std is None
            else float(self.observation_std),
            level=self.level, slope_points=int(self.slope_points), clock=bool(self.clock),
            horizon_noise=bool(self.horizon_noise), mean_reversion=bool(self.mean_reversion),
            **covariate_shapes(self.converter_),
        )

    def _module_solvers(self, *, predicting: bool = False) -> dict[str, SolverOptions]:
        # The ODE-RNN's solves are one per gap, never adjoint, at its own method with the
        # latent solve's tolerances. The same options serve training and prediction.
        return {"solver": self._solver_options(),
                "encoder_solver": self._solver_options(method=self.encoder_solver,
                                                       adjoint=False, step_size=None)}

    def _fit_module(self, module, packed, *args, **kwargs):
        if self.point_process:
            initialise_rate(module.intensity, packed)
        initialise_dose_rates(module, packed)
        super()._fit_module(module, packed, *args, **kwargs)

    def _converter_options(self):
        if self.event_col is not None and not self.point_process:
            raise ValueError("event_col is only read with point_process=True; set "
                             "point_process=True or leave event_col=None.")
        options = super()._converter_options()
        if options["covariates"].controls and self.point_process:
            raise ValueError("future_covariates and impulse_covariates do not combine with "
                             "point_process=True yet; fit one or the other.")
        return {**options, "point_process": bool(self.point_process),
                "event_col": self.event_col}

    def _bound(self, module, batch, n_samples: int, iwae: bool, full_read: bool,
               kl_weight: float = 1.0, free_bits: float = 0.0):
        """The (IWAE) bound per series and diagnostics; ``full_read`` reads every entry;
        ``kl_weight`` and ``free_bits`` turn it into the training objective."""
        rows = None if full_read else self._read_rows(batch, module.training)
        return module.elbo(
            batch.times, batch.values, batch.mask,
            enc_mask=None if rows is None else batch.mask * rows.unsqueeze(-1),
            n_samples=n_samples, iwae=iwae, events=batch.events, window=batch.present,
            enc_events=None if rows is None or batch.events is None else batch.events * rows,
            kl_weight=kl_weight, covariates=Covariates.of_batch(batch, rows),
            free_bits=free_bits)

    def _kl_weight(self, step: int) -> float:
        """Weight of the KL term at optimisation step ``step`` (0 first): a linear warm-up
        from 1 / kl_warmup to 1 over the first ``kl_warmup`` steps (1.0 without warm-up). The
        trainer passes its step count, which it checkpoints, so a resumed fit continues the
        ramp."""
        warmup = int(self.kl_warmup)
        if warmup == 0:
            return 1.0
        return min(1.0, (step + 1) / warmup)

    def _series_log_likelihood(self, module, batch, n_samples, generator):
        if generator is not None:
            # Draw z0 noise from the caller's generator so scores are repeatable.
            with seeded_by(generator):
                bound, _ = self._bound(module, batch, n_samples, True, full_read=True)
            return bound
        k = int(self.n_iwae_samples)
        bound, _ = self._bound(module, batch, k, k > 1, full_read=False)
        return bound

    def _batch_loss(self, module, batch, step: int):
        k = int(self.n_iwae_samples)
        weight = self._kl_weight(step)
        bound, info = self._bound(module, batch, k, k > 1, full_read=False, kl_weight=weight,
                                  free_bits=float(self.free_bits))
        info.pop("log_lik")
        info["kl_weight"] = weight
        return -bound.sum() / self._n_scored(batch).clamp(min=1.0), info

    def _predictive_means(self, module, batch, target_times, n_samples, generator,
                          needed=None):
        z, context = module.posterior_draws(batch, n_samples, generator)
        return module.decode(z, context, target_times, needed)

    # ------------------------------------------------------------- point process
    def _event_model(self, method: str) -> EventModel:
        """The point process of this fitted forecaster, handed the pieces it reads.

        Built at each call, not stored: it holds nothing of its own, and ``module_`` and
        ``converter_`` change with each ``fit`` and ``load``. ``method`` is named in the
        error of a model without events.
        """
        self._check_fitted()
        if not getattr(self.module_, "point_process", False):
            raise ValueError(
                f"{method} needs a model of event times: fit with point_process=True.")
        return EventModel(self.module_, self.converter_, self.batch_size,
                          prepare=self._solve_with_current_parameters,
                          draws_at_targets=self._draws_at_targets,
                          log_unit_change=self._log_unit_change)

    def predict_intensity(self, context_df: pd.DataFrame, timestamps: object = None, *,
                          horizon: object = None, freq: object = None,
                          quantiles=(0.1, 0.5, 0.9), level=None, n_samples: int = 100,
                          random_state: int | None = 0, per: object = None) -> pd.DataFrame:
        """Event intensity λ(t) of each series at any timestamps, across posterior draws.

        Needs ``point_process=True``.

        Parameters
        ----------
        context_df, timestamps, horizon, freq, n_samples, random_state
            As in :meth:`predict`; the context's events (rows, or ``event_col``) are read.
        quantiles, level
            As in :meth:`predict`, over the posterior draws of λ.
        per : number or duration, optional
            The time unit of the rate: 1.0 for numeric time columns and one day for datetimes
            and timedeltas by default.

        Returns
        -------
        DataFrame
            ``id_col``, ``time_col``, ``intensity`` (posterior mean rate, events per ``per``)
            and ``intensity_q<q>`` / ``intensity-lo-<level>`` / ``intensity-hi-<level>``.
        """
        return self._event_model("predict_intensity").predict_intensity(
            context_df, timestamps, horizon=horizon, freq=freq, quantiles=quantiles,
            level=level, n_samples=n_samples, random_state=random_state, per=per)

    def sample_events(self, context_df: pd.DataFrame, horizon: object, *,
                      n_samples: int = 10, random_state: int | None = None,
                      max_tries: int = 8) -> pd.DataFrame:
        """Draw future event times by thinning (Lewis & Shedler 1979).

        Needs ``point_process=True``. For each posterior draw of z, candidate times come
        from a homogeneous process whose rate M bounds λ on the series' window (the last
        context time, plus ``horizon``]; each is kept with probability λ(t)/M. Thinning is
        exact wherever λ ≤ M. M starts at twice the largest λ on a grid of at least 33 points
        in each series' window (λ is the smooth output of an ODE solve, so it cannot double
        between close grid points unless it is extremely peaked); if a candidate still finds
        λ > M, M is doubled and the draw redone, up to ``max_tries`` times.

        Parameters
        ----------
        context_df : DataFrame
            The observed context of each series.
        horizon : number or duration
            Length of the window after each series' last context row.
        n_samples : int
            Draws per series.
        random_state : int or None
        max_tries : int
            Bound doublings allowed before giving up.

        Returns
        -------
        DataFrame
            ``sample_id``, ``id_col``, ``time_col``: one row per drawn event, sorted.
        """
        return self._event_model("sample_events").sample_events(
            context_df, horizon, n_samples=n_samples, random_state=random_state,
            max_tries=max_tries)

    def score_components(self, df: pd.DataFrame, *, n_samples: int = 16,
                         random_state: int | None = 0) -> dict[str, float]:
        """The terms of the evidence lower bound of ``df``, apart.

        Needs ``point_process=True``.

        Returns
        -------
        dict
            ``observations``: expected log-likelihood per observed value (user units);
            ``events``: expected Poisson log-likelihood of the event times per event (rates
            per the default unit of :meth:`predict_intensity`); ``kl``: KL(q(z) || p(z))
            per series; ``total``: :meth:`score`, the importance-weighted bound per scored
            value and event. Expectations are over ``n_samples`` posterior draws.
        """
        terms = self._event_model("score_components").score_components(
            df, n_samples=n_samples, random_state=random_state)
        return {**terms, "total": self.score(df, n_samples=n_samples,
                                             random_state=random_state)}
