"""Solution paths of autonomous ODEs at many times: one solve for a whole batch.

A batch of latent trajectories starts each series at its own origin and asks for its state at
its own times. For autonomous dynamics only the offset from the origin matters, so the batch
needs one solve through the union of its offsets (:func:`solve_at`), forwards and backwards
from 0 (:func:`solve_from`).

That union can hold thousands of offsets (irregular timestamps rarely coincide), and
torchdiffeq evaluates its interpolant once per requested time, in Python, each evaluation a
node of the autograd graph. Past :data:`DENSE_SPACING`-spaced nodes the solve therefore stops
at the nodes only, and the states in between come from one vectorised cubic Hermite
interpolation through the nodes' states and derivatives (dense output). Its error is about
``h**4 / 384`` times the fourth derivative, far below the solver's tolerance at ``h = 1/16``
of a time unit, and the cost of a solve no longer grows with the number of requested times.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latode._numerics.solve import CountedDynamics, SolverOptions, odeint_checked

__all__ = ["DENSE_SPACING", "solve_from", "solve_at", "hermite_nodes", "hermite_interpolate"]

#: Spacing, in model time units, of the nodes that dense output interpolates between.
DENSE_SPACING = 1.0 / 16.0


class _BothWays(nn.Module):
    """Autonomous dynamics run forwards and backwards in one solve.

    The state stacks two copies along a new leading axis; the second runs in reversed time
    (its derivative negated), so solving to ``s`` gives z(t0 + s) and z(t0 - s) together.
    One solver loop then serves both directions, and its steps follow the longer side.
    """

    def __init__(self, func: nn.Module):
        super().__init__()
        self.func = func

    def forward(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dy = self.func(s, y)
        # Negate the reversed copy without building a sign tensor on every evaluation (on a
        # GPU that would be a host-to-device copy per function evaluation).
        return torch.cat([dy[:1], -dy[1:]])


def solve_from(func: CountedDynamics, z0: torch.Tensor, t0: torch.Tensor,
               times: torch.Tensor, options: SolverOptions) -> torch.Tensor:
    """z(t) for sorted ``times`` that may lie before and after ``t0``.

    ``func`` must be autonomous when ``times`` lie on both sides of ``t0``: both directions
    are then solved at once (forwards in time, and backwards as a forward solve in reversed
    time).

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
    back = (t0 - times[before]).flip(0)  # increasing distances behind t0
    ahead = times[~before] - t0
    if len(back) and len(ahead):
        span = torch.unique(torch.cat([back.new_zeros(1), back, ahead]), sorted=True)
        both = odeint_checked(_BothWays(func), torch.stack([z0, z0]), span, options)
        earlier = both[torch.searchsorted(span, back), 1].flip(0)
        return torch.cat([earlier, both[torch.searchsorted(span, ahead), 0]], dim=0)
    sign = -1.0 if len(back) else 1.0
    distance = back if len(back) else ahead
    starts_at_t0 = bool(distance[0] == 0)
    span = t0 + sign * (distance if starts_at_t0 else torch.cat([distance.new_zeros(1),
                                                                   distance]))
    solved = odeint_checked(func, z0, span, options)
    solved = solved if starts_at_t0 else solved[1:]
    return solved.flip(0) if len(back) else solved


def hermite_nodes(low: float, high: float, spacing: float = DENSE_SPACING,
                  like: torch.Tensor | None = None) -> torch.Tensor:
    """Nodes from ``low`` <= 0 to ``high`` >= 0, 0 among them, at most ``spacing`` apart.

    Examples
    --------
    >>> [round(v, 6) for v in hermite_nodes(-0.25, 0.3, spacing=0.125).tolist()]
    [-0.25, -0.125, 0.0, 0.1, 0.2, 0.3]
    """
    like = torch.zeros((), dtype=torch.float64) if like is None else like
    before, after = math.ceil(-low / spacing), math.ceil(high / spacing)
    left = torch.linspace(low, 0.0, before + 1, dtype=like.dtype, device=like.device)[:-1]
    right = torch.linspace(0.0, high, after + 1, dtype=like.dtype, device=like.device)
    return torch.cat([left, right])


