"""Known inputs of a latent ODE: covariates held between changes, and doses.

Future covariates (a treatment, an infusion rate) hold from each change until the next and
drive the latent dynamics, dz/dt = f(z, u(t)) (:class:`ControlledDynamics`). The state that is
solved carries each series' clock (its time since its first row) as its last component, like
:class:`~latode.nn.dynamics.ClockedDynamics`, so that one batched solve in offsets from each
series' own origin (forwards and backwards, see :mod:`latode._numerics.paths`) still reads
each series' inputs at its own times.

Impulses (doses) act through pairs of first-order compartments with learned rates
``r_i < r_j`` (:class:`DoseResponse`): a dose ``a_k`` at ``t_k`` fills the faster one, which
empties into the slower one, whose content is ``a_k r_j / (r_j - r_i) (exp(-r_i s) -
exp(-r_j s))`` at ``s = t - t_k >= 0`` (Bateman's function; doses add up). That is a drug's
concentration in the one-compartment model with first-order absorption, up to scale. The
latent ODE adds these curves to its decoded means with amplitudes that each series' latent
state sets: a linear response to doses, as in pharmacokinetics, whose shape is solved in
closed form. A forecast under twice the doses thus rises twice as much, and the solver never
has to resolve a dose's fast rise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from latode.nn.dynamics import mlp

__all__ = ["ControlSchedule", "DoseResponse", "ControlledDynamics", "held_inputs",
           "initial_rates", "MIN_RATE_RATIO"]

#: Least factor between the rates of consecutive compartments.
MIN_RATE_RATIO = 1.5


@dataclass
class ControlSchedule:
    """Each series' input changes (see :func:`latode.data.covariates.control_rows`).

    Attributes
    ----------
    times : Tensor, shape (batch, K)
        Times of the changes on the series' clock (padding: amounts and jumps of 0).
    steps : Tensor, shape (batch, K, n_future)
        Jumps of the piecewise-constant inputs.
    impulses : Tensor, shape (batch, K, n_impulse)
        Amounts given.
    """

    times: torch.Tensor
    steps: torch.Tensor
    impulses: torch.Tensor

    def of_series(self, series: torch.Tensor) -> ControlSchedule:
        """The schedules of the given batch positions (one row each, repeats allowed)."""
        return ControlSchedule(self.times[series], self.steps[series], self.impulses[series])


def held_inputs(clock: torch.Tensor, schedule: ControlSchedule) -> torch.Tensor:
    """The future covariates' held values at ``clock`` (..., batch): shape
    (..., batch, n_future); 0 before a series' first change (the training mean)."""
    given = (clock.unsqueeze(-1) >= schedule.times).to(clock)  # (..., batch, K)
    return torch.einsum("...bk,bkc->...bc", given, schedule.steps)


