"""The Poisson-process numerics against closed forms and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, count_nfe, odeint_checked
from latode.data import IrregularFrameConverter
from latode.nn.latent_ode import LatentContext, LatentODE
from latode.nn.point_process import (
    IntensityAugmentedDynamics,
    PoissonIntensity,
    initialise_rate,
    poisson_log_likelihood,
)

A, B = 2.0, 1.5  # λ(t) = A + B cos t on the rotation z(t) = (cos t, sin t)


class Rotation(nn.Module):
    def forward(self, t, z):
        return torch.stack([-z[..., 1], z[..., 0]], dim=-1)


class LinearRate(nn.Module):
    """λ(z) = A + B z_1: on the rotation, λ(t) = A + B cos t."""

    def forward(self, z):
        return A + B * z[..., 0]


class ConstantRate(nn.Module):
    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, z):
        return torch.full(z.shape[:-1], self.rate, dtype=z.dtype)


def cumulative_intensity(rate, times, rtol=1e-8, method="dopri5"):
    func = CountedDynamics(IntensityAugmentedDynamics(Rotation(), rate))
    state0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    options = SolverOptions(method=method, rtol=rtol, atol=rtol * 1e-2)
    return odeint_checked(func, state0, times, options)[:, 0, -1]


def test_constant_rate_integral_is_rate_times_length():
    times = torch.linspace(0.0, 7.0, 8, dtype=torch.float64)
    cumulative = cumulative_intensity(ConstantRate(3.0), times)
    torch.testing.assert_close(cumulative, 3.0 * times, rtol=1e-7, atol=1e-7)


def test_sinusoidal_rate_integral_matches_closed_form():
    times = torch.linspace(0.0, 10.0, 21, dtype=torch.float64)
    cumulative = cumulative_intensity(LinearRate(), times)
    exact = A * times + B * torch.sin(times)
    torch.testing.assert_close(cumulative, exact, rtol=1e-6, atol=1e-6)


def test_integral_accuracy_follows_the_solver_tolerance():
    times = torch.tensor([0.0, 10.0], dtype=torch.float64)
    exact = A * 10.0 + B * math.sin(10.0)
    errors = [abs(float(cumulative_intensity(LinearRate(), times, rtol)[-1]) - exact)
              for rtol in (1e-3, 1e-6, 1e-9)]
    assert errors[2] < errors[0]
    assert errors[2] < 1e-7


def test_log_likelihood_matches_direct_computation():
    # Events of two series on one grid; series 1's window is [1, 4], series 0's [0, 5].
    grid = torch.arange(6, dtype=torch.float64)
    log_rate = torch.log(A + B * torch.cos(grid)).expand(2, 6)
    cumulative = (A * grid + B * torch.sin(grid)).expand(2, 6)
    events = torch.tensor([[1.0, 0, 2, 0, 1, 0], [0, 1, 0, 1, 0, 0]], dtype=torch.float64)
    window = torch.tensor([[1.0] * 6, [0, 1, 1, 1, 1, 0]], dtype=torch.float64)
    got = poisson_log_likelihood(log_rate, cumulative, events, window)

    def direct(event_times, a, b):
        logs = sum(math.log(A + B * math.cos(t)) for t in event_times)
        return logs - (A * (b - a) + B * (math.sin(b) - math.sin(a)))

    expected = [direct([0, 2, 2, 4], 0, 5), direct([1, 3], 1, 4)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_a_window_of_one_time_scores_nothing_however_large_the_rate():
    # Series 1 has one row (at grid time 2): no interval, no exposure. Its event would add
    # log λ with nothing to pay; it is not scored, so raising λ cannot buy likelihood.
    grid = torch.arange(4, dtype=torch.float64)
    events = torch.tensor([[1.0, 0, 1, 0], [0, 0, 1, 0]], dtype=torch.float64)
    window = torch.tensor([[1.0, 1, 1, 0], [0, 0, 1, 0]], dtype=torch.float64)
    for rate in (1.0, 1e6):
        got = poisson_log_likelihood(torch.full((2, 4), math.log(rate), dtype=torch.float64),
                                     rate * grid.expand(2, 4), events, window)
        assert float(got[1]) == 0.0
        assert float(got[0]) == pytest.approx(2 * math.log(rate) - 2 * rate)


def test_initial_rate_ignores_series_of_one_row():
    two = pd.DataFrame({"unique_id": ["a"] * 5, "ds": [0.0, 1, 2, 3, 4], "y": 1.0})
    lone = pd.DataFrame({"unique_id": ["b"], "ds": [2.0], "y": 1.0})
    rates = []
    for frame in (two, pd.concat([two, lone])):
        packed = IrregularFrameConverter(time_scale=None, point_process=True).fit_pack(frame)
        rates.append(initialise_rate(PoissonIntensity(2, (4,)), packed))
    # 5 events over a span of 4 model units (scaled as the converter scales), either way.
    assert rates[0] == pytest.approx(rates[1])


def test_log_likelihood_broadcasts_over_samples():
    log_rate = torch.randn(3, 2, 5)
    cumulative = torch.cumsum(torch.rand(3, 2, 5), -1)
    events = (torch.rand(2, 5) > 0.5).double()
    window = torch.ones(2, 5)
    got = poisson_log_likelihood(log_rate, cumulative, events, window)
    assert got.shape == (3, 2)
    torch.testing.assert_close(got[1], poisson_log_likelihood(log_rate[1], cumulative[1],
                                                              events, window))


def test_log_rate_is_finite_where_softplus_underflows():
    lam = PoissonIntensity(1, ())
    with torch.no_grad():
        lam.net[0].weight.fill_(1.0)
        lam.net[0].bias.zero_()
    z = torch.tensor([[-200.0], [0.0], [30.0]])
    log_rate = lam.log_rate(z)
    assert torch.isfinite(log_rate).all()
    torch.testing.assert_close(log_rate[0], torch.tensor(-200.0))
    torch.testing.assert_close(log_rate.exp()[1:], lam(z)[1:])


def _model(adjoint=False, encoder="rnn", rtol=1e-6):
    torch.manual_seed(0)
    options = SolverOptions(method="dopri5", rtol=rtol, atol=rtol, adjoint=adjoint)
    return LatentODE(2, latent_dim=3, hidden=(8,), encoder=encoder, encoder_hidden=6,
                     solver=options, point_process=True).double()


def _batch():
    generator = torch.Generator().manual_seed(1)
    times = torch.tensor([0.0, 0.3, 0.5, 1.1, 1.6], dtype=torch.float64)
    values = torch.randn(4, 5, 2, generator=generator, dtype=torch.float64)
    mask = (torch.rand(4, 5, 2, generator=generator) > 0.4).double()
    events = (torch.rand(4, 5, generator=generator) > 0.3).double()
    return times, values, mask, events


def test_augmented_solve_leaves_the_trajectory_unchanged_and_integrates_the_rate():
    model = _model()
    times = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)
    z0 = torch.randn(2, 3, 3, dtype=torch.float64)
    # Every series' state at time 0, without a level: Λ then runs from 0.
    context = LatentContext(z0[0], z0[0], torch.zeros(3, dtype=torch.float64),
                            torch.zeros(3, 2, dtype=torch.float64))
    with torch.no_grad():
        means, log_rate, cumulative = model.decode_with_intensity(z0, context, times)
        torch.testing.assert_close(means, model.decode(z0, context, times), rtol=1e-5,
                                   atol=1e-6)
    # An independent integral: Simpson's rule on the solved rate.
    rate = log_rate.exp().numpy()
    dt = float(times[1] - times[0])
    simpson = dt / 3 * (rate[..., 0] + rate[..., -1] + 4 * rate[..., 1:-1:2].sum(-1)
                        + 2 * rate[..., 2:-1:2].sum(-1))
    np.testing.assert_allclose(cumulative[..., -1].numpy(), simpson, rtol=1e-5)


@pytest.mark.parametrize("encoder", ["rnn", "ode-rnn"])
def test_adjoint_and_direct_gradients_agree_with_events(encoder):
    grads = []
    for adjoint in (False, True):
        model = _model(adjoint, encoder, rtol=1e-10)
        torch.manual_seed(3)
        times, values, mask, events = _batch()
        bound, _ = model.elbo(times, values, mask, events=events, window=torch.ones(4, 5))
        bound.sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()
                                if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


def test_gradient_matches_finite_differences():
    model = _model()
    times, values, mask, events = _batch()
    param = model.intensity.net[-1].bias

    def objective():
        torch.manual_seed(5)
        bound, _ = model.elbo(times, values, mask, events=events, window=torch.ones(4, 5))
        return bound.sum()

    objective().backward()
    analytic = float(param.grad[0])
    eps = 1e-5
    with torch.no_grad():
        param += eps
        up = float(objective())
        param -= 2 * eps
        down = float(objective())
        param += eps
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4)


def test_events_change_the_encoding_and_the_bound():
    model = _model()
    times, values, mask, events = _batch()
    with torch.no_grad():
        mu = model.encode(times, values, mask, events).mu
        mu_moved = model.encode(times, values, mask, events.roll(1, -1)).mu
    assert not torch.allclose(mu, mu_moved)
    with pytest.raises(ValueError, match="events="):
        model.encode(times, values, mask)


def test_augmented_solve_is_counted():
    model = _model()
    times, values, mask, events = _batch()
    model.elbo(times, values, mask, events=events, window=torch.ones(4, 5))
    assert model.augmented.nfe > 0
    assert count_nfe(model) >= model.augmented.nfe
