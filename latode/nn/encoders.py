"""Recognition networks q(z0 | observations) that read irregular series backwards in time.

Both encoders take a union-grid batch — ``times`` (grid,), ``values`` and ``mask``
(batch, grid, channels) — and return the mean and log-variance of z0 at ``times[0]``, each
series' first row (:meth:`latode.data.PackedSeries.union_batch` counts times from there).
Values enter only through ``values * mask`` together with the mask itself, and a series'
hidden state is updated only at grid points where it has an observation, so unobserved
entries change nothing (Rubanova et al. 2019, section 3). In particular grid times after a
series' last read observation (other series' times, or a future hidden from the encoder in
training) leave its encoding unchanged, so a prefix read in training looks exactly like a
context at prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode.nn.dynamics import MLPDynamics, mlp

__all__ = ["GRUDeltaTEncoder", "ODERNNEncoder", "build_encoder"]


class _BackwardEncoder(nn.Module):
    """Shared parts: a GRU cell fed ``[x * m, m]`` and a head to (mu, logvar)."""

    def __init__(self, n_channels: int, hidden_dim: int, latent_dim: int, extra_inputs: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(2 * n_channels + extra_inputs, hidden_dim)
        self.head = mlp(hidden_dim, (hidden_dim,), 2 * latent_dim)

    def _update(self, h: torch.Tensor, x: torch.Tensor, m: torch.Tensor,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [x * m, m] + ([] if extra is None else [extra])
        h_new = self.cell(torch.cat(inputs, dim=-1), h)
        observed = (m.sum(-1, keepdim=True) > 0).to(h)
        return observed * h_new + (1 - observed) * h

    def _posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 5.0)


class GRUDeltaTEncoder(_BackwardEncoder):
    """GRU over the observations in reverse time, with the time gap as an input (the
    recognition RNN of Chen et al. 2018).

    Parameters
    ----------
    n_channels, hidden_dim, latent_dim : int

    Examples
    --------
    >>> enc = GRUDeltaTEncoder(2, 8, 4)
    >>> mu, logvar = enc(torch.linspace(0, 1, 5), torch.zeros(3, 5, 2), torch.ones(3, 5, 2))
    >>> mu.shape
    torch.Size([3, 4])
    """

    def __init__(self, n_channels: int, hidden_dim: int, latent_dim: int):
        super().__init__(n_channels, hidden_dim, latent_dim, extra_inputs=1)

    def forward(self, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
        batch = values.shape[0]
        h = values.new_zeros(batch, self.hidden_dim)
        # Gap from each series' previously read (later) observation; 0 for its last one, so
        # nothing depends on how far the grid runs past it.
        last_seen = torch.full((batch, 1), float("inf"), dtype=times.dtype,
                               device=times.device)
        for i in range(len(times) - 1, -1, -1):
            m = mask[:, i]
            gap = torch.where(torch.isinf(last_seen), 0.0, last_seen - times[i])
            h = self._update(h, values[:, i], m, gap)
            observed = m.sum(-1, keepdim=True) > 0
            last_seen = torch.where(observed, times[i].expand_as(last_seen), last_seen)
        # z0 lives at times[0], the series' first row: one last update, without a value,
        # reads the gap from its earliest read observation back to it (non-zero only when
        # its first rows hold no value).
        lead = torch.where(torch.isinf(last_seen), 0.0, last_seen - times[0])
        nothing = values.new_zeros(batch, 2 * values.shape[-1])
        h = self.cell(torch.cat([nothing, lead.to(h)], dim=-1), h)
        return self._posterior(h)


class _GapScaled(nn.Module):
    """dh/ds = Δt f(h) on s in [0, 1]: one solve carries each row across its own gap Δt
    (exact for autonomous f: h(s) is the state at time ``t + s Δt``)."""

    def __init__(self, dynamics: nn.Module, gap: torch.Tensor):
        super().__init__()
        self.dynamics = dynamics
        self.gap = gap

    def forward(self, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.gap * self.dynamics(s, h)


class ODERNNEncoder(_BackwardEncoder):
    """ODE-RNN: the hidden state follows an ODE between observations and takes a GRU update
    at each one, run from the last observation back to ``times[0]`` (Rubanova et al. 2019).

    Each series' state crosses the gap between two of its own observations in one solve,
    whatever other series' times lie in between, so its encoding depends on its own
    observations only (not on the batch it shares a grid with).

    Parameters
    ----------
    n_channels, hidden_dim, latent_dim : int
    solver : SolverOptions
        Options of the hidden-state solves (one per gap between a series' observations).
    """

    def __init__(self, n_channels: int, hidden_dim: int, latent_dim: int,
                 solver: SolverOptions):
        super().__init__(n_channels, hidden_dim, latent_dim, extra_inputs=0)
        self.dynamics = CountedDynamics(MLPDynamics(hidden_dim, (hidden_dim,)))
        self.solver = solver

    def _move(self, h: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """The state of each row ``gap[row]`` later (negative: earlier); the dynamics are
        autonomous, so where a gap starts does not matter."""
        if self.solver.method == "euler" and self.solver.step_size is None:
            # What odeint computes for one Euler step, without its per-call set-up, which
            # costs more than the step itself on CPU and dominates long union grids.
            return h + gap * self.dynamics(gap.new_zeros(()), h)
        span = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        return odeint_checked(_GapScaled(self.dynamics, gap), h, span, self.solver)[-1]

    def forward(self, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
        batch = values.shape[0]
        h = values.new_zeros(batch, self.hidden_dim)
        # Time of each series' previously read (later) observation; NaN until its first, so
        # a state starts moving at the series' last observation, not at the end of the grid.
        last_seen = torch.full((batch, 1), float("nan"), dtype=times.dtype,
                               device=times.device)
        for i in range(len(times) - 1, -1, -1):
            observed = mask[:, i].sum(-1, keepdim=True) > 0
            gap = torch.where(observed, times[i] - last_seen, 0.0).nan_to_num(0.0).to(h)
            h = self._update(self._move(h, gap), values[:, i], mask[:, i])
            last_seen = torch.where(observed, times[i].expand_as(last_seen), last_seen)
        # z0 lives at times[0], each series' first row: usually its first observation too.
        gap = (times[0] - last_seen).nan_to_num(0.0).to(h)
        return self._posterior(self._move(h, gap) if bool((gap != 0).any()) else h)


def build_encoder(kind: str, n_channels: int, hidden_dim: int, latent_dim: int,
                  solver: SolverOptions) -> _BackwardEncoder:
    """``"rnn"`` -> :class:`GRUDeltaTEncoder`, ``"ode-rnn"`` -> :class:`ODERNNEncoder`."""
    if kind == "rnn":
        return GRUDeltaTEncoder(n_channels, hidden_dim, latent_dim)
    if kind == "ode-rnn":
        return ODERNNEncoder(n_channels, hidden_dim, latent_dim, solver)
    raise ValueError(f"encoder must be 'rnn' or 'ode-rnn'; got {kind!r}.")
