"""ODE-Net building blocks against independent answers."""

import pytest
import torch
from torch import nn

from latode._numerics import SolverOptions
from latode.nn.odenet import (
    ConvDynamics,
    ODEBlock,
    ResidualStack,
    build_classifier_net,
    n_parameters,
)


class LinearField(nn.Module):
    def __init__(self, A):
        super().__init__()
        self.A = nn.Parameter(A)

    def forward(self, t, h):
        return h @ self.A.T


def test_ode_block_with_linear_dynamics_is_the_matrix_exponential():
    torch.manual_seed(0)
    A = torch.randn(4, 4, dtype=torch.float64) * 0.8
    h0 = torch.randn(3, 4, dtype=torch.float64)
    block = ODEBlock(LinearField(A), SolverOptions(rtol=1e-10, atol=1e-12))
    expected = h0 @ torch.linalg.matrix_exp(A).T
    torch.testing.assert_close(block(h0), expected, rtol=1e-8, atol=1e-9)
    assert block.func.nfe > 0


def test_one_euler_step_of_the_ode_block_is_one_residual_block():
    torch.manual_seed(0)
    f = ConvDynamics(4, time_dependent=False)
    h = torch.randn(2, 4, 3, 3)
    euler = ODEBlock(f, SolverOptions(method="euler", step_size=1.0))
    torch.testing.assert_close(euler(h), ResidualStack([f])(h))


def _gradients(adjoint, input_shape):
    torch.manual_seed(0)
    options = SolverOptions(rtol=1e-8, atol=1e-9, adjoint=adjoint)
    net = build_classifier_net(16, 3, input_shape=input_shape, width=4, downsample=0,
                               options=options).double()
    x = torch.randn(5, 16, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    torch.nn.functional.cross_entropy(net(x), y).backward()
    return {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize("input_shape", [(1, 4, 4), None], ids=["conv", "mlp"])
def test_adjoint_gradients_equal_direct_backpropagation(input_shape):
    direct, adjoint = _gradients(False, input_shape), _gradients(True, input_shape)
    assert direct.keys() == adjoint.keys()
    flat_direct = torch.cat([g.flatten() for g in direct.values()])
    flat_adjoint = torch.cat([adjoint[name].flatten() for name in direct])
    assert (flat_adjoint - flat_direct).norm() / flat_direct.norm() < 1e-4
    for name, grad in direct.items():
        # Biases right before a GroupNorm have an exactly zero gradient (the norm removes
        # any constant shift); every other parameter must agree on its own.
        if grad.norm() > 1e-8:
            assert (adjoint[name] - grad).norm() / grad.norm() < 1e-4, name


def _saved_bytes(adjoint, steps):
    """Bytes autograd keeps for the backward pass of one forward."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    torch.manual_seed(0)
    options = SolverOptions(method="rk4", step_size=1.0 / steps, adjoint=adjoint)
    net = build_classifier_net(16, 3, input_shape=(1, 4, 4), width=4, downsample=1,
                               options=options)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.randn(8, 16)).sum()
    return total


def test_adjoint_keeps_no_per_step_tensors_for_backward():
    assert _saved_bytes(True, 50) == _saved_bytes(True, 5)
    assert _saved_bytes(False, 50) > 5 * _saved_bytes(False, 5)


def test_parameter_counts_at_mnist_size_match_the_paper():
    ode = n_parameters(build_classifier_net(784, 10, input_shape=(1, 28, 28)))
    resnet = n_parameters(build_classifier_net(784, 10, input_shape=(1, 28, 28),
                                               body="resnet", n_blocks=6))
    assert ode == pytest.approx(0.22e6, rel=0.1)
    assert resnet == pytest.approx(0.60e6, rel=0.1)


def test_tabular_net_maps_rows_to_logits():
    net = build_classifier_net(5, 3, width=6, body="resnet", n_blocks=2)
    assert net(torch.zeros(7, 5)).shape == (7, 3)
    with pytest.raises(ValueError, match="body"):
        build_classifier_net(5, 3, body="transformer")


def test_set_solver_replaces_the_ode_bodys_options_and_a_residual_body_has_none():
    net = build_classifier_net(4, 2, width=3)
    options = SolverOptions(method="euler", step_size=0.5)
    net.set_solver(options)
    assert net.body.options is options
    with pytest.raises(TypeError, match="ResidualStack"):
        build_classifier_net(4, 2, width=3, body="resnet").set_solver(options)
