"""The latent ODE's numerics against independent answers."""

import math

import pytest
import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions
from latode.nn.encoders import GRUDeltaTEncoder, ODERNNEncoder
from latode.nn.latent_ode import LatentODE, solve_from


class Linear(nn.Module):
    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, t, z):
        return -self.rate * z


def test_solve_from_goes_backward_and_forward_like_the_exponential():
    f = CountedDynamics(Linear(0.5))
    times = torch.tensor([-1.0, 0.2, 1.0, 3.0], dtype=torch.float64)
    z0 = torch.tensor([[2.0]], dtype=torch.float64)
    z = solve_from(f, z0, torch.tensor(0.5, dtype=torch.float64), times,
                   SolverOptions(rtol=1e-10, atol=1e-12))
    expected = 2.0 * torch.exp(-0.5 * (times - 0.5))
    torch.testing.assert_close(z[:, 0, 0], expected, rtol=1e-7, atol=1e-9)


def model(adjoint=False, encoder="rnn"):
    torch.manual_seed(0)
    options = SolverOptions(rtol=1e-9, atol=1e-10, adjoint=adjoint)
    return LatentODE(2, latent_dim=3, hidden=(8,), encoder=encoder, encoder_hidden=6,
                     solver=options).double()


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    times = torch.tensor([0.0, 0.3, 0.7, 1.2], dtype=torch.float64)
    values = torch.randn(4, 4, 2, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 4, 2, generator=g) > 0.3).double()
    mask[:, 0] = 1.0
    return times, values * mask, mask


def elbo_sum(m, seed=0):
    torch.manual_seed(seed)  # the same z0 noise every call
    bound, _ = m.elbo(*batch(), n_samples=2)
    return bound.sum()


def test_elbo_gradient_matches_finite_differences():
    m = model()
    loss = elbo_sum(m)
    loss.backward()
    eps = 1e-6
    checked = 0
    for name, p in m.named_parameters():
        flat, grad = p.data.view(-1), p.grad.view(-1)
        for i in range(min(2, flat.numel())):
            old = flat[i].item()
            flat[i] = old + eps
            up = elbo_sum(m).item()
            flat[i] = old - eps
            down = elbo_sum(m).item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert math.isclose(grad[i].item(), fd, rel_tol=1e-4, abs_tol=1e-6), (name, i)
            checked += 1
    assert checked > 10


def test_adjoint_and_direct_backprop_give_the_same_gradient():
    grads = []
    for adjoint in (False, True):
        m = model(adjoint=adjoint)
        elbo_sum(m).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-7)


def small_encoder(cls):
    """A seeded float64 encoder of 2 channels, hidden 6, latent 3 (Euler for the ODE-RNN)."""
    torch.manual_seed(0)
    args = (2, 6, 3) if cls is GRUDeltaTEncoder else (2, 6, 3, SolverOptions(method="euler"))
    return cls(*args).double()


@pytest.mark.parametrize("cls", [GRUDeltaTEncoder, ODERNNEncoder])
def test_encoders_ignore_values_that_are_masked_out(cls):
    encoder = small_encoder(cls)
    times, values, mask = batch()
    garbage = values + 100.0 * torch.randn_like(values) * (1 - mask)
    mu_a, logvar_a = encoder(times, values, mask)
    mu_b, logvar_b = encoder(times, garbage, mask)
    torch.testing.assert_close(mu_a, mu_b)
    torch.testing.assert_close(logvar_a, logvar_b)
    # ...while an observed value does matter
    changed = values.clone()
    changed[0, 0, 0] += 1.0
    assert not torch.allclose(encoder(times, changed, mask)[0][0], mu_a[0])


def test_kl_weight_scales_exactly_the_kl_term_of_the_bound():
    m = model()
    times, values, mask = batch()
    mu, logvar = m.posterior(times, values, mask)
    # KL(N(mu, s^2) || N(0, 1)) by hand, independent of the library's helper.
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)

    def bound(weight, iwae=False):
        torch.manual_seed(0)
        return m.elbo(times, values, mask, n_samples=1, iwae=iwae, kl_weight=weight)[0]

    full = bound(1.0)
    torch.testing.assert_close(bound(0.25), full + 0.75 * kl)
    torch.testing.assert_close(bound(0.0), full + kl)
    # One-sample IWAE: log p(x|z) + w (log p(z) - log q(z)); at w = 0 only the likelihood.
    torch.manual_seed(0)
    _, info = m.elbo(times, values, mask, n_samples=1, iwae=True, kl_weight=0.0)
    assert bound(0.0, iwae=True).mean().item() == pytest.approx(info["log_lik"])


@pytest.mark.parametrize("cls", [GRUDeltaTEncoder, ODERNNEncoder])
def test_encoding_ignores_grid_times_after_the_last_observation(cls):
    # Training reads a prefix of a longer grid; prediction reads a context whose grid ends at
    # its last observation. Both must give the same q(z0).
    encoder = small_encoder(cls)
    times, values, mask = batch()
    longer = torch.cat([times, torch.tensor([1.9, 2.5], dtype=times.dtype)])
    pad = torch.zeros(4, 2, 2, dtype=values.dtype)
    mu_a, logvar_a = encoder(times, values, mask)
    mu_b, logvar_b = encoder(longer, torch.cat([values, pad], 1), torch.cat([mask, pad], 1))
    torch.testing.assert_close(mu_a, mu_b)
    torch.testing.assert_close(logvar_a, logvar_b)
    # ...but z0 is at times[0]: an empty grid point before the first observation moves it.
    earlier = torch.cat([torch.tensor([-0.5], dtype=times.dtype), times])
    mu_c, _ = encoder(earlier, torch.cat([pad[:, :1], values], 1),
                      torch.cat([pad[:, :1], mask], 1))
    assert not torch.allclose(mu_a, mu_c)


def test_a_fixed_observation_std_is_a_constant_not_a_parameter():
    learned = model()
    torch.manual_seed(0)
    options = SolverOptions(rtol=1e-9, atol=1e-10)
    fixed = LatentODE(2, latent_dim=3, hidden=(8,), encoder="rnn", encoder_hidden=6,
                      solver=options, observation_std=0.05).double()
    assert "log_std" not in dict(fixed.named_parameters())
    assert len(list(fixed.parameters())) == len(list(learned.parameters())) - 1
    # Same weights, the learned noise set to 0.05: the same bound, term for term.
    state = learned.state_dict()
    state["log_std"] = torch.full((2,), math.log(0.05), dtype=torch.float64)
    learned.load_state_dict(state)
    fixed.load_state_dict(state)
    torch.testing.assert_close(elbo_sum(fixed), elbo_sum(learned))
    elbo_sum(fixed).backward()
    assert fixed.log_std.grad is None
    torch.testing.assert_close(fixed.observation_log_std().exp(),
                               torch.full((2,), 0.05, dtype=torch.float64))
