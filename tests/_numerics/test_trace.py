"""Exact and Hutchinson divergences against Jacobians computed independently."""

import pytest
import torch
from torch import nn

from latode._numerics.trace import exact_divergence, hutchinson_divergence, sample_noise


def mlp_field(dim, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, dim))


def reference_jacobians(field, z):
    """Per-row Jacobians by torch.autograd.functional.jacobian, one row at a time."""
    return torch.stack([
        torch.autograd.functional.jacobian(lambda v: field(v[None])[0], row) for row in z
    ])


def test_exact_trace_and_frobenius_of_a_linear_map():
    A = torch.tensor([[0.5, -2.0, 1.0], [3.0, -1.5, 0.0], [0.2, 0.1, 4.0]])
    z = torch.randn(6, 3, requires_grad=True)
    trace, frob = exact_divergence(z @ A.T, z)
    torch.testing.assert_close(trace, torch.full((6,), 3.0))
    torch.testing.assert_close(frob, torch.full((6,), float(A.pow(2).sum())))


def test_exact_trace_matches_autograd_jacobian_on_a_nonlinear_field():
    field = mlp_field(4)
    z = torch.randn(5, 4, requires_grad=True)
    trace, frob = exact_divergence(field(z), z)
    jac = reference_jacobians(field, z.detach())
    torch.testing.assert_close(trace, jac.diagonal(dim1=-2, dim2=-1).sum(-1))
    torch.testing.assert_close(frob, jac.pow(2).sum((-2, -1)))


def test_exact_trace_is_differentiable_in_the_parameters():
    # d tr(A)/dA = I for f(z) = A z: the graph kept by create_graph must carry it.
    layer = nn.Linear(3, 3)
    z = torch.randn(2, 3, requires_grad=True)
    trace, _ = exact_divergence(layer(z), z, create_graph=True)
    trace.sum().backward()
    torch.testing.assert_close(layer.weight.grad, 2 * torch.eye(3))


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(kind):
    field = mlp_field(5, seed=1)
    z = torch.randn(1, 5)
    n_draws = 20000
    zs = z.expand(n_draws, 5).clone().requires_grad_(True)
    noise = sample_noise(zs.shape, kind, generator=torch.Generator().manual_seed(0))
    trace_est, frob_est = hutchinson_divergence(field(zs), zs, noise, create_graph=False)
    jac = reference_jacobians(field, z)[0]
    exact_trace, exact_frob = jac.trace(), jac.pow(2).sum()
    # Tolerance: 5 standard errors of the mean of the draws.
    for estimate, exact in ((trace_est, exact_trace), (frob_est, exact_frob)):
        stderr = estimate.std() / n_draws**0.5
        assert abs(estimate.mean() - exact) < 5 * stderr + 1e-6
    # Rademacher noise has the lower variance for the trace (no diagonal contribution).
    if kind == "rademacher":
        off_diag = jac - torch.diag(jac.diagonal())
        expected_var = (off_diag.pow(2).sum() + (off_diag * off_diag.T).sum())
        assert trace_est.var().item() == pytest.approx(expected_var.item(), rel=0.1)


def test_noise_has_identity_covariance():
    for kind in ("rademacher", "gaussian"):
        eps = sample_noise((50000, 3), kind, generator=torch.Generator().manual_seed(1))
        cov = eps.T @ eps / len(eps)
        torch.testing.assert_close(cov, torch.eye(3), atol=0.03, rtol=0)


def test_bad_inputs_are_explained():
    z = torch.randn(3, 2, requires_grad=True)
    with pytest.raises(ValueError, match="requires_grad"):
        exact_divergence(z.detach() * 2, z.detach())
    with pytest.raises(ValueError, match="shape"):
        exact_divergence(z[:, :1] * 2, z)
    with pytest.raises(ValueError, match="noise"):
        hutchinson_divergence(z * 2, z, torch.ones(3, 3))
    with pytest.raises(ValueError, match="rademacher"):
        sample_noise((2, 2), "uniform")
