"""Planar normalizing flow (Rezende & Mohamed 2015), the discrete baseline of Chen et al. 2018.

Each layer maps ``y = z + û tanh(wᵀz + b)`` with log-determinant
``log(1 + tanh'(wᵀz + b) ûᵀw)``. The raw ``u`` is projected to ``û = u + (m(wᵀu) - wᵀu)
w / ‖w‖²`` with ``m(a) = -1 + δ + softplus(a + c)``, so ``ûᵀw ≥ -1 + δ`` and every layer is invertible
with ``log det ≥ log δ`` even where softplus underflows (δ = 1e-4). The shift
``c = log(exp(1 - δ) - 1)`` makes m(0) = 0, so a layer with small ``u, w`` starts near the
identity; Rezende & Mohamed's m(0) = -0.31 would shrink every layer by 31% along w at
initialisation.

Here the layers run in the normalising direction, data x → base z ~ N(0, I), so the density
of data is exact and cheap: ``log p(x) = log N(z) + Σ_k log|det J_k|``. Sampling inverts each
layer: along w the map reduces to the strictly increasing scalar equation
``wᵀy = α + ûᵀw tanh(α + b)`` for α = wᵀz, whose root lies within ``|ûᵀw|`` of ``wᵀy`` and
is found by bisection.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import softplus

from latode.nn.cnf import standard_normal_log_prob

__all__ = ["PlanarFlow"]

_FLOOR = 1e-4  # δ: the smallest 1 + ûᵀw, so no layer is numerically singular
_SHIFT = math.log(math.expm1(1.0 - _FLOOR))  # softplus(_SHIFT) = 1 - δ, so m(0) = 0
_BISECTION_STEPS = 60  # halves a bracket of width 2|ûᵀw| to below float64 resolution


class PlanarFlow(nn.Module):
    """A stack of ``n_layers`` planar layers on R^d with a standard normal base.

    Parameters
    ----------
    dim : int
        Data dimension d.
    n_layers : int
        Number of layers K; the flow has K (2d + 1) parameters.
    init_scale : float
        Standard deviation of the initial u and w (small: the flow starts near the identity).

    Examples
    --------
    >>> flow = PlanarFlow(2, n_layers=4)
    >>> x = torch.randn(5, 2)
    >>> flow.log_prob(x).shape
    torch.Size([5])
    >>> torch.allclose(flow.inverse(flow.transform(x)[0]), x, atol=1e-5)
    True
    """

    def __init__(self, dim: int, n_layers: int = 8, init_scale: float = 0.1):
        super().__init__()
        self.dim = dim
        self.n_layers = n_layers
        self.u = nn.Parameter(init_scale * torch.randn(n_layers, dim))
        self.w = nn.Parameter(init_scale * torch.randn(n_layers, dim))
        self.b = nn.Parameter(torch.zeros(n_layers))

    def _constrained_u(self) -> tuple[torch.Tensor, torch.Tensor]:
        """û (K, d) and ûᵀw (K,), with ûᵀw ≥ -1 + δ for invertibility."""
        wu = (self.w * self.u).sum(-1)
        w_sq = self.w.pow(2).sum(-1).clamp_min(1e-12)
        m = -1.0 + _FLOOR + softplus(wu + _SHIFT)
        u_hat = self.u + ((m - wu) / w_sq)[:, None] * self.w
        return u_hat, (u_hat * self.w).sum(-1)

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Carry data to the base space.

        Parameters
        ----------
        x : Tensor, shape (n, d)

        Returns
        -------
        z : Tensor, shape (n, d)
        log_det : Tensor, shape (n,)
            log|det ∂z/∂x|.
        """
        u_hat, uw = self._constrained_u()
        z = x
        log_det = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        # unbind once: indexing w[k] in the loop would give every layer's backward a zero
        # gradient of all K layers to fill and add, K² work per step.
        layers = zip(self.w.unbind(0), self.b.unbind(0), u_hat.unbind(0), uw.unbind(0))
        for w, b, u_hat_k, uw_k in layers:
            activation = torch.tanh(z @ w + b)
            z = z + activation[:, None] * u_hat_k
            # 1 + (1 - tanh²) ûᵀw ≥ δ > 0 because ûᵀw ≥ -1 + δ.
            log_det = log_det + torch.log1p((1 - activation.pow(2)) * uw_k)
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per row, shape (n,), for x of shape (n, d)."""
        z, log_det = self.transform(x)
        return standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Data x with ``transform(x)[0] == z``, layer by layer from the last.

        Parameters
        ----------
        z : Tensor, shape (n, d)

        Returns
        -------
        Tensor, shape (n, d)
        """
        u_hat, uw = self._constrained_u()
        dtype = z.dtype
        # Bisection in float64: the root along w is then exact to float32 resolution.
        y = z.double()
        u_hat, uw, w, b = u_hat.double(), uw.double(), self.w.double(), self.b.double()
        for k in reversed(range(self.n_layers)):
            target = y @ w[k]
            low = target - uw[k].abs() - 1e-12
            high = target + uw[k].abs() + 1e-12
            for _ in range(_BISECTION_STEPS):
                mid = 0.5 * (low + high)
                above = mid + uw[k] * torch.tanh(mid + b[k]) > target
                high = torch.where(above, mid, high)
                low = torch.where(above, low, mid)
            alpha = 0.5 * (low + high)
            y = y - torch.tanh(alpha + b[k])[:, None] * u_hat[k]
        return y.to(dtype)
