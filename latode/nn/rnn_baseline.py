"""The GRU-Δt baseline: reads observations forward in time, predicts from the last state.

At every observation the GRU takes ``[x * m, m, Δt]``; a head maps ``[h, τ - t_last]`` to each
channel's mean at any later time τ, so one state serves every horizon (a "decoder from the
last state", as the RNN baselines of Chen et al. 2018 and Rubanova et al. 2019).

Covariates take the same roles as in the latent ODE: the GRU also reads the covariates of the
rows it steps through, and the head also reads the series' static features, the future
covariates held at τ and the doses' compartment curves at τ (:mod:`latode.nn.controls`), so
that the baseline knows what the latent ODE knows.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latode.nn._sequences import ObservedSequences
from latode.nn.controls import DoseResponse, held_inputs, initial_rates
from latode.nn.dynamics import mlp
from latode.nn.likelihoods import masked_gaussian_log_likelihood

__all__ = ["GRUForecastNet"]


class GRUForecastNet(nn.Module):
    """GRU-Δt encoder with a gap-conditioned prediction head.

    Parameters
    ----------
    n_channels : int
    hidden_dim : int
    n_inputs, n_static : int
        Covariate channels the GRU reads, and static features per series.
    controls : tuple (n_future, n_impulse, rates) or None
        Future covariates and impulses the head reads at each forecast time.

    Examples
    --------
    >>> net = GRUForecastNet(2, 8)
    >>> t = torch.linspace(0, 1, 4); x = torch.zeros(3, 4, 2); m = torch.ones(3, 4, 2)
    >>> net.predict_mean(t, x, m, torch.tensor([0.5, 2.0])).shape
    torch.Size([3, 2, 2])
    """

    def __init__(self, n_channels: int, hidden_dim: int = 32, n_inputs: int = 0,
                 n_static: int = 0, controls: tuple | None = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.n_channels = n_channels
        n_future, n_impulse, rates = controls or (0, 0, initial_rates(1.0))
        self.n_future = n_future
        self.dose_response = DoseResponse(n_impulse, rates) if n_impulse else None
        # Inputs [x * m, m, Δt] at each observation, x and m with the covariates.
        self.rnn = nn.GRU(2 * (n_channels + n_inputs) + 1, hidden_dim, batch_first=True)
        extra = n_static + n_future + (self.dose_response.n_features if n_impulse else 0)
        self.head = mlp(hidden_dim + 1 + extra, (hidden_dim,), n_channels)
        self.log_std = nn.Parameter(torch.full((n_channels,), math.log(0.1)))

    def observation_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(min=math.log(1e-3))

    def observation_std_at(self, batch, times: torch.Tensor) -> torch.Tensor:
        """Standard deviation of the observation noise of each series of ``batch`` (a union
        batch) at grid ``times`` (T,), shape (batch, T, channels): the same everywhere."""
        std = self.observation_log_std().exp()
        return std.expand(batch.values.shape[0], len(times), len(std))

    def _known(self, at: torch.Tensor, batch: int, covariates) -> torch.Tensor | None:
        """What the head knows at grid times ``at`` (T,) besides the state: static
        features, held future covariates and dose curves, shape (batch, T, extra)."""
        if covariates is None:
            return None
        parts = []
        clock = at.unsqueeze(-1).expand(-1, batch)  # (T, batch)
        if covariates.static is not None:
            parts.append(covariates.static.unsqueeze(1).expand(-1, len(at), -1))
        if self.n_future:
            parts.append(held_inputs(clock, covariates.controls).transpose(0, 1))
        if self.dose_response is not None:
            parts.append(self.dose_response(clock, covariates.controls).transpose(0, 1))
        return torch.cat(parts, dim=-1) if parts else None

    def _head(self, h: torch.Tensor, gap: torch.Tensor, known: torch.Tensor | None):
        inputs = [h, gap.unsqueeze(-1)] + ([] if known is None else [known])
        return self.head(torch.cat(inputs, dim=-1))

    @staticmethod
    def _read(values, mask, covariates):
        """Values and mask the GRU steps through: the targets and the covariates read."""
        if covariates is None or covariates.inputs is None:
            return values, mask
        return (torch.cat([values, covariates.inputs], -1),
                torch.cat([mask, covariates.inputs_mask], -1))

    def states(self, times, values, mask, covariates=None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run over the grid; returns one-step predictions (batch, T, channels), the state
        after each grid point (batch, T, hidden) and the last observed time then (batch, T).

        The GRU steps each series' own observations (torch's fused loop, not a Python loop
        over the grid); grid points are then mapped to the state after the observations up
        to them.
        """
        batch = values.shape[0]
        known = self._known(times, batch, covariates)
        values, mask = self._read(values, mask, covariates)
        observed = mask.sum(-1) > 0  # (batch, T)
        seq = ObservedSequences.from_grid(times, values, mask)
        if seq.values.shape[1]:
            out, _ = self.rnn(seq.gru_inputs())
        else:
            out = values.new_zeros(batch, 0, self.hidden_dim)
        t = seq.times  # (batch, longest): each series' observation times
        # Position 0: before any observation (zero state, no last time).
        out = torch.cat([out.new_zeros(batch, 1, self.hidden_dim), out], dim=1)
        t = torch.cat([t.new_full((batch, 1), float("nan")), t], dim=1)
        upto = observed.long().cumsum(1)  # observations at or before each grid point
        before = upto - observed.long()
        hidden = self.hidden_dim
        h_before = out.gather(1, before.unsqueeze(-1).expand(-1, -1, hidden))
        since = torch.nan_to_num(times - t.gather(1, before), nan=0.0)
        preds = self._head(h_before, since, known)
        hs = out.gather(1, upto.unsqueeze(-1).expand(-1, -1, hidden))
        return preds, hs, t.gather(1, upto)

    def log_likelihood(self, times, values, mask, read_mask=None, covariates=None
                       ) -> torch.Tensor:
        """Gaussian log-likelihood of the entries of ``mask``, per series, each predicted from
        the state after the entries of ``read_mask`` (default ``mask``) strictly before it:
        one step ahead where the series is read, from its last read state after that.
        ``covariates`` (a :class:`~latode.nn.latent_ode.Covariates`) as the GRU may read
        them."""
        preds, _, _ = self.states(times, values, mask if read_mask is None else read_mask,
                                  covariates)
        return masked_gaussian_log_likelihood(values, preds, self.observation_log_std(), mask)

    def predict_mean(self, times, values, mask, targets: torch.Tensor, covariates=None
                     ) -> torch.Tensor:
        """Channel means at ``targets`` (T',) from observations strictly before each target.

        Returns
        -------
        Tensor, shape (batch, T', channels)
        """
        _, hs, seen = self.states(times, values, mask, covariates)
        index = torch.searchsorted(times.contiguous(), targets.contiguous(), right=False) - 1
        before_all = index < 0
        index = index.clamp(min=0)
        h = hs[:, index]
        last = seen[:, index]
        h = torch.where(before_all[None, :, None], torch.zeros_like(h), h)
        gap = torch.where(before_all[None, :] | torch.isnan(last), torch.zeros_like(last),
                          targets[None, :] - last)
        return self._head(h, gap, self._known(targets, values.shape[0], covariates))