def hermite_interpolate(nodes: torch.Tensor, z: torch.Tensor, dz: torch.Tensor,
                        at: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite interpolation of each series' path at its own times.

    Parameters
    ----------
    nodes : Tensor, shape (K,), strictly increasing, K >= 2
    z, dz : Tensor, shape (samples, batch, K, d)
        States and their time derivatives at the nodes.
    at : Tensor, shape (batch, T)
        Times within ``[nodes[0], nodes[-1]]``.

    Returns
    -------
    Tensor, shape (samples, batch, T, d)

    Examples
    --------
    A cubic is reproduced exactly:

    >>> nodes = torch.tensor([0.0, 1.0], dtype=torch.float64)
    >>> z = (nodes**3).view(1, 1, 2, 1)
    >>> dz = (3 * nodes**2).view(1, 1, 2, 1)
    >>> hermite_interpolate(nodes, z, dz, torch.tensor([[0.5]], dtype=torch.float64)).item()
    0.125
    """
    left = (torch.searchsorted(nodes, at.contiguous(), right=True) - 1).clamp(0, len(nodes) - 2)
    right = left + 1
    width = nodes[right] - nodes[left]
    s = ((at - nodes[left]) / width).unsqueeze(0).unsqueeze(-1)
    width = width.unsqueeze(0).unsqueeze(-1)

    def take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.unsqueeze(0).unsqueeze(-1).expand(x.shape[0], -1, -1, x.shape[-1])
        return x.gather(2, index)

    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * take(z, left) + (s3 - 2 * s2 + s) * width * take(dz, left)
            + (3 * s2 - 2 * s3) * take(z, right) + (s3 - s2) * width * take(dz, right))


def solve_at(func: CountedDynamics, z0: torch.Tensor, origin: torch.Tensor,
             times: torch.Tensor, options: SolverOptions,
             needed: torch.Tensor | None = None) -> torch.Tensor:
    """z(t) of each series at grid ``times``, from its own state ``z0`` at its own ``origin``.

    ``func`` must be autonomous: every series' times are counted from its own origin and one
    solve through the union of those offsets (forwards and backwards from 0) serves the
    batch. When the union holds more offsets than :data:`DENSE_SPACING`-spaced nodes would
    cover it with, the solve stops at the nodes and the rest is cubic Hermite interpolation
    (see the module's docstring).

    Parameters
    ----------
    z0 : Tensor, shape (samples, batch, d)
    origin : Tensor, shape (batch,)
    times : Tensor, shape (T,)
    needed : Tensor of bool or None, shape (batch, T)
        The (series, time) pairs wanted; others are left out of the solve and hold some
        other time's state. ``None``: all.

    Returns
    -------
    Tensor, shape (samples, batch, T, d)

    Examples
    --------
    >>> class Grow(torch.nn.Module):
    ...     def forward(self, t, z):
    ...         return z
    >>> z = solve_at(CountedDynamics(Grow()), torch.ones(1, 2, 1), torch.tensor([0.0, 1.0]),
    ...              torch.tensor([0.0, 1.0]), SolverOptions(rtol=1e-8, atol=1e-8))
    >>> [round(float(v), 4) for v in z[0, :, :, 0].flatten()]
    [1.0, 2.7183, 0.3679, 1.0]
    """
    offsets = times.unsqueeze(0) - origin.unsqueeze(1)  # (batch, T)
    wanted = offsets.reshape(-1) if needed is None else offsets[needed.bool()]
    grid = torch.unique(torch.cat([offsets.new_zeros(1), wanted]), sorted=True)
    low, high = float(grid[0]), float(grid[-1])
    if len(grid) <= math.ceil(-low / DENSE_SPACING) + math.ceil(high / DENSE_SPACING) + 1:
        # No more requested offsets than nodes: solve exactly at them.
        position = torch.searchsorted(grid, offsets.contiguous()).clamp(max=len(grid) - 1)
        z = solve_from(func, z0, grid.new_zeros(()), grid, options).permute(1, 2, 0, 3)
        index = position.unsqueeze(0).unsqueeze(-1).expand(z.shape[0], -1, -1, z.shape[-1])
        return z.gather(2, index)
    nodes = hermite_nodes(low, high, like=grid)
    z = solve_from(func, z0, nodes.new_zeros(()), nodes, options)  # (K, samples, batch, d)
    dz = func(nodes.new_zeros(()), z)  # one batched evaluation at every node
    at = offsets.clamp(min=low, max=high)  # unwanted pairs stay inside the nodes
    return hermite_interpolate(nodes, z.permute(1, 2, 0, 3), dz.permute(1, 2, 0, 3), at)
