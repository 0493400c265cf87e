"""An inhomogeneous Poisson process driven by the latent state (Chen et al. 2018, §5.1;
Rubanova et al. 2019, §4).

The latent trajectory z(t) sets an event intensity λ(t) = softplus(g(z(t))) > 0, and the
events t_1 < ... < t_n of a series observed over [a, b] have the log-likelihood

.. math::

    \\log p(t_1, \\dots, t_n) = \\sum_i \\log \\lambda(t_i) - \\int_a^b \\lambda(t)\\,dt.

The integral is not a Riemann sum on the observed grid: the ODE state is augmented with the
cumulative intensity Λ(t), dΛ/dt = λ(z(t)), and solved in the same solve as z(t), so its
accuracy follows the solver's tolerances (and the adjoint covers it like any other state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from latode.nn.dynamics import mlp

__all__ = ["PoissonIntensity", "IntensityAugmentedDynamics", "initialise_rate",
           "poisson_log_likelihood", "scored_events"]


class PoissonIntensity(nn.Module):
    """λ(z) = softplus(g(z)), one intensity per series, in events per model time unit.

    Parameters
    ----------
    latent_dim : int
    hidden : sequence of int
        Widths of g.

    Examples
    --------
    >>> lam = PoissonIntensity(4, (8,))
    >>> bool((lam(torch.randn(3, 4)) > 0).all())
    True
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (32,)):
        super().__init__()
        self.net = mlp(latent_dim, hidden, 1)

    def log_rate(self, z: torch.Tensor) -> torch.Tensor:
        """log λ(z), shape ``z.shape[:-1]``; computed stably for very negative g."""
        g = self.net(z).squeeze(-1)
        # log(softplus(g)) = log(log1p(exp(g))): for g << 0 softplus(g) ~ exp(g), whose log is
        # g itself; torch's softplus underflows to 0 there and the log would be -inf.
        return torch.where(g < -15.0, g, torch.log(F.softplus(g).clamp_min(1e-30)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """λ(z), shape ``z.shape[:-1]``."""
        return F.softplus(self.net(z).squeeze(-1))


def scored_events(events: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """The event counts a Poisson likelihood scores, shape (batch, grid).

    A series whose window holds a single time (one row) has no interval over which a rate is
    observed: its event would add log λ(t_1) with nothing to pay, rewarding λ → ∞. Such events
    are not scored (they still reach the encoder as input). ``PackedSeries.scored_events``
    applies the same rule to packed rows.

    Parameters
    ----------
    events, window : Tensor, shape (batch, grid)
        Event counts, and 1.0 at the grid times inside each series' window.
    """
    return events * ((window > 0).sum(-1, keepdim=True) > 1).to(events)


def initialise_rate(intensity: PoissonIntensity, packed) -> float:
    """Start λ at the pooled homogeneous rate of ``packed`` (its maximum-likelihood value):
    events over the summed observed spans, in model time. Training then learns how λ varies
    instead of first climbing from an arbitrary level. Returns the rate.

    Parameters
    ----------
    intensity : PoissonIntensity
    packed : PackedSeries
        With ``events``.
    """
    first, last = packed.times[packed.indptr[:-1]], packed.times[packed.indptr[1:] - 1]
    exposure = float((last - first).sum())
    rate = float(packed.scored_events.sum()) / exposure if exposure > 0 else 1.0
    rate = min(max(rate, 1e-6), 1e6)
    with torch.no_grad():
        bias = intensity.net[-1].bias
        # softplus^{-1}(rate) = log(expm1(rate)), computed stably for large rates.
        bias.fill_(rate + math.log(-math.expm1(-rate)))
    return rate


class IntensityAugmentedDynamics(nn.Module):
    """d[z, Λ]/dt = [f(t, z), λ(z)]: the latent ODE with the cumulative intensity appended.

    Λ never feeds back into z, so z(t) is the same as in the unaugmented solve.

    Parameters
    ----------
    dynamics : nn.Module
        f(t, z).
    intensity : nn.Module
        λ(z) > 0, returning shape ``z.shape[:-1]``.

    Examples
    --------
    >>> class Rotate(nn.Module):
    ...     def forward(self, t, z):
    ...         return torch.stack([-z[..., 1], z[..., 0]], -1)
    >>> class Constant(nn.Module):
    ...     def forward(self, z):
    ...         return torch.full(z.shape[:-1], 2.0)
    >>> f = IntensityAugmentedDynamics(Rotate(), Constant())
    >>> f(torch.tensor(0.0), torch.tensor([[1.0, 0.0, 0.0]])).tolist()
    [[-0.0, 1.0, 2.0]]
    """

    def __init__(self, dynamics: nn.Module, intensity: nn.Module):
        super().__init__()
        self.dynamics = dynamics
        self.intensity = intensity

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        z = state[..., :-1]
        return torch.cat([self.dynamics(t, z), self.intensity(z).unsqueeze(-1)], dim=-1)


def poisson_log_likelihood(log_rate: torch.Tensor, cumulative: torch.Tensor,
                           events: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Inhomogeneous Poisson log-likelihood of each series' events over its window.

    Parameters
    ----------
    log_rate : Tensor, shape (..., batch, grid)
        log λ at the grid times.
    cumulative : Tensor, shape (..., batch, grid)
        Λ at the grid times (any origin: only differences are used).
    events : Tensor, shape (batch, grid)
        Number of events of each series at each grid time (0 where none).
    window : Tensor, shape (batch, grid)
        1.0 at grid times inside each series' observation window; the window runs from the
        first to the last marked time.

    Returns
    -------
    Tensor, shape (..., batch)
        ``sum_i log λ(t_i) - (Λ(b) - Λ(a))``.

    Examples
    --------
    Rate 2 on [0, 3] with events at 1 and 2: 2 log 2 - 6.

    >>> lr = torch.full((1, 4), float(torch.log(torch.tensor(2.0))))
    >>> cum = torch.tensor([[0.0, 2.0, 4.0, 6.0]])
    >>> ev = torch.tensor([[0.0, 1.0, 1.0, 0.0]]); win = torch.ones(1, 4)
    >>> round(float(poisson_log_likelihood(lr, cum, ev, win)), 4)
    -4.6137
    """
    events = events.to(log_rate)
    inside = window > 0
    grid = torch.arange(window.shape[-1], device=window.device)
    big = window.shape[-1]
    first = torch.where(inside, grid, big).amin(-1).clamp(max=big - 1)
    last = torch.where(inside, grid, -1).amax(-1).clamp(min=0)
    shape = cumulative.shape[:-1] + (1,)
    start = torch.gather(cumulative, -1, first.expand(shape[:-1]).unsqueeze(-1))
    end = torch.gather(cumulative, -1, last.expand(shape[:-1]).unsqueeze(-1))
    integral = (end - start).squeeze(-1) * inside.any(-1).to(log_rate)
    events = scored_events(events, window)
    # where() rather than a product: log λ may be -inf where there is no event.
    event_term = torch.where(events > 0, events * log_rate, torch.zeros_like(log_rate))
    return event_term.sum(-1) - integral
