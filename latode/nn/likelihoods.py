"""Observation likelihoods over masked, irregular observations."""

from __future__ import annotations

import math

import torch

__all__ = ["masked_gaussian_log_likelihood", "gaussian_kl_standard"]


def masked_gaussian_log_likelihood(values: torch.Tensor, mean: torch.Tensor,
                                   log_std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of log N(values | mean, exp(log_std)^2) over observed entries, per series.

    Parameters
    ----------
    values, mask : Tensor, shape (batch, time, channels)
    mean : Tensor, shape (..., batch, time, channels)
        Leading sample dimensions broadcast.
    log_std : Tensor, shape (channels,) or broadcastable to ``mean``

    Returns
    -------
    Tensor, shape (..., batch)

    Examples
    --------
    >>> x = torch.zeros(1, 2, 1); m = torch.tensor([[[1.0], [0.0]]])
    >>> round(float(masked_gaussian_log_likelihood(x, x, torch.zeros(1), m)), 4)
    -0.9189
    """
    var = torch.exp(2 * log_std)
    log_density = -0.5 * ((values - mean) ** 2 / var + 2 * log_std + math.log(2 * math.pi))
    return (log_density * mask).sum(dim=(-1, -2))


def gaussian_kl_standard(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0
                         ) -> torch.Tensor:
    """KL( N(mu, exp(logvar)) || N(0, I) ), summed over the last dimension.

    With ``free_bits`` > 0, each dimension's KL counts as at least ``free_bits`` nats (the
    "free bits" of Kingma et al. 2016, per row): a dimension below the floor costs the floor
    whatever it holds, so the objective does not push it to the prior.

    Examples
    --------
    >>> float(gaussian_kl_standard(torch.zeros(2), torch.zeros(2)))
    0.0
    >>> float(gaussian_kl_standard(torch.zeros(2), torch.zeros(2), free_bits=0.5))
    1.0
    """
    per_dimension = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)
    if free_bits:
        per_dimension = per_dimension.clamp(min=float(free_bits))
    return per_dimension.sum(-1)
