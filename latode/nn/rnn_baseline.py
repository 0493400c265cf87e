"""The GRU-Δt baseline: reads observations forward in time, predicts from the last state.

At every observation the GRU takes ``[x * m, m, Δt]``; a head maps ``[h, τ - t_last]`` to each
channel's mean at any later time τ, so one state serves every horizon (a "decoder from the
last state", as the RNN baselines of Chen et al. 2018 and Rubanova et al. 2019).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latode.nn.dynamics import mlp
from latode.nn.likelihoods import masked_gaussian_log_likelihood

__all__ = ["GRUForecastNet"]


class GRUForecastNet(nn.Module):
    """GRU-Δt encoder with a gap-conditioned prediction head.

    Parameters
    ----------
    n_channels : int
    hidden_dim : int

    Examples
    --------
    >>> net = GRUForecastNet(2, 8)
    >>> t = torch.linspace(0, 1, 4); x = torch.zeros(3, 4, 2); m = torch.ones(3, 4, 2)
    >>> net.predict_mean(t, x, m, torch.tensor([0.5, 2.0])).shape
    torch.Size([3, 2, 2])
    """

    def __init__(self, n_channels: int, hidden_dim: int = 32):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(2 * n_channels + 1, hidden_dim)
        self.head = mlp(hidden_dim + 1, (hidden_dim,), n_channels)
        self.log_std = nn.Parameter(torch.full((n_channels,), math.log(0.1)))

    def observation_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(min=math.log(1e-3))

    def states(self, times, values, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run over the grid; returns one-step predictions (batch, T, channels), the state
        after each grid point (batch, T, hidden) and the last observed time then (batch, T)."""
        batch = values.shape[0]
        h = values.new_zeros(batch, self.hidden_dim)
        last_seen = values.new_full((batch, 1), float("nan"))
        preds, hs, seen = [], [], []
        for i in range(len(times)):
            m = mask[:, i]
            observed = m.sum(-1, keepdim=True) > 0
            gap = torch.nan_to_num(times[i] - last_seen, nan=0.0)
            preds.append(self.head(torch.cat([h, gap], dim=-1)))
            h_new = self.cell(torch.cat([values[:, i] * m, m, gap], dim=-1), h)
            h = torch.where(observed, h_new, h)
            last_seen = torch.where(observed, times[i].expand_as(last_seen), last_seen)
            hs.append(h)
            seen.append(last_seen[:, 0])
        return torch.stack(preds, 1), torch.stack(hs, 1), torch.stack(seen, 1)

    def log_likelihood(self, times, values, mask) -> torch.Tensor:
        """One-step-ahead Gaussian log-likelihood of the observed entries, per series."""
        preds, _, _ = self.states(times, values, mask)
        return masked_gaussian_log_likelihood(values, preds, self.observation_log_std(), mask)

    def predict_mean(self, times, values, mask, targets: torch.Tensor) -> torch.Tensor:
        """Channel means at ``targets`` (T',) from observations strictly before each target.

        Returns
        -------
        Tensor, shape (batch, T', channels)
        """
        _, hs, seen = self.states(times, values, mask)
        index = torch.searchsorted(times.contiguous(), targets.contiguous(), right=False) - 1
        before_all = index < 0
        index = index.clamp(min=0)
        h = hs[:, index]
        last = seen[:, index]
        h = torch.where(before_all[None, :, None], torch.zeros_like(h), h)
        gap = torch.where(before_all[None, :] | torch.isnan(last), torch.zeros_like(last),
                          targets[None, :] - last)
        return self.head(torch.cat([h, gap.unsqueeze(-1)], dim=-1))
