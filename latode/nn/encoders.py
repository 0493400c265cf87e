"""Recognition networks q(z | context) at each series' forecast origin.

Both encoders take a union-grid batch — ``times`` (grid,), ``values`` and ``mask``
(batch, grid, channels) — read each series' own observations forward in time, and return
the mean and log-variance of the latent state at the series' **last read observation** (its
forecast origin), with that origin's grid time. The forecast then starts from the state where
the context ends, as in the ODE-RNN and GRU-ODE-Bayes (Rubanova et al. 2019; De Brouwer et
al. 2019), rather than from a state at the first row that must carry the whole history.

A series steps only through its own observations (gathered to the front with
:class:`~latode.nn._sequences.ObservedSequences`), so the cost follows the longest series of a
batch, not the number of distinct times in it, and grid times of other series change nothing.
Values enter only through ``values * mask`` together with the mask itself (Rubanova et al.
2019, section 3): unobserved entries change nothing, and grid times after a series' last read
observation (a future hidden from the encoder in training) leave its encoding unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode.nn._sequences import ObservedSequences
from latode.nn.dynamics import MLPDynamics, mlp

__all__ = ["GRUDeltaTEncoder", "ODERNNEncoder", "build_encoder"]


class _ForwardEncoder(nn.Module):
    """Shared parts: a head from the final hidden state (and any extra per-series inputs,
    such as the context's levels) to (mu, logvar)."""

    def __init__(self, hidden_dim: int, latent_dim: int, extra_inputs: int = 0):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.extra_inputs = extra_inputs
        self.head = mlp(hidden_dim + extra_inputs, (hidden_dim,), 2 * latent_dim)

    def _posterior(self, h: torch.Tensor, extra: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.extra_inputs:
            h = torch.cat([h, extra], dim=-1)
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 5.0)

    def encode(self, sequences: ObservedSequences) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def set_solver(self, solver: SolverOptions) -> None:
        """Set the options of the encoder's solves from now on.

        Parameters
        ----------
        solver : SolverOptions
            Ignored here: an encoder that solves nothing has no options to set (the latent
            ODE passes its encoder options whichever encoder it holds).
        """

    def forward(self, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                extra: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(z) at each series' last read observation.

        Parameters
        ----------
        times : Tensor, shape (grid,)
        values, mask : Tensor, shape (batch, grid, channels)
        extra : Tensor or None, shape (batch, extra_inputs)
            Per-series inputs of the head.

        Returns
        -------
        mu, logvar : Tensor, shape (batch, latent_dim)
        origin : Tensor, shape (batch,)
            Grid time of the state (each series' last read observation).
        """
        sequences = ObservedSequences.from_grid(times, values, mask)
        mu, logvar = self._posterior(self.encode(sequences), extra)
        return mu, logvar, sequences.last_time()


class GRUDeltaTEncoder(_ForwardEncoder):
    """A GRU over each series' observations in time order, with the time gap since the
    previous observation as an input (inputs ``[x * m, m, Δt]``; torch's fused loop).

    Parameters
    ----------
    n_channels, hidden_dim, latent_dim : int
    extra_inputs : int
        Size of the per-series inputs of the head.

    Examples
    --------
    >>> enc = GRUDeltaTEncoder(2, 8, 4)
    >>> mu, logvar, origin = enc(torch.linspace(0, 1, 5), torch.zeros(3, 5, 2),
    ...                          torch.ones(3, 5, 2))
    >>> mu.shape, origin.tolist()
    (torch.Size([3, 4]), [1.0, 1.0, 1.0])
    """

    def __init__(self, n_channels: int, hidden_dim: int, latent_dim: int,
                 extra_inputs: int = 0):
        super().__init__(hidden_dim, latent_dim, extra_inputs)
        self.rnn = nn.GRU(2 * n_channels + 1, hidden_dim, batch_first=True)

    def encode(self, sequences: ObservedSequences) -> torch.Tensor:
        s = sequences
        if s.values.shape[1] == 0:
            return s.values.new_zeros(s.values.shape[0], self.hidden_dim)
        states, _ = self.rnn(s.gru_inputs())
        return s.last(states)


class _GapScaled(nn.Module):
    """dh/ds = Δt f(h) on s in [0, 1]: one solve carries each row across its own gap Δt
    (exact for autonomous f: h(s) is the state at time ``t + s Δt``)."""

    def __init__(self, dynamics: nn.Module, gap: torch.Tensor):
        super().__init__()
        self.dynamics = dynamics
        self.gap = gap

    def forward(self, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.gap * self.dynamics(s, h)


class ODERNNEncoder(_ForwardEncoder):
    """ODE-RNN: the hidden state follows an ODE across each gap between a series' own
    observations and takes a GRU update at each one (Rubanova et al. 2019).

    Parameters
    ----------
    n_channels, hidden_dim, latent_dim : int
    solver : SolverOptions
        Options of the hidden-state solves (one per step, each series across its own gap).
    extra_inputs : int
        Size of the per-series inputs of the head.
    """

    def __init__(self, n_channels: int, hidden_dim: int, latent_dim: int,
                 solver: SolverOptions, extra_inputs: int = 0):
        super().__init__(hidden_dim, latent_dim, extra_inputs)
        self.cell = nn.GRUCell(2 * n_channels, hidden_dim)
        self.dynamics = CountedDynamics(MLPDynamics(hidden_dim, (hidden_dim,)))
        self.solver = solver

    def set_solver(self, solver: SolverOptions) -> None:
        """Set the options of the hidden-state solves from now on.

        Parameters
        ----------
        solver : SolverOptions
            Replaces the options given at construction; the weights are untouched.
        """
        self.solver = solver

    def _move(self, h: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """The state of each row ``gap[row]`` later; the dynamics are autonomous, so where a
        gap starts does not matter."""
        if self.solver.method == "euler" and self.solver.step_size is None:
            # What odeint computes for one Euler step, without its per-call set-up, which
            # costs more than the step itself on CPU.
            return h + gap * self.dynamics(gap.new_zeros(()), h)
        span = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        return odeint_checked(_GapScaled(self.dynamics, gap), h, span, self.solver)[-1]

    def encode(self, sequences: ObservedSequences) -> torch.Tensor:
        s = sequences
        h = s.values.new_zeros(s.values.shape[0], self.hidden_dim)
        for k in range(s.values.shape[1]):
            inside = (k < s.lengths).unsqueeze(-1).to(h)
            gap = s.gaps[:, k:k + 1]
            moved = self._move(h, gap) if k else h
            x, m = s.values[:, k], s.mask[:, k]
            h = inside * self.cell(torch.cat([x * m, m], dim=-1), moved) + (1 - inside) * h
        return h


def build_encoder(kind: str, n_channels: int, hidden_dim: int, latent_dim: int,
                  solver: SolverOptions, extra_inputs: int = 0) -> _ForwardEncoder:
    """``"rnn"`` -> :class:`GRUDeltaTEncoder`, ``"ode-rnn"`` -> :class:`ODERNNEncoder`."""
    if kind == "rnn":
        return GRUDeltaTEncoder(n_channels, hidden_dim, latent_dim, extra_inputs)
    if kind == "ode-rnn":
        return ODERNNEncoder(n_channels, hidden_dim, latent_dim, solver, extra_inputs)
    raise ValueError(f"encoder must be 'rnn' or 'ode-rnn'; got {kind!r}.")
