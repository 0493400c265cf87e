"""Vector fields f(t, z) for latent ODEs and ODE-RNN encoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ClockedDynamics", "MLPDynamics", "mlp"]


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: type[nn.Module] = nn.Tanh,
        zero_last: bool = False) -> nn.Sequential:
    """A multilayer perceptron ``n_in -> hidden... -> n_out``.

    ``zero_last`` starts the last layer at zero, so an ODE vector field starts as the identity
    flow (the solver takes few steps at the first epochs).
    """
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    last = nn.Linear(width, n_out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class MLPDynamics(nn.Module):
    """dz/dt = MLP(z) (or MLP([z, t]) when ``time_dependent``).

    Parameters
    ----------
    dim : int
        State size.
    hidden : sequence of int
        Hidden widths.
    time_dependent : bool
        Feed t to the network (non-autonomous dynamics).

    Examples
    --------
    >>> f = MLPDynamics(3, (16,))
    >>> f(torch.tensor(0.0), torch.zeros(5, 3)).shape
    torch.Size([5, 3])
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), time_dependent: bool = False):
        super().__init__()
        self.time_dependent = time_dependent
        self.net = mlp(dim + int(time_dependent), hidden, dim)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.time_dependent:
            z = torch.cat([z, t.expand(z.shape[:-1] + (1,)).to(z)], dim=-1)
        return self.net(z)


class ClockedDynamics(nn.Module):
    """d[z, c]/dt = [MLP([z, c]), 1]: dynamics that know how long the series has run.

    The last state component is a clock ``c`` (time since the series' start) that every solve
    carries along exactly, so the vector field can depend on a series' age (growth that slows,
    a season that ends, a stay's first hours) while each series still starts its solve at its
    own origin.

    Parameters
    ----------
    dim : int
        Size of z (the state is ``dim + 1`` with the clock).
    hidden : sequence of int

    Examples
    --------
    >>> f = ClockedDynamics(3, (16,))
    >>> f(torch.tensor(0.0), torch.zeros(5, 4))[:, -1].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.net = mlp(dim + 1, hidden, dim)

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(state), torch.ones_like(state[..., -1:])], dim=-1)
