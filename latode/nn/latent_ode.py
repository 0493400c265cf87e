"""The latent ODE model (Chen et al. 2018; Rubanova et al. 2019) as a torch module.

An encoder reads the observations backwards to give q(z0); z0 follows a learned ODE through
any requested times; a decoder maps z(t) to each channel's mean, with a learned per-channel
observation noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode.nn.dynamics import MLPDynamics, mlp
from latode.nn.encoders import build_encoder
from latode.nn.likelihoods import gaussian_kl_standard, masked_gaussian_log_likelihood
from latode.nn.point_process import (
    IntensityAugmentedDynamics,
    PoissonIntensity,
    poisson_log_likelihood,
)

__all__ = ["LatentODE", "solve_from"]


def solve_from(func: CountedDynamics, z0: torch.Tensor, t0: torch.Tensor,
               times: torch.Tensor, options: SolverOptions) -> torch.Tensor:
    """z(t) for sorted ``times`` that may lie before and after ``t0``.

    Solves forward from ``t0`` through the later times and backward through the earlier ones.

    Parameters
    ----------
    z0 : Tensor, shape (..., d)
    t0 : Tensor, scalar
    times : Tensor, shape (T,), strictly increasing

    Returns
    -------
    Tensor, shape (T, ..., d)
    """
    before = times < t0
    parts = []
    if before.any():
        span = torch.cat([t0.reshape(1), times[before].flip(0)])
        parts.append(odeint_checked(func, z0, span, options)[1:].flip(0))
    after = times[~before]
    if len(after):
        starts_at_t0 = bool(after[0] == t0)
        span = after if starts_at_t0 else torch.cat([t0.reshape(1), after])
        solved = odeint_checked(func, z0, span, options)
        parts.append(solved if starts_at_t0 else solved[1:])
    return torch.cat(parts, dim=0)


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
    """

    def __init__(self, n_channels: int, latent_dim: int = 8, hidden: Sequence[int] = (64, 64),
                 encoder: str = "ode-rnn", encoder_hidden: int = 32,
                 solver: SolverOptions | None = None,
                 encoder_solver: SolverOptions | None = None, point_process: bool = False,
                 observation_std: float | None = None):
        super().__init__()
        self.solver = solver or SolverOptions()
        self.point_process = point_process
        # With a point process the encoder also reads when events happened (one more input
        # channel): their timing is information about z0.
        self.encoder = build_encoder(encoder, n_channels + int(point_process), encoder_hidden,
                                     latent_dim, encoder_solver or SolverOptions(method="euler"))
        self.dynamics = CountedDynamics(MLPDynamics(latent_dim, hidden))
        width = max(hidden[-1] if hidden else 32, 16)
        with warnings.catch_warnings():
            # A pure point process has no value channel: the decoder's last layer is empty.
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.decoder = mlp(latent_dim, (width,), n_channels)
        # Per-channel observation noise, learned from 0.1 or fixed. A buffer when fixed: the
        # name stays "log_std", so saved weights load either way into a matching module.
        if observation_std is None:
            self.log_std = nn.Parameter(torch.full((n_channels,), math.log(0.1)))
        else:
            self.register_buffer(
                "log_std", torch.full((n_channels,), math.log(float(observation_std))))
        if point_process:
            self.intensity = PoissonIntensity(latent_dim, (width,))
            # Shares the dynamics network: z(t) is the same with or without Λ appended.
            self.augmented = CountedDynamics(
                IntensityAugmentedDynamics(self.dynamics.func, self.intensity))

    def encoder_inputs(self, values, mask, events=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Values and mask the encoder reads: with a point process, an extra channel holds
        the event count at each grid time (observed where there is an event)."""
        if not self.point_process:
            return values, mask
        if events is None:
            raise ValueError("This latent ODE models events: pass events= to the encoder.")
        counts = events.to(values).unsqueeze(-1)
        return torch.cat([values, counts], -1), torch.cat([mask, (counts > 0).to(mask)], -1)

    def posterior(self, times, values, mask, events=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z0 | observations), each (batch, latent_dim)."""
        return self.encoder(times, *self.encoder_inputs(values, mask, events))

    def decode(self, z0: torch.Tensor, t0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Channel means at ``times`` from ``z0`` at ``t0``.

        Parameters
        ----------
        z0 : Tensor, shape (samples, batch, latent_dim)
        times : Tensor, shape (T,), strictly increasing

        Returns
        -------
        Tensor, shape (samples, batch, T, channels)
        """
        z = solve_from(self.dynamics, z0, t0, times, self.solver)  # (T, S, B, L)
        return self.decoder(z.permute(1, 2, 0, 3))

    def decode_with_intensity(self, z0: torch.Tensor, t0: torch.Tensor, times: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Channel means, log λ and Λ at ``times``, from one augmented solve.

        Returns
        -------
        means : Tensor, shape (samples, batch, T, channels)
        log_rate, cumulative : Tensor, shape (samples, batch, T)
            log λ(t) and Λ(t) = ∫_{t0}^t λ (negative before ``t0``).
        """
        if not self.point_process:
            raise ValueError("This latent ODE has no point process (point_process=False).")
        state0 = torch.cat([z0, z0.new_zeros(z0.shape[:-1] + (1,))], -1)
        state = solve_from(self.augmented, state0, t0, times, self.solver).permute(1, 2, 0, 3)
        z, cumulative = state[..., :-1], state[..., -1]
        return self.decoder(z), self.intensity.log_rate(z), cumulative

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

    def observation_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(min=math.log(1e-3))

    def elbo_terms(self, times, values, mask, enc_mask=None, events=None, window=None,
                   n_samples: int = 1, enc_events=None) -> dict[str, torch.Tensor]:
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

        Returns
        -------
        dict of Tensor
            ``observations`` and ``events`` (samples, batch): log-likelihoods given each draw
            (``events`` is zero without a point process); ``log_q``, ``log_p`` (samples,
            batch): the draws' posterior and prior log-densities; ``kl`` (batch,): the
            analytic KL(q || N(0, I)).
        """
        read = mask if enc_mask is None else enc_mask
        mu, logvar = self.posterior(times, values, read,
                                    events if enc_events is None else enc_events)
        z0 = self.sample_posterior(mu, logvar, n_samples)
        if self.point_process:
            mean, log_rate, cumulative = self.decode_with_intensity(z0, times[0], times)
            if window is None:
                window = ((mask.sum(-1) > 0) | (events > 0)).to(values)
            event_ll = poisson_log_likelihood(log_rate, cumulative, events, window)
        else:
            mean = self.decode(z0, times[0], times)
            event_ll = mean.new_zeros(mean.shape[:2])
        return {
            "observations": masked_gaussian_log_likelihood(values, mean,
                                                           self.observation_log_std(), mask),
            "events": event_ll,
            "log_q": torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z0).sum(-1),
            "log_p": torch.distributions.Normal(0.0, 1.0).log_prob(z0).sum(-1),
            "kl": gaussian_kl_standard(mu, logvar),
        }

    def elbo(self, times, values, mask, enc_mask=None, n_samples: int = 1,
             iwae: bool = False, events=None, window=None, enc_events=None,
             kl_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-series evidence lower bound (ELBO, or IWAE bound with ``iwae``).

        Arguments as in :meth:`elbo_terms`; with a point process the bound covers the values
        and the event times jointly. ``kl_weight`` < 1 scales the KL term (the log-ratio
        ``log p(z0) - log q(z0)`` in the IWAE weights): the annealed objective of a KL
        warm-up, a bound only at 1.0. The reported ``kl`` diagnostic is never scaled.

        Returns
        -------
        (Tensor of shape (batch,), dict of float diagnostics)
        """
        terms = self.elbo_terms(times, values, mask, enc_mask, events, window, n_samples,
                                enc_events)
        log_lik = terms["observations"] + terms["events"]
        if iwae:
            weights = log_lik + kl_weight * (terms["log_p"] - terms["log_q"])
            bound = torch.logsumexp(weights, dim=0) - math.log(n_samples)
            kl = (terms["log_q"] - terms["log_p"]).mean(0)
        else:
            kl = terms["kl"]
            bound = log_lik.mean(0) - kl_weight * kl
        info = {"kl": float(kl.mean().detach()),
                "log_lik": float(terms["observations"].mean().detach())}
        if self.point_process:
            info["events_log_lik"] = float(terms["events"].mean().detach())
        return bound, info
