"""CNF and planar flow modules against closed forms and independent Jacobians."""

import math

import pytest
import torch
from torch import nn

from latode._numerics import SolverOptions, count_nfe, reset_nfe
from latode.nn.cnf import ContinuousNormalizingFlow
from latode.nn.planar import PlanarFlow

TIGHT = SolverOptions(rtol=1e-9, atol=1e-10)
A = torch.tensor([[-0.3, 0.8], [-0.5, 0.4]], dtype=torch.float64)


class LinearField(nn.Module):
    """f(t, z) = A z, whose flow is z(t) = exp(At) z(0)."""

    def __init__(self, matrix):
        super().__init__()
        self.matrix = nn.Parameter(matrix.clone())

    def forward(self, t, z):
        return z @ self.matrix.T


def linear_flow(T=1.3):
    return ContinuousNormalizingFlow(2, field=LinearField(A), integration_time=T)


def random_flow(dim=2, seed=0):
    torch.manual_seed(seed)
    flow = ContinuousNormalizingFlow(dim, (16, 16), time_dependent=True).double()
    for p in flow.parameters():  # move off the identity start
        nn.init.normal_(p, std=0.5)
    return flow


def test_linear_flow_log_density_is_the_closed_form_gaussian():
    # x = exp(-AT) z with z ~ N(0, I) is Gaussian with covariance M^{-1} M^{-T}, M = exp(AT).
    T = 1.3
    x = torch.randn(7, 2, dtype=torch.float64)
    with torch.no_grad():
        log_prob, _, _ = linear_flow(T)(x, TIGHT, trace="exact")
    m_inv = torch.linalg.matrix_exp(-A * T)
    reference = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), covariance_matrix=m_inv @ m_inv.T
    ).log_prob(x)
    torch.testing.assert_close(log_prob, reference, rtol=1e-7, atol=1e-7)
    assert not log_prob.requires_grad  # evaluation under no_grad keeps no graph


def test_linear_flow_regularisers_are_the_closed_form_integrals():
    T = 1.3
    x = torch.randn(4, 2, dtype=torch.float64)
    _, kinetic, frobenius = linear_flow(T)(x, TIGHT, regularize=True)
    torch.testing.assert_close(frobenius, torch.full((4,), T * float(A.pow(2).sum()),
                                                     dtype=torch.float64))
    # ∫ ||A exp(At) x||² dt by the trapezoid rule on a fine grid.
    ts = torch.linspace(0, T, 4001, dtype=torch.float64)
    speeds = torch.stack([(x @ (A @ torch.linalg.matrix_exp(A * t)).T).pow(2).sum(-1)
                          for t in ts])
    torch.testing.assert_close(kinetic, torch.trapezoid(speeds, ts, dim=0), rtol=1e-6, atol=0)


def test_hutchinson_log_density_is_unbiased_through_the_solve():
    flow = random_flow()
    x = torch.randn(1, 2, dtype=torch.float64).expand(4000, 2).contiguous()
    options = SolverOptions(rtol=1e-7, atol=1e-8)
    with torch.no_grad():
        exact, _, _ = flow(x[:1], options, trace="exact")
        torch.manual_seed(3)
        estimate, _, _ = flow(x, options, trace="hutchinson", noise_kind="gaussian")
    stderr = estimate.std() / math.sqrt(len(estimate))
    assert estimate.std() > 1e-3  # the estimate really is noisy per draw
    assert abs(estimate.mean() - exact[0]) < 5 * stderr


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_adjoint_gradients_match_backpropagation(trace):
    x = torch.randn(6, 2, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        flow = random_flow(seed=1)
        options = SolverOptions(rtol=1e-8, atol=1e-9, adjoint=adjoint)
        torch.manual_seed(0)  # the same Hutchinson noise in both solves
        log_prob, kinetic, frobenius = flow(x, options, trace=trace, regularize=True)
        (-log_prob.mean() + 0.1 * kinetic.mean() + 0.1 * frobenius.mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in flow.parameters()]))
        if adjoint:
            assert count_nfe(flow) > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_sampling_inverts_the_forward_map_and_nfe_is_counted():
    flow = random_flow(seed=2)
    z = torch.randn(10, 2, dtype=torch.float64)
    reset_nfe(flow)
    with torch.no_grad():
        x = flow.sample(z, TIGHT)
        assert count_nfe(flow) > 0
        torch.testing.assert_close(flow.transform(x, TIGHT), z, rtol=1e-6, atol=1e-6)


def test_log_density_is_the_change_of_variables_of_the_flow_map():
    # Independent of the trace: log N(z(T)) + log|det ∂z(T)/∂x| with the Jacobian of the
    # whole nonlinear map taken by autograd through the solve.
    flow = random_flow(seed=4)
    x = torch.randn(3, 2, dtype=torch.float64)
    with torch.no_grad():
        log_prob, _, _ = flow(x, TIGHT)
    for row, value in zip(x, log_prob):
        z = flow.transform(row[None], TIGHT)[0]
        jacobian = torch.autograd.functional.jacobian(
            lambda v: flow.transform(v[None], TIGHT)[0], row)
        reference = -0.5 * z.pow(2).sum() - math.log(2 * math.pi) \
            + torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(value, reference.detach(), rtol=1e-6, atol=1e-6)


def test_identity_start_gives_the_base_density():
    flow = ContinuousNormalizingFlow(3, (8,))
    x = torch.randn(5, 3)
    with torch.no_grad():
        log_prob, _, _ = flow(x, SolverOptions())
    reference = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(log_prob, reference)


def test_planar_log_det_matches_the_jacobian_determinant():
    torch.manual_seed(0)
    flow = PlanarFlow(3, n_layers=5, init_scale=1.0).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    _, log_det = flow.transform(x)
    for row, value in zip(x, log_det):
        jac = torch.autograd.functional.jacobian(lambda v: flow.transform(v[None])[0][0], row)
        assert value.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-10)


def test_planar_layers_stay_invertible_and_inverse_is_exact():
    torch.manual_seed(1)
    flow = PlanarFlow(2, n_layers=6, init_scale=2.0).double()
    with torch.no_grad():
        flow.u.copy_(-flow.w)  # raw wᵀu = -‖w‖² down to -65: far below -1
    _, uw = flow._constrained_u()
    assert bool((uw >= -1 + 0.99e-4).all())
    assert bool((uw < -0.99).any())  # nearly singular layers: a hard test of the inverse
    x = 2 * torch.randn(50, 2, dtype=torch.float64)
    z, _ = flow.transform(x)
    torch.testing.assert_close(flow.inverse(z), x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("adjoint", [False, True])
def test_regularisers_cost_no_extra_solver_steps(adjoint):
    # Step sizes are set by (z, ell) alone, so integrating the penalties changes no step.
    flow = random_flow(seed=3)
    x = torch.randn(8, 2, dtype=torch.float64)
    options = SolverOptions(rtol=1e-6, atol=1e-6, adjoint=adjoint)
    counts = []
    for regularize in (False, True):
        reset_nfe(flow)
        log_prob, *_ = flow(x, options, regularize=regularize)
        log_prob.sum().backward()
        counts.append(count_nfe(flow))
    assert counts[0] == counts[1]
