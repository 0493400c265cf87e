"""The latent ODE model (Chen et al. 2018; Rubanova et al. 2019) as a torch module.

An encoder reads each series' context forwards to give q(z) at the series' last read
observation, its forecast origin; z follows a learned ODE from there through any requested
times, later (a forecast) or earlier (a reconstruction); a decoder maps z(t) to each channel's
mean, with a learned per-channel observation noise. With a context level (``level="last"``
or ``"mean"``) the model works relative to each series' own level: the encoder reads values
minus that level and the decoder's output is added to it, so a series' forecast starts from
where that series is, not from where the population is (instance normalisation, as RevIN).
With ``level="last"`` the decoder's output is also counted from its value at the origin: the
mean at the origin is the last observed value itself (the population's mean for a channel
the series has not shown yet), and the model learns only how a series moves away from where
it was last seen. With ``mean_reversion`` each channel's mean is also pulled from the level
toward a learned long-run mean, so that a noisy last reading is not carried forward as exact.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions
from latode._numerics.paths import solve_at
from latode.nn._sequences import ObservedSequences
from latode.nn.controls import ControlledDynamics, ControlSchedule, DoseResponse, initial_rates
from latode.nn.dynamics import ClockedDynamics, MLPDynamics, mlp
from latode.nn.encoders import build_encoder
from latode.nn.likelihoods import gaussian_kl_standard, masked_gaussian_log_likelihood
from latode.nn.point_process import (
    IntensityAugmentedDynamics,
    PoissonIntensity,
    poisson_log_likelihood,
)

__all__ = ["LEVELS", "Covariates", "LatentContext", "LatentODE", "context_level",
           "context_slope", "is_slope_points"]


def _at_pairs(function, path: torch.Tensor, needed: torch.Tensor | None) -> torch.Tensor:
    """``function(states, series, time)`` of ``path`` (samples, batch, T, d) at the (series,
    time) pairs of ``needed`` only, zeros elsewhere; ``series`` and ``time`` index each
    state's series and grid time.

    A batch's grid is the union of its series' times, so most pairs are not observations;
    the decoder then runs on the observed pairs alone.
    """
    if needed is None:
        batch, steps = path.shape[1:3]
        series = torch.arange(batch, device=path.device).view(-1, 1).expand(batch, steps)
        time = torch.arange(steps, device=path.device).view(1, -1).expand(batch, steps)
        return function(path, series, time)
    series, time = needed.nonzero(as_tuple=True)
    part = function(path[:, series, time], series, time)  # (samples, pairs, ...)
    out = part.new_zeros(path.shape[:3] + part.shape[2:])
    out[:, series, time] = part
    return out


#: Context levels a latent ODE can work relative to (``None``: the population's).
LEVELS = ("last", "mean", None)


def context_level(values: torch.Tensor, mask: torch.Tensor, kind: str | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each series' level per channel in its read context, and where it has one.

    Parameters
    ----------
    values, mask : Tensor, shape (batch, grid, channels)
    kind : {"last", "mean", None}
        The last read value, the mean of the read values, or none (zeros).

    Returns
    -------
    level : Tensor, shape (batch, channels)
        Zero where a channel was not read (the population mean in standardised units).
    seen : Tensor, shape (batch, channels)
        1.0 where the channel was read at least once.

    Examples
    --------
    >>> v = torch.tensor([[[1.0], [3.0], [0.0]]]); m = torch.tensor([[[1.0], [1.0], [0.0]]])
    >>> context_level(v, m, "last")[0].tolist(), context_level(v, m, "mean")[0].tolist()
    ([[3.0]], [[2.0]])
    """
    if kind not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}; got {kind!r}.")
    count = mask.sum(1)
    seen = (count > 0).to(values)
    if kind is None:
        return torch.zeros_like(seen), seen
    if kind == "mean":
        return (values * mask).sum(1) / count.clamp(min=1.0), seen
    return values.gather(1, last_read_rows(mask).unsqueeze(1)).squeeze(1) * seen, seen


