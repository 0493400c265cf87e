"""The divergence tr(∂f/∂z) of a vector field, exact or by Hutchinson's estimator, and the
squared Frobenius norm of the Jacobian that RNODE penalises, from the same derivatives.

A continuous normalizing flow needs, at every solver step, the trace of the Jacobian of its
vector field (Chen et al. 2018): for dz/dt = f(t, z), d log p(z(t))/dt = -tr(∂f/∂z).

* :func:`exact_divergence` takes one backward pass per dimension (row i of the Jacobian is the
  gradient of f_i), so it costs d vector-Jacobian products; the same rows give the exact
  squared Frobenius norm.
* :func:`hutchinson_divergence` (FFJORD, Grathwohl et al. 2019) takes a single
  vector-Jacobian product εᵀ∂f/∂z with noise ε of zero mean and identity covariance:
  E[εᵀ(∂f/∂z)ε] = tr(∂f/∂z) and E[‖εᵀ∂f/∂z‖²] = ‖∂f/∂z‖²_F (Finlay et al. 2020).

Both work row by row on a batch, so each row's Jacobian must depend on that row only (no
batch normalisation inside ``f``).
"""

from __future__ import annotations

import torch

__all__ = ["NOISE_KINDS", "exact_divergence", "hutchinson_divergence", "sample_noise"]

NOISE_KINDS = ("rademacher", "gaussian")


def exact_divergence(
    f: torch.Tensor, z: torch.Tensor, create_graph: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact tr(∂f/∂z) and ‖∂f/∂z‖²_F per row, from d backward passes.

    Parameters
    ----------
    f : Tensor, shape (n, d)
        The vector field evaluated at ``z``, still attached to the graph that made it.
    z : Tensor, shape (n, d)
        The state; must require gradients.
    create_graph : bool
        Keep the graph of the derivatives so the results can be differentiated again
        (training); ``False`` for evaluation.

    Returns
    -------
    trace, frobenius : Tensor, shape (n,)

    Examples
    --------
    >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> z = torch.randn(5, 2, requires_grad=True)
    >>> trace, frob = exact_divergence(z @ A.T, z)
    >>> trace.tolist(), frob[0].item()
    ([5.0, 5.0, 5.0, 5.0, 5.0], 30.0)
    """
    _check_pair(f, z)
    dim = z.shape[-1]
    trace = torch.zeros(z.shape[:-1], dtype=f.dtype, device=f.device)
    frobenius = torch.zeros_like(trace)
    for i in range(dim):
        # Rows are independent across the batch, so the gradient of the summed component i
        # is row i of every sample's Jacobian.
        row = torch.autograd.grad(
            f[..., i].sum(), z, create_graph=create_graph, retain_graph=True
        )[0]
        trace = trace + row[..., i]
        frobenius = frobenius + row.pow(2).sum(-1)
    return trace, frobenius


def hutchinson_divergence(
    f: torch.Tensor, z: torch.Tensor, noise: torch.Tensor, create_graph: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased estimates of tr(∂f/∂z) and ‖∂f/∂z‖²_F from one vector-Jacobian product.

    Parameters
    ----------
    f : Tensor, shape (n, d)
        The vector field evaluated at ``z``, attached to its graph.
    z : Tensor, shape (n, d)
        The state; must require gradients.
    noise : Tensor, shape (n, d)
        ε with E[ε] = 0 and E[εεᵀ] = I (see :func:`sample_noise`); keep it fixed during one
        ODE solve so the estimated dynamics are a smooth function of time.
    create_graph : bool
        Keep the graph for a later backward pass (training).

    Returns
    -------
    trace, frobenius : Tensor, shape (n,)
        εᵀ(∂f/∂z)ε and ‖εᵀ∂f/∂z‖².

    Examples
    --------
    >>> z = torch.randn(3, 2, requires_grad=True)
    >>> eps = torch.tensor([[1.0, 0.0]] * 3)  # a basis vector picks one diagonal entry
    >>> trace, _ = hutchinson_divergence(z * torch.tensor([2.0, 7.0]), z, eps)
    >>> trace.tolist()
    [2.0, 2.0, 2.0]
    """
    _check_pair(f, z)
    if noise.shape != z.shape:
        raise ValueError(
            f"The Hutchinson noise has shape {tuple(noise.shape)} but the state has shape "
            f"{tuple(z.shape)}; draw one noise vector per row with sample_noise(z.shape)."
        )
    vjp = torch.autograd.grad(f, z, noise, create_graph=create_graph, retain_graph=True)[0]
    return (vjp * noise).sum(-1), vjp.pow(2).sum(-1)


def sample_noise(
    shape: torch.Size | tuple[int, ...],
    kind: str = "rademacher",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise with zero mean and identity covariance for :func:`hutchinson_divergence`.

    Rademacher noise (±1 with equal probability) gives the estimator of least variance among
    such distributions (Hutchinson 1990); Gaussian noise is the other common choice.

    Examples
    --------
    >>> eps = sample_noise((4, 3), "rademacher", generator=torch.Generator().manual_seed(0))
    >>> sorted(set(eps.abs().flatten().tolist()))
    [1.0]
    """
    if kind == "gaussian":
        return torch.randn(shape, dtype=dtype, device=device, generator=generator)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, device=device, generator=generator)
        return (2 * bits - 1).to(dtype or torch.get_default_dtype())
    raise ValueError(f"Unknown noise kind {kind!r}; use one of {', '.join(NOISE_KINDS)}.")


def _check_pair(f: torch.Tensor, z: torch.Tensor) -> None:
    if f.shape != z.shape:
        raise ValueError(
            f"The vector field has shape {tuple(f.shape)} but the state has shape "
            f"{tuple(z.shape)}; a divergence needs f: R^d -> R^d evaluated row by row."
        )
    if not z.requires_grad:
        raise ValueError(
            "The state z does not require gradients, so tr(df/dz) cannot be computed; call "
            "z.requires_grad_(True) before evaluating f under torch.enable_grad()."
        )
