"""Known inputs of the latent dynamics: dz/dt = f(z, u(t)).

Future covariates are held piecewise constant from each change. Impulses (doses) enter
through pairs of first-order compartments with learned rates ``r_i < r_j``: a dose ``a_k`` at
``t_k`` fills the faster one, which empties into the slower one, whose content is
``a_k r_j / (r_j - r_i) (exp(-r_i s) - exp(-r_j s))`` at ``s = t - t_k >= 0`` (Bateman's
function; doses add up). That is a drug's concentration in the one-compartment model with
first-order absorption, up to scale, and it is continuous at the dose, so the solver steps
over doses instead of restarting at jumps. The learned dynamics on top turn these curves into
what doses do to the series, and a forecast can be rerun under other doses.

The state that is solved carries each series' clock (its time since its first row) as its
last component, like :class:`~latode.nn.dynamics.ClockedDynamics`, so that one batched solve
in offsets from each series' own origin (forwards and backwards, see
:mod:`latode._numerics.paths`) still reads each series' inputs at its own times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from latode.nn.dynamics import mlp

__all__ = ["ControlSchedule", "ControlSignal", "ControlledDynamics", "initial_rates",
           "MIN_RATE_RATIO"]

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


class ControlSignal(nn.Module):
    """u(t): the held inputs and the impulses' compartments at each series' clock.

    Parameters
    ----------
    n_future, n_impulse : int
    rates : sequence of float
        Initial emptying rates of the compartments each impulse fills (per model time unit),
        increasing by a factor above :data:`MIN_RATE_RATIO` from one to the next; they are
        learned, and stay in that order.

    Examples
    --------
    A dose of 2 at t=1 seen at t=2 through compartments of rates 1 and 3:

    >>> signal = ControlSignal(0, 1, rates=[1.0, 3.0])
    >>> schedule = ControlSchedule(torch.tensor([[1.0]]), torch.zeros(1, 1, 0),
    ...                            torch.tensor([[[2.0]]]))
    >>> round(float(signal(torch.tensor([[2.0]]), schedule)), 4)  # 2 * 1.5 (e^-1 - e^-3)
    0.9543
    """

    def __init__(self, n_future: int, n_impulse: int, rates: Sequence[float] = (1.0,)):
        super().__init__()
        self.n_future = n_future
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
        n = len(self.log_rates)
        return self.n_future + self.n_impulse * n * (n - 1) // 2

    def forward(self, clock: torch.Tensor, schedule: ControlSchedule) -> torch.Tensor:
        """Inputs at ``clock`` of shape (..., batch): shape (..., batch, n_features)."""
        since = clock.unsqueeze(-1) - schedule.times  # (..., batch, K)
        given = (since >= 0).to(clock)
        parts = []
        if self.n_future:
            parts.append(torch.einsum("...bk,bkc->...bc", given, schedule.steps))
        if self.n_impulse:
            # Clamped before exp: times before a dose would overflow, and a where() after it
            # would still pass NaN gradients through.
            rates = self.rates()
            decay = torch.exp(-rates * since.clamp(min=0).unsqueeze(-1))  # (..., b, K, rates)
            # Each pair of compartments, a fast one emptying into a slow one: zero at the dose,
            # a rise and a fall (Bateman's function), continuous in time, so that the solver
            # steps over a dose instead of shrinking its steps at a jump.
            slow, fast = torch.triu_indices(len(rates), len(rates), 1, device=rates.device)
            scale = rates[fast] / (rates[fast] - rates[slow])
            curves = (decay[..., slow] - decay[..., fast]) * scale * given.unsqueeze(-1)
            parts.append(torch.einsum("...bkr,bkc->...bcr", curves,
                                      schedule.impulses).flatten(-2))
        return torch.cat(parts, dim=-1)


class ControlledDynamics(nn.Module):
    """d[z, c]/dt = [MLP([z, u(c)] (+ c)), 1]: latent dynamics driven by known inputs.

    Parameters
    ----------
    dim : int
        Size of z (the state has the clock ``c`` appended).
    hidden : sequence of int
    signal : ControlSignal
    read_clock : bool
        Feed the clock itself to the network too (``clock=True``: dynamics that know age).

    The schedule of the batch being solved is set with :meth:`drive`.
    """

    def __init__(self, dim: int, hidden: Sequence[int], signal: ControlSignal,
                 read_clock: bool = False):
        super().__init__()
        self.signal = signal
        self.read_clock = read_clock
        self.net = mlp(dim + signal.n_features + int(read_clock), hidden, dim)
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
        inputs = [z, self.signal(clock, self.schedule)]
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