class DoseResponse(nn.Module):
    """The impulses' compartment curves at each series' clock (see the module docstring).

    Parameters
    ----------
    n_impulse : int
    rates : sequence of float
        Initial emptying rates of the compartments (per model time unit), increasing by a
        factor above :data:`MIN_RATE_RATIO` from one to the next; they are learned, and stay
        in that order.

    Examples
    --------
    A dose of 2 at t=1 seen at t=2 through compartments of rates 1 and 3:

    >>> response = DoseResponse(1, rates=[1.0, 3.0])
    >>> schedule = ControlSchedule(torch.tensor([[1.0]]), torch.zeros(1, 1, 0),
    ...                            torch.tensor([[[2.0]]]))
    >>> round(float(response(torch.tensor([[2.0]]), schedule)), 4)  # 2 * 1.5 (e^-1 - e^-3)
    0.9543
    """

    def __init__(self, n_impulse: int, rates: Sequence[float] = (1.0, 10.0, 100.0)):
        super().__init__()
        self.n_impulse = n_impulse
        self.log_rates = nn.Parameter(torch.zeros(len(rates)))
        self.set_rates(rates)

    def set_rates(self, rates: Sequence[float]) -> None:
        """Set the compartments' rates (increasing, each above :data:`MIN_RATE_RATIO` times
        the one before)."""
        rates = torch.as_tensor(list(rates), dtype=torch.float64)
        ratios = rates[1:] / rates[:-1]
        if (ratios <= MIN_RATE_RATIO).any():
            raise ValueError(f"Compartment rates must grow by more than {MIN_RATE_RATIO}x from "
                             f"one to the next; got {rates.tolist()}.")
        with torch.no_grad():
            self.log_rates.copy_(torch.cat([rates[:1].log(),
                                            (ratios - MIN_RATE_RATIO).log()]).to(self.log_rates))

    def rates(self) -> torch.Tensor:
        """The current rates, increasing. Each is the one before times ``MIN_RATE_RATIO``
        plus a positive learned amount, so that no two compartments merge (the pair curves
        divide by their rates' difference)."""
        steps = MIN_RATE_RATIO + self.log_rates[1:].exp()
        return self.log_rates[:1].exp() * torch.cat([steps.new_ones(1), steps.cumprod(0)])

    @property
    def n_features(self) -> int:
        """Curves: one per impulse column and pair of compartments."""
        n = len(self.log_rates)
        return self.n_impulse * n * (n - 1) // 2

    def forward(self, clock: torch.Tensor, schedule: ControlSchedule) -> torch.Tensor:
        """The curves at ``clock`` (..., batch): shape (..., batch, n_features)."""
        since = clock.unsqueeze(-1) - schedule.times  # (..., batch, K)
        given = (since >= 0).to(clock)
        rates = self.rates()
        # Clamped before exp: times before a dose would overflow, and a where() after it
        # would still pass NaN gradients through.
        decay = torch.exp(-rates * since.clamp(min=0).unsqueeze(-1))  # (..., batch, K, rates)
        slow, fast = torch.triu_indices(len(rates), len(rates), 1, device=rates.device)
        scale = rates[fast] / (rates[fast] - rates[slow])
        curves = (decay[..., slow] - decay[..., fast]) * scale * given.unsqueeze(-1)
        return torch.einsum("...bkr,bkc->...bcr", curves, schedule.impulses).flatten(-2)


class ControlledDynamics(nn.Module):
    """d[z, c]/dt = [MLP([z, u(c)] (+ c)), 1]: latent dynamics that follow held inputs.

    Parameters
    ----------
    dim : int
        Size of z (the state has the clock ``c`` appended).
    hidden : sequence of int
    n_future : int
        Held inputs ``u`` (:func:`held_inputs`).
    read_clock : bool
        Feed the clock itself to the network too (``clock=True``: dynamics that know age).

    The schedule of the batch being solved is set with :meth:`drive`.
    """

    def __init__(self, dim: int, hidden: Sequence[int], n_future: int,
                 read_clock: bool = False):
        super().__init__()
        self.read_clock = read_clock
        self.net = mlp(dim + n_future + int(read_clock), hidden, dim)
        self.schedule: ControlSchedule | None = None

    def drive(self, schedule: ControlSchedule) -> None:
        """Solve under ``schedule`` from now on. It stays set after the solve, because the
        adjoint's backward pass solves again (under the same inputs) when the loss is
        differentiated, after the forward solve has returned."""
        self.schedule = schedule

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if self.schedule is None:
            raise RuntimeError("ControlledDynamics needs its inputs: call drive(schedule) "
                               "before solving.")
        z, clock = state[..., :-1], state[..., -1]
        inputs = [z, held_inputs(clock, self.schedule)]
        if self.read_clock:
            inputs.append(state[..., -1:])
        return torch.cat([self.net(torch.cat(inputs, dim=-1)),
                          torch.ones_like(state[..., -1:])], dim=-1)


def initial_rates(spacing: float, n_rates: int = 3) -> list[float]:
    """Compartment rates spread over two decades around ``1 / spacing`` (the typical time
    between doses or observations, in model units), so that fast and slow responses both
    have a compartment to start from.

    Examples
    --------
    >>> [round(r, 3) for r in initial_rates(0.5)]
    [0.2, 2.0, 20.0]
    """
    centre = 1.0 / max(spacing, 1e-6)
    return [centre * 10.0 ** (k - (n_rates - 1) / 2) for k in range(n_rates)]

