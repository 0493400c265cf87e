"""Each series' own observations out of a union grid, for torch's fused recurrent layers.

A union-grid batch holds every series on the union of the batch's timestamps, so a series is
observed at only some grid points. Stepping a ``GRUCell`` over the grid in Python costs a
Python iteration per grid point; instead :func:`observed_first` moves each series' observed
grid points to the front (in time order or reversed) so that ``torch.nn.GRU`` can step them
in its fused loop. Entries past a series' length are padding: their outputs are computed and
must be ignored.
"""

from __future__ import annotations

import torch

__all__ = ["observed_first"]


def observed_first(observed: torch.Tensor, reverse: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid positions with each series' observed points first, and how many there are.

    Parameters
    ----------
    observed : Tensor of bool, shape (batch, grid)
    reverse : bool
        Order the observed points from the last to the first.

    Returns
    -------
    order : Tensor of int64, shape (batch, grid)
        ``order[b, :lengths[b]]`` are the observed grid positions of series ``b`` in time
        order (reversed with ``reverse``); the rest are its unobserved positions.
    lengths : Tensor of int64, shape (batch,)

    Examples
    --------
    >>> order, lengths = observed_first(torch.tensor([[True, False, True]]), reverse=True)
    >>> order[0, :2].tolist(), lengths.tolist()
    ([2, 0], [2])
    """
    grid = observed.shape[-1]
    position = torch.arange(grid, device=observed.device).expand_as(observed)
    # Observed points sort before unobserved ones; among them time (or reversed time) decides.
    key = torch.where(observed, position if not reverse else grid - 1 - position,
                      grid + position)
    order = torch.argsort(key, dim=-1)
    return order, observed.sum(-1)