def last_read_rows(mask: torch.Tensor) -> torch.Tensor:
    """Grid index of each channel's last read value, shape (batch, channels); 0 where a
    channel was not read. ``mask`` has shape (batch, grid, channels)."""
    position = torch.arange(mask.shape[1], device=mask.device, dtype=mask.dtype)
    return (mask * position.view(1, -1, 1)).argmax(1)


def is_slope_points(value: object) -> bool:
    """Whether ``value`` can be a model's ``slope_points``: 0 (no slope) or an int of at
    least 2 (a line needs two points)."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (value == 0 or value >= 2))


def context_slope(times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                  n_points: int) -> torch.Tensor:
    """Each series' recent trend per channel: the least-squares slope of its last
    ``n_points`` read values against time, squashed by ``asinh``.

    A series' own trend is, like its level, a statistic of its context that the population
    does not share (one chick grows twice as fast as another); the encoder reads it beside the
    level. ``asinh`` keeps the slope's sign and is close to it near zero, but grows only
    logarithmically, so that points close together in time (a steep slope per unit of model
    time) cannot saturate the encoder's head.

    Parameters
    ----------
    times : Tensor, shape (grid,)
    values, mask : Tensor, shape (batch, grid, channels)
    n_points : int
        How many of each channel's last read values the line goes through (at least 2).

    Returns
    -------
    Tensor, shape (batch, channels)
        ``asinh(slope)`` in values' units per time unit; zero for a channel read fewer than
        twice.

    Examples
    --------
    >>> t = torch.tensor([0.0, 1.0, 2.0, 3.0])
    >>> v = torch.tensor([[[9.0], [0.0], [1.0], [2.0]]]); m = torch.ones(1, 4, 1)
    >>> torch.sinh(context_slope(t, v, m, 3)).tolist()  # the line through the last three
    [[1.0]]
    """
    if n_points < 2:
        raise ValueError(f"A slope needs at least 2 points; got n_points={n_points}.")
    # Read values at or after each row, per channel: the last n_points have 1..n_points.
    from_end = mask.flip(1).cumsum(1).flip(1)
    weight = mask * (from_end <= n_points).to(mask)
    t = times.view(1, -1, 1).to(values)
    count = weight.sum(1, keepdim=True).clamp(min=1.0)
    dt = t - (weight * t).sum(1, keepdim=True) / count
    x_mean = (weight * values).sum(1, keepdim=True) / count
    sxx = (weight * dt * dt).sum(1)
    sxy = (weight * dt * (values - x_mean)).sum(1)
    # Fewer than two points (or two at one time) leave sxx at zero: no slope.
    slope = torch.where(sxx > 0, sxy / sxx.clamp(min=torch.finfo(values.dtype).tiny),
                        torch.zeros_like(sxy))
    return torch.asinh(slope)


@dataclass
class Covariates:
    """What a batch gives the model besides its values.

    Attributes
    ----------
    inputs, inputs_mask : Tensor or None, shape (batch, grid, n_inputs)
        Covariates the encoder reads (zero where not given or not to be read).
    static : Tensor or None, shape (batch, n_static)
    controls : ControlSchedule or None
        Future and impulse covariates over all times, for the latent dynamics.
    """

    inputs: torch.Tensor | None = None
    inputs_mask: torch.Tensor | None = None
    static: torch.Tensor | None = None
    controls: ControlSchedule | None = None

    @classmethod
    def of_batch(cls, batch, read: torch.Tensor | None = None) -> Covariates | None:
        """The covariates of a union batch (``latode.data.UnionBatch``), ``None`` when it has
        none; ``read`` (batch, grid) limits the covariates the encoder reads to those rows."""
        if batch.inputs is None:
            return None if batch.static is None else cls(static=batch.static)
        mask = batch.inputs_mask if read is None else batch.inputs_mask * read.unsqueeze(-1)
        controls = None if batch.control_times is None else ControlSchedule(
            batch.control_times, batch.control_steps, batch.control_impulses)
        return cls(batch.inputs * mask, mask, batch.static, controls)


@dataclass
class LatentContext:
    """What the encoder makes of each series' context.

    Attributes
    ----------
    mu, logvar : Tensor, shape (batch, latent_dim)
        q(z) at the origin.
    origin : Tensor, shape (batch,)
        Grid time of each series' last read observation, where z lives.
    level : Tensor, shape (batch, channels)
        The level the decoder's output is added to (zeros without a context level).
    controls : ControlSchedule or None
        The known inputs the latent dynamics follow from the origin on (and before it).
    level_time : Tensor or None, shape (batch, channels)
        When each channel's level was read: its last read value's grid time (the origin for
        a channel not read).
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    origin: torch.Tensor
    level: torch.Tensor
    controls: ControlSchedule | None = None
    level_time: torch.Tensor | None = None


