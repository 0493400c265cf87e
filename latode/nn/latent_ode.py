"""The latent ODE model (Chen et al. 2018; Rubanova et al. 2019) as a torch module.

An encoder reads the observations backwards to give q(z0); z0 follows a learned ODE through
any requested times; a decoder maps z(t) to each channel's mean, with a learned per-channel
observation noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode.nn.dynamics import MLPDynamics, mlp
from latode.nn.encoders import build_encoder
from latode.nn.likelihoods import gaussian_kl_standard, masked_gaussian_log_likelihood

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
    """

    def __init__(self, n_channels: int, latent_dim: int = 8, hidden: Sequence[int] = (64, 64),
                 encoder: str = "ode-rnn", encoder_hidden: int = 32,
                 solver: SolverOptions | None = None,
                 encoder_solver: SolverOptions | None = None):
        super().__init__()
        self.solver = solver or SolverOptions()
        self.encoder = build_encoder(encoder, n_channels, encoder_hidden, latent_dim,
                                     encoder_solver or SolverOptions(method="euler"))
        self.dynamics = CountedDynamics(MLPDynamics(latent_dim, hidden))
        self.decoder = mlp(latent_dim, (max(hidden[-1] if hidden else 32, 16),), n_channels)
        # Learned per-channel observation noise, in standardised units.
        self.log_std = nn.Parameter(torch.full((n_channels,), math.log(0.1)))

    def posterior(self, times, values, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z0 | observations), each (batch, latent_dim)."""
        return self.encoder(times, values, mask)

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

    def observation_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(min=math.log(1e-3))

    def elbo(self, times, values, mask, enc_mask=None, n_samples: int = 1,
             iwae: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-series evidence lower bound (ELBO, or IWAE bound with ``iwae``).

        Parameters
        ----------
        times : Tensor, shape (T,)
        values, mask : Tensor, shape (batch, T, channels)
            ``mask`` marks the entries scored.
        enc_mask : Tensor or None
            Entries the encoder may read (default: ``mask``).
        n_samples : int
            Posterior samples.

        Returns
        -------
        (Tensor of shape (batch,), dict of float diagnostics)
        """
        mu, logvar = self.posterior(times, values, mask if enc_mask is None else enc_mask)
        eps = torch.randn((n_samples,) + mu.shape, dtype=mu.dtype, device=mu.device)
        z0 = mu + eps * torch.exp(0.5 * logvar)
        mean = self.decode(z0, times[0], times)
        log_lik = masked_gaussian_log_likelihood(values, mean, self.observation_log_std(), mask)
        if iwae:
            std = torch.exp(0.5 * logvar)
            log_q = torch.distributions.Normal(mu, std).log_prob(z0).sum(-1)
            log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z0).sum(-1)
            weights = log_lik + log_p - log_q
            bound = torch.logsumexp(weights, dim=0) - math.log(n_samples)
            kl = (log_q - log_p).mean(0)
        else:
            kl = gaussian_kl_standard(mu, logvar)
            bound = log_lik.mean(0) - kl
        return bound, {"kl": float(kl.mean().detach()),
                       "log_lik": float(log_lik.mean().detach())}
