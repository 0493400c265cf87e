"""Each series' own observations out of a union grid, for recurrent encoders.

A union-grid batch holds every series on the union of the batch's timestamps, so a series is
observed at only some grid points. Stepping a recurrent cell over the grid costs an iteration
per grid point; instead :class:`ObservedSequences` gathers each series' observed grid points
to the front, in time order, so that ``torch.nn.GRU`` steps them in its fused loop and a
Python loop steps only as often as the longest series has observations. Entries past a
series' length are padding: their outputs are computed and must be ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ObservedSequences", "observed_first"]


def observed_first(observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid positions with each series' observed points first, and how many there are.

    Parameters
    ----------
    observed : Tensor of bool, shape (batch, grid)

    Returns
    -------
    order : Tensor of int64, shape (batch, grid)
        ``order[b, :lengths[b]]`` are the observed grid positions of series ``b`` in time
        order; the rest are its unobserved positions.
    lengths : Tensor of int64, shape (batch,)

    Examples
    --------
    >>> order, lengths = observed_first(torch.tensor([[True, False, True]]))
    >>> order[0, :2].tolist(), lengths.tolist()
    ([0, 2], [2])
    """
    grid = observed.shape[-1]
    position = torch.arange(grid, device=observed.device).expand_as(observed)
    # Observed points sort before unobserved ones; among them time decides.
    key = torch.where(observed, position, grid + position)
    order = torch.argsort(key, dim=-1)
    return order, observed.sum(-1)


@dataclass
class ObservedSequences:
    """Each series' observed grid points (any channel) in time order, padded at the end.

    Attributes
    ----------
    values, mask : Tensor, shape (batch, longest, channels)
        Zero at padding.
    times : Tensor, shape (batch, longest)
        Grid times of the observations (padding repeats some other grid time).
    gaps : Tensor, shape (batch, longest)
        Time since the series' previous observation (0 for its first and for padding).
    lengths : Tensor of int64, shape (batch,)

    Examples
    --------
    >>> seq = ObservedSequences.from_grid(torch.tensor([0.0, 1.0, 3.0]), torch.ones(2, 3, 1),
    ...                                   torch.tensor([[[1.0], [0.0], [1.0]], [[0.0]] * 3]))
    >>> seq.lengths.tolist(), seq.gaps[0].tolist(), seq.last_time().tolist()
    ([2, 0], [0.0, 3.0], [3.0, 0.0])
    """

    values: torch.Tensor
    mask: torch.Tensor
    times: torch.Tensor
    gaps: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def from_grid(cls, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
                  ) -> ObservedSequences:
        """Gather out of a union grid: ``times`` (grid,), ``values`` and ``mask``
        (batch, grid, channels)."""
        order, lengths = observed_first(mask.sum(-1) > 0)
        longest = int(lengths.max()) if lengths.numel() else 0
        order = order[:, :longest]
        index = order.unsqueeze(-1).expand(-1, -1, values.shape[-1])
        inside = (torch.arange(longest, device=times.device) < lengths.unsqueeze(-1))
        t = times[order]
        gaps = torch.cat([torch.zeros_like(t[:, :1]), t[:, 1:] - t[:, :-1]], dim=1)
        return cls(values=values.gather(1, index) * inside.unsqueeze(-1),
                   mask=mask.gather(1, index) * inside.unsqueeze(-1),
                   times=t, gaps=(gaps * inside).to(values), lengths=lengths)

    def gru_inputs(self) -> torch.Tensor:
        """``[x * m, m, Δt]`` at each step, shape (batch, longest, 2 * channels + 1): what a
        GRU with time gaps reads."""
        return torch.cat([self.values * self.mask, self.mask, self.gaps.unsqueeze(-1)], dim=-1)

    def last(self, states: torch.Tensor) -> torch.Tensor:
        """Each series' entry at its last observation out of per-step ``states``
        (batch, longest, ...); zeros for a series without one."""
        if states.shape[1] == 0:
            return states.new_zeros(states.shape[:1] + states.shape[2:])
        index = (self.lengths - 1).clamp(min=0).view((-1, 1) + (1,) * (states.dim() - 2))
        picked = states.gather(1, index.expand((-1, 1) + states.shape[2:])).squeeze(1)
        seen = (self.lengths > 0).view((-1,) + (1,) * (picked.dim() - 1))
        return picked * seen.to(picked)

    def last_time(self) -> torch.Tensor:
        """Grid time of each series' last observation, shape (batch,); 0 without one."""
        return self.last(self.times)