class LatentODE(nn.Module):
    """Encoder, latent dynamics and decoder of a latent ODE.

    Parameters
    ----------
    n_channels : int
    latent_dim : int
    hidden : sequence of int
        Widths of the dynamics network.
    encoder : {"rnn", "ode-rnn"}
    encoder_hidden : int
    solver : SolverOptions
        Options of the latent solve.
    encoder_solver : SolverOptions
        Options of the ODE-RNN's hidden solves.
    point_process : bool
        Add an event intensity λ(z(t)) and the Poisson log-likelihood of event times
        (:mod:`latode.nn.point_process`).
    observation_std : float or None
        Fixed standard deviation of the Gaussian observation noise (all channels, in the
        units the values arrive in); ``None`` learns one per channel.
    level : {"last", "mean", None}
        The context level each series is modelled relative to (:func:`context_level`); the
        encoder's head also reads it, so z knows where the series is in absolute terms.
        With ``"last"`` a channel's mean at the origin is its last observed value (the
        decoder's output is counted from its value there).
    slope_points : int
        With 2 or more, the encoder's head also reads each channel's recent slope over that
        many of its last read values (:func:`context_slope`); 0 reads none.
    clock : bool
        Append to z a clock, the time since the series' first row, that the dynamics read
        (:class:`~latode.nn.dynamics.ClockedDynamics`) and the decoder too: the model can
        then learn how series evolve with age (time since admission, enrolment, planting).
        It is set, not drawn: at each origin it is the origin's grid time.
    mean_reversion : bool
        Pull each channel's mean from the series' level toward a learned long-run mean
        ``reversion_mean`` (m), as an Ornstein-Uhlenbeck process's mean goes:
        ``m + (level - m) (1 - j) exp(-k h)`` at a time h from the reading the level came
        from, with the rate k (``log_reversion_rate``) and the jump j
        (``sigmoid(reversion_jump)``, the share of the way to m that a reading's own noise
        puts behind at once) learned per channel; the level itself at the reading. The
        decoder's output adds to it. Off without a ``level``.
    horizon_noise : bool
        The observation noise's variance grows linearly with the time from the forecast
        origin, ``std**2 + diffusion**2 * |t - origin|`` per channel (a random walk's spread
        on top of the measurement noise), ``diffusion`` learned
        (:meth:`observation_log_std`). False: the same noise at every time.
    n_inputs : int
        Covariate channels the encoder reads besides the values (past, future and impulse
        covariates in the context).
    n_static : int
        Static features per series, read by the encoder's head with the context level.
    controls : tuple (n_future, n_impulse, rates) or None
        Known inputs (:mod:`latode.nn.controls`): piecewise-constant future covariates, which
        drive the latent dynamics, and impulses (doses), whose compartment curves (starting
        at ``rates``) add to the means with amplitudes set by each series' latent state.
    """

    def __init__(self, n_channels: int, latent_dim: int = 8, hidden: Sequence[int] = (64, 64),
                 encoder: str = "ode-rnn", encoder_hidden: int = 32,
                 solver: SolverOptions | None = None,
                 encoder_solver: SolverOptions | None = None, point_process: bool = False,
                 observation_std: float | None = None, level: str | None = None,
                 slope_points: int = 0, clock: bool = False, horizon_noise: bool = False,
                 mean_reversion: bool = False, n_inputs: int = 0, n_static: int = 0,
                 controls: tuple[int, int, Sequence[float]] | None = None):
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}; got {level!r}.")
        if controls is not None and point_process:
            raise ValueError("A latent ODE with future or impulse covariates has no point "
                             "process yet; fit one or the other.")
        self.solver = solver or SolverOptions()
        self.point_process = point_process
        self.level = level
        if not is_slope_points(slope_points):
            raise ValueError(f"slope_points must be 0 (no slope) or an int of at least 2; got "
                             f"{slope_points!r}.")
        self.slope_points = int(slope_points)
        # Under "last" every channel is counted from the origin, one the series has not shown
        # too (its level is the population's mean): the readout then always means a change
        # from the origin, as the observed channels train it. Read as an absolute value for
        # unseen channels alone, it would be trained by few rows (a lab taken once a stay).
        self.anchored = level == "last"
        self.clock = clock
        # With a point process the encoder also reads when events happened (one more input
        # channel): their timing is information about z.
        self.n_static = n_static
        n_future, n_impulse, rates = controls or (0, 0, initial_rates(1.0))
        # Held inputs drive the dynamics; doses add their response to the decoded means.
        self.controlled = n_future > 0
        self.dosed = n_impulse > 0
        self.latent_dim = latent_dim
        self.encoder = build_encoder(encoder, n_channels + n_inputs + int(point_process),
                                     encoder_hidden, latent_dim,
                                     encoder_solver or SolverOptions(method="euler"),
                                     extra_inputs=(0 if level is None else 2 * n_channels)
                                     + (n_channels if self.slope_points else 0) + n_static)
        if self.controlled:
            self.dynamics = CountedDynamics(ControlledDynamics(latent_dim, hidden, n_future,
                                                               clock))
        else:
            self.dynamics = CountedDynamics(ClockedDynamics(latent_dim, hidden) if clock
                                            else MLPDynamics(latent_dim, hidden))
        width = max(hidden[-1] if hidden else 32, 16)
        state_dim = latent_dim + int(clock)
        with warnings.catch_warnings():
            # A pure point process has no value channel: the decoder's last layer is empty.
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.decoder = mlp(state_dim, (width,), n_channels)
        if self.dosed:
            self.dose_response = DoseResponse(n_impulse, rates)
            self.dose_amplitude = nn.Linear(latent_dim,
                                            n_channels * self.dose_response.n_features)
        # Per-channel observation noise, learned from 0.1 or fixed. A buffer when fixed: the
        # name stays "log_std", so saved weights load either way into a matching module.
        if observation_std is None:
            self.log_std = nn.Parameter(torch.full((n_channels,), math.log(0.1)))
        else:
            self.register_buffer(
                "log_std", torch.full((n_channels,), math.log(float(observation_std))))
        # The noise's growth per unit time from the origin, learned from 0.1 per channel.
        self.horizon_noise = horizon_noise
        if horizon_noise:
            self.log_diffusion = nn.Parameter(torch.full((n_channels,), math.log(0.1)))
        # Mean reversion from nearly none: a rate of 0.01 per model time unit (the training
        # span by default) and a jump of sigmoid(-6) = 0.25%. Started at 0.1 and 5%, three
        # fits of growth curves (series with levels of their own) ended with 1.1-1.9 times
        # the error: the early pull toward the population's mean was not all trained away.
        self.mean_reversion = mean_reversion and level is not None
        if self.mean_reversion:
            self.reversion_mean = nn.Parameter(torch.zeros(n_channels))
            self.log_reversion_rate = nn.Parameter(torch.full((n_channels,), math.log(0.01)))
            self.reversion_jump = nn.Parameter(torch.full((n_channels,), -6.0))
        if point_process:
            self.intensity = PoissonIntensity(state_dim, (width,))
            # Shares the dynamics network: z(t) is the same with or without Λ appended.
            self.augmented = CountedDynamics(
                IntensityAugmentedDynamics(self.dynamics.func, self.intensity))

    def set_solver(self, solver: SolverOptions | None = None,
                   encoder_solver: SolverOptions | None = None) -> None:
        """Set the options of the module's solves from now on; the weights are untouched.

        Parameters
        ----------
        solver : SolverOptions or None
            Options of the latent solve (with a point process, of z and Λ together);
            ``None`` keeps the current ones.
        encoder_solver : SolverOptions or None
            Options of the ODE-RNN encoder's hidden solves (the GRU encoder has none);
            ``None`` keeps the current ones.
        """
        if solver is not None:
            self.solver = solver
        if encoder_solver is not None:
            self.encoder.set_solver(encoder_solver)

    def encoder_inputs(self, values, mask, events=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Values and mask the encoder reads: with a point process, an extra channel holds
        the event count at each grid time (observed where there is an event)."""
        if not self.point_process:
            return values, mask
        if events is None:
            raise ValueError("This latent ODE models events: pass events= to the encoder.")
        counts = events.to(values).unsqueeze(-1)
        return torch.cat([values, counts], -1), torch.cat([mask, (counts > 0).to(mask)], -1)

    def _reads(self, values, mask, events=None, covariates: Covariates | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Values and mask the encoder reads: the channels, the event counts (point process)
        and the covariates read."""
        read_values, read_mask = self.encoder_inputs(values, mask, events)
        if covariates is not None and covariates.inputs is not None:
            read_values = torch.cat([read_values, covariates.inputs], -1)
            read_mask = torch.cat([read_mask, covariates.inputs_mask], -1)
        return read_values, read_mask

    def forecast_origins(self, batch) -> torch.Tensor:
        """Grid time of each series' forecast origin, shape (batch,): its last read
        observation (of a channel, an event or a covariate), where :meth:`encode` puts q(z);
        0 for a series with nothing read. ``batch`` as in :meth:`posterior_draws`."""
        values, read = self._reads(batch.values, batch.mask, batch.events,
                                   Covariates.of_batch(batch))
        # The encoders' own reading of the grid, so the two cannot disagree.
        return ObservedSequences.from_grid(batch.times, values, read).last_time()

    def encode(self, times, values, mask, events=None, covariates: Covariates | None = None
               ) -> LatentContext:
        """q(z) at each series' last read observation, and its context level.

        Parameters
        ----------
        times : Tensor, shape (grid,)
        values, mask : Tensor, shape (batch, grid, channels)
            ``mask`` marks the entries read.
        events : Tensor or None, shape (batch, grid)
            Event counts read (point process only).
        covariates : Covariates or None
            The batch's covariates (required by a module built with inputs, static features
            or controls); ``covariates.inputs_mask`` marks the covariates read.
        """
        level, seen = context_level(values, mask, self.level)
        relative = (values - level.unsqueeze(1)) * mask
        parts = [] if self.level is None else [level, seen]
        if self.slope_points:
            parts.append(context_slope(times, values, mask, self.slope_points))
        read_values, read_mask = self._reads(relative, mask, events, covariates)
        controls = None
        if covariates is not None:
            if self.n_static:
                parts.append(covariates.static)
            controls = covariates.controls
        if (self.controlled or self.dosed) and controls is None:
            raise ValueError("This latent ODE follows future or impulse covariates: pass "
                             "their schedule in covariates.controls.")
        extra = torch.cat(parts, dim=-1) if parts else None
        mu, logvar, origin = self.encoder(times, read_values, read_mask, extra=extra)
        level_time = None
        if self.mean_reversion:
            level_time = torch.where(seen > 0, times[last_read_rows(mask)],
                                     origin.to(times).unsqueeze(-1))
        return LatentContext(mu, logvar, origin, level, controls, level_time)

    def decode(self, z: torch.Tensor, context: LatentContext, times: torch.Tensor,
               needed: torch.Tensor | None = None) -> torch.Tensor:
        """Channel means at grid ``times`` from ``z`` at each series' origin.

        Parameters
        ----------
        z : Tensor, shape (samples, batch, latent_dim)
        context : LatentContext
        times : Tensor, shape (T,), strictly increasing
        needed : Tensor of bool or None, shape (batch, T)
            The (series, time) pairs wanted; the others are neither solved for nor decoded
            and hold zeros. ``None``: all.

        Returns
        -------
        Tensor, shape (samples, batch, T, channels)
        """
        state = self._state(z, context)
        if self.controlled:
            self.dynamics.func.drive(context.controls)
        path = solve_at(self.dynamics, state, context.origin, times, self.solver, needed)
        return self._means(path, state, context, needed, times)

    def _decoded(self, state: torch.Tensor) -> torch.Tensor:
        """The part of a solved state the decoder reads: z, and the clock with ``clock``."""
        return state[..., :-1] if self.controlled and not self.clock else state

    def _means(self, path: torch.Tensor, state: torch.Tensor, context: LatentContext,
               needed: torch.Tensor | None, times: torch.Tensor) -> torch.Tensor:
        """Channel means (samples, batch, T, channels) on a solved ``path`` from ``state``
        at the origins: the decoder's output (counted from its value at the origin under
        ``level="last"``) plus the level, the pull toward the long-run means with
        ``mean_reversion`` and the doses' response (zeros outside ``needed``)."""
        offset = context.level.unsqueeze(0)  # (samples, batch, channels)
        if self.anchored:
            offset = offset - self.decoder(self._decoded(state))

        def at_pairs(z, series, time):
            means = self.decoder(self._decoded(z)) + offset[:, series]
            if self.mean_reversion:
                means = means + self._reversion(context, series, times[time])
            return means

        means = _at_pairs(at_pairs, path, needed)
        if self.dosed:
            means = means + self._dose_effect(state[..., :self.latent_dim], context, times,
                                              needed)
        return means

    def _reversion(self, context: LatentContext, series: torch.Tensor, at: torch.Tensor
                   ) -> torch.Tensor:
        """The mean reversion's share of the means of ``series`` at times ``at`` (both of
        one shape, ``(...)``), shape ``(..., channels)``: each channel's pull from its level
        toward ``reversion_mean``, by the time from the reading its level came from
        (``mean_reversion`` in :class:`LatentODE`)."""
        horizon = (at.unsqueeze(-1) - context.level_time[series]).abs()
        kept = (1.0 - torch.sigmoid(self.reversion_jump)) * torch.exp(
            -self.log_reversion_rate.exp() * horizon)
        pull = torch.where(horizon > 0, 1.0 - kept, torch.zeros_like(kept))
        return (self.reversion_mean - context.level[series]) * pull

    def _dose_effect(self, z: torch.Tensor, context: LatentContext, times: torch.Tensor,
                     needed: torch.Tensor | None) -> torch.Tensor:
        """The doses' response (samples, batch, T, channels) at the ``needed`` pairs: each
        series' compartment curves weighted by amplitudes its latent state ``z`` at the
        origin sets (counted from the origin under ``level="last"``)."""
        samples, batch = z.shape[:2]
        response = self.dose_response
        amplitude = self.dose_amplitude(z).view(samples, batch, -1, response.n_features)
        if needed is None:
            needed = torch.ones(batch, len(times), dtype=torch.bool, device=z.device)
        series, time = needed.nonzero(as_tuple=True)
        curves = response(times[time], context.controls.of_series(series))  # (pairs, F)
        effect = (amplitude[:, series] * curves.unsqueeze(1)).sum(-1)
        out = effect.new_zeros((samples, batch, len(times), effect.shape[-1]))
        if self.anchored:
            effect = effect - (amplitude * response(context.origin.to(z), context.controls)
                               .unsqueeze(1)).sum(-1)[:, series]
        out[:, series, time] = effect
        return out

    def _state(self, z: torch.Tensor, context: LatentContext) -> torch.Tensor:
        """The solved state at the origins: z, with the clock appended when the dynamics or
        the decoder read it (``clock``, or inputs that follow each series' own times)."""
        if not (self.clock or self.controlled):
            return z
        age = context.origin.to(z).view(1, -1, 1).expand(z.shape[0], -1, 1)
        return torch.cat([z, age], dim=-1)

    def decode_with_intensity(self, z: torch.Tensor, context: LatentContext,
                              times: torch.Tensor, needed: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Channel means, log λ and Λ at ``times``, from one augmented solve.

        Returns
        -------
        means : Tensor, shape (samples, batch, T, channels)
        log_rate, cumulative : Tensor, shape (samples, batch, T)
            log λ(t) and Λ(t) = ∫ λ from each series' origin to t (negative before it).
        """
        if not self.point_process:
            raise ValueError("This latent ODE has no point process (point_process=False).")
        z = self._state(z, context)
        state0 = torch.cat([z, z.new_zeros(z.shape[:-1] + (1,))], -1)
        state = solve_at(self.augmented, state0, context.origin, times, self.solver, needed)
        path, cumulative = state[..., :-1], state[..., -1]
        means = self._means(path, z, context, needed, times)
        return means, _at_pairs(lambda z, b, t: self.intensity.log_rate(z), path, needed), \
            cumulative

    @staticmethod
    def sample_posterior(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int,
                         generator: torch.Generator | Sequence[torch.Generator] | None = None
                         ) -> torch.Tensor:
        """Reparameterised draws ``mu + eps * exp(logvar / 2)``, shape (samples, *mu.shape).

        ``eps`` comes from ``generator`` (a CPU generator: the same draws on any device) when
        given, from one generator per series (a sequence, one per row of ``mu``: a series'
        draws then do not depend on its batch), else from torch's global generator on
        ``mu``'s device.
        """
        shape = (n_samples,) + tuple(mu.shape)
        if generator is None:
            eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)
        elif isinstance(generator, torch.Generator):
            eps = torch.randn(shape, generator=generator).to(mu)
        else:
            eps = torch.stack([torch.randn((n_samples,) + tuple(mu.shape[1:]), generator=g)
                               for g in generator], dim=1).to(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def draw(self, context: LatentContext, n_samples: int,
             generator: torch.Generator | Sequence[torch.Generator] | None = None
             ) -> torch.Tensor:
        """Draws of z at the origins, shape (samples, batch, latent_dim)."""
        return self.sample_posterior(context.mu, context.logvar, n_samples, generator)

    def posterior_draws(self, batch, n_samples: int,
                        generator: torch.Generator | Sequence[torch.Generator] | None = None
                        ) -> tuple[torch.Tensor, LatentContext]:
        """Draws of z at each series' origin from q(z | context) of a whole batch.

        The one place a batch becomes posterior draws, so forecasts, intensities and event
        draws all read a context the same way.

        Parameters
        ----------
        batch : UnionBatch
            A union batch (:class:`latode.data.UnionBatch`, or anything with its ``times``,
            ``values``, ``mask``, ``events`` and covariate fields); every observation and
            event of it is read.
        n_samples : int
        generator : Generator, sequence of Generator or None
            As in :meth:`sample_posterior`.

        Returns
        -------
        z : Tensor, shape (samples, batch, latent_dim)
        context : LatentContext
            The encoded context the draws belong to, for :meth:`decode`.
        """
        context = self.encode(batch.times, batch.values, batch.mask, batch.events,
                              Covariates.of_batch(batch))
        return self.draw(context, n_samples, generator), context

    def observation_log_std(self, horizon: torch.Tensor | None = None) -> torch.Tensor:
        """Log standard deviation of the observation noise, per channel (shape (channels,)).

        With ``horizon_noise`` and ``horizon`` (times from the forecast origin, any shape),
        at those horizons: ``log sqrt(std**2 + diffusion**2 * |horizon|)``, shape
        ``horizon.shape + (channels,)``.
        """
        log_std = self.log_std.clamp(min=math.log(1e-3))
        if horizon is None or not self.horizon_noise:
            return log_std
        variance = (torch.exp(2 * log_std)
                    + torch.exp(2 * self.log_diffusion) * horizon.abs().unsqueeze(-1))
        return 0.5 * torch.log(variance)

    def observation_std_at(self, batch, times: torch.Tensor) -> torch.Tensor:
        """Standard deviation of the observation noise of each series of ``batch`` at grid
        ``times`` (T,), shape (batch, T, channels): growing with the time from the series'
        forecast origin under ``horizon_noise``, the same everywhere otherwise."""
        horizon = times.view(1, -1) - self.forecast_origins(batch).view(-1, 1)
        log_std = self.observation_log_std(horizon)
        return log_std.exp().expand(horizon.shape + log_std.shape[-1:])

    def elbo_terms(self, times, values, mask, enc_mask=None, events=None, window=None,
                   n_samples: int = 1, enc_events=None, covariates: Covariates | None = None
                   ) -> dict[str, torch.Tensor]:
        """The terms of the bound for ``n_samples`` posterior draws.

        Parameters
        ----------
        times : Tensor, shape (T,)
        values, mask : Tensor, shape (batch, T, channels)
            ``mask`` marks the entries scored.
        enc_mask : Tensor or None
            Entries the encoder may read (default: ``mask``).
        events : Tensor or None, shape (batch, T)
            Event counts (point process only), all scored.
        window : Tensor or None, shape (batch, T)
            Each series' observation window for the Poisson integral (first to last marked
            time; default: where ``events`` or ``mask`` has anything).
        n_samples : int
            Posterior draws.
        enc_events : Tensor or None
            Event counts the encoder may read (default: ``events``).
        covariates : Covariates or None
            The batch's covariates, as the encoder may read them.

        Returns
        -------
        dict of Tensor
            ``observations`` and ``events`` (samples, batch): log-likelihoods given each draw
            (``events`` is zero without a point process); ``log_q``, ``log_p`` (samples,
            batch): the draws' posterior and prior log-densities; ``kl`` (batch,): the
            analytic KL(q || N(0, I)); ``mu``, ``logvar`` (batch, latent_dim): q itself.
        """
        read = mask if enc_mask is None else enc_mask
        context = self.encode(times, values, read, events if enc_events is None else enc_events,
                               covariates)
        z = self.draw(context, n_samples)
        needed = mask.sum(-1) > 0
        if self.point_process:
            if window is None:
                window = ((mask.sum(-1) > 0) | (events > 0)).to(values)
            needed = needed | (window > 0) | (events > 0)
            mean, log_rate, cumulative = self.decode_with_intensity(z, context, times, needed)
            event_ll = poisson_log_likelihood(log_rate, cumulative, events, window)
        else:
            mean = self.decode(z, context, times, needed)
            event_ll = mean.new_zeros(mean.shape[:2])
        mu, logvar = context.mu, context.logvar
        horizon = times.view(1, 1, -1) - context.origin.to(times).view(1, -1, 1)
        return {
            "observations": masked_gaussian_log_likelihood(
                values, mean, self.observation_log_std(horizon), mask),
            "events": event_ll,
            "log_q": torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1),
            "log_p": torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1),
            "kl": gaussian_kl_standard(mu, logvar), "mu": mu, "logvar": logvar,
        }

    def elbo(self, times, values, mask, enc_mask=None, n_samples: int = 1,
             iwae: bool = False, events=None, window=None, enc_events=None,
             kl_weight: float = 1.0, covariates: Covariates | None = None,
             free_bits: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-series evidence lower bound (ELBO, or IWAE bound with ``iwae``).

        Arguments as in :meth:`elbo_terms`; with a point process the bound covers the values
        and the event times jointly. ``kl_weight`` < 1 scales the KL term (the log-ratio
        ``log p(z0) - log q(z0)`` in the IWAE weights): the annealed objective of a KL
        warm-up, a bound only at 1.0. ``free_bits`` > 0 counts each latent dimension's KL
        as at least that many nats (:func:`~latode.nn.likelihoods.gaussian_kl_standard`;
        the ELBO only, not the IWAE bound): a training objective, a bound only at 0. The
        reported ``kl`` diagnostic is never scaled or floored.

        Returns
        -------
        (Tensor of shape (batch,), dict of float diagnostics)
        """
        terms = self.elbo_terms(times, values, mask, enc_mask, events, window, n_samples,
                                enc_events, covariates)
        log_lik = terms["observations"] + terms["events"]
        if iwae:
            weights = log_lik + kl_weight * (terms["log_p"] - terms["log_q"])
            bound = torch.logsumexp(weights, dim=0) - math.log(n_samples)
            kl = (terms["log_q"] - terms["log_p"]).mean(0)
        else:
            kl = terms["kl"]
            penalty = (gaussian_kl_standard(terms["mu"], terms["logvar"], free_bits)
                       if free_bits else kl)
            bound = log_lik.mean(0) - kl_weight * penalty
        info = {"kl": float(kl.mean().detach()),
                "log_lik": float(terms["observations"].mean().detach())}
        if self.point_process:
            info["events_log_lik"] = float(terms["events"].mean().detach())
        return bound, info
