"""The latent ODE's numerics against independent answers."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions
from latode._numerics.paths import hermite_interpolate, solve_at, solve_from
from latode.nn.encoders import GRUDeltaTEncoder, ODERNNEncoder
from latode.nn.latent_ode import LatentODE, context_level, context_slope


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


def model(adjoint=False, encoder="rnn", level=None, **kw):
    torch.manual_seed(0)
    options = SolverOptions(rtol=1e-9, atol=1e-10, adjoint=adjoint)
    return LatentODE(2, latent_dim=3, hidden=(8,), encoder=encoder, encoder_hidden=6,
                     solver=options, level=level, **kw).double()


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


@pytest.mark.parametrize("kw", [{}, {"level": "last", "mean_reversion": True}])
def test_elbo_gradient_matches_finite_differences(kw):
    m = model(**kw)
    if kw:  # away from their initial values, so that the check sees every term
        with torch.no_grad():
            m.reversion_mean.copy_(torch.tensor([0.4, -0.3]))
            m.log_reversion_rate.copy_(torch.tensor([0.2, -0.5]))
            m.reversion_jump.copy_(torch.tensor([-1.0, 0.5]))
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
    mu_a, logvar_a, _ = encoder(times, values, mask)
    mu_b, logvar_b, _ = encoder(times, garbage, mask)
    torch.testing.assert_close(mu_a, mu_b)
    torch.testing.assert_close(logvar_a, logvar_b)
    # ...while an observed value does matter
    changed = values.clone()
    changed[0, 0, 0] += 1.0
    assert not torch.allclose(encoder(times, changed, mask)[0][0], mu_a[0])


def test_kl_weight_scales_exactly_the_kl_term_of_the_bound():
    m = model()
    times, values, mask = batch()
    context = m.encode(times, values, mask)
    mu, logvar = context.mu, context.logvar
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
def test_encoding_ignores_grid_times_where_the_series_has_no_observation(cls):
    # Training reads a prefix of a longer grid; prediction reads a context whose grid ends at
    # its last observation; other series add grid times before and between. All must give
    # the same q(z), at the series' last observation.
    encoder = small_encoder(cls)
    times, values, mask = batch()
    mu_a, logvar_a, origin_a = encoder(times, values, mask)
    last_row = [max(t for t in range(4) if mask[b, t].sum() > 0) for b in range(4)]
    torch.testing.assert_close(origin_a, times[last_row])
    longer = torch.tensor([-0.5, 0.0, 0.1, 0.3, 0.7, 1.2, 1.9, 2.5], dtype=times.dtype)
    own = [1, 3, 4, 5]  # where the original grid points sit in the longer one
    padded_values = torch.zeros(4, 8, 2, dtype=values.dtype)
    padded_mask = torch.zeros_like(padded_values)
    padded_values[:, own], padded_mask[:, own] = values, mask
    mu_b, logvar_b, origin_b = encoder(longer, padded_values, padded_mask)
    torch.testing.assert_close(mu_a, mu_b)
    torch.testing.assert_close(logvar_a, logvar_b)
    torch.testing.assert_close(origin_a, origin_b)
    # ...while a later observation moves the origin and the state.
    padded_mask[0, 6, 0], padded_values[0, 6, 0] = 1.0, 0.5
    mu_c, _, origin_c = encoder(longer, padded_values, padded_mask)
    assert float(origin_c[0]) == pytest.approx(1.9)
    assert not torch.allclose(mu_c[0], mu_a[0])
    torch.testing.assert_close(mu_c[1:], mu_a[1:])


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


def test_solve_at_starts_each_series_at_its_own_origin_like_the_exponential():
    # dz/dt = -0.5 z: each series' state at its own origin, times before and after it.
    f = CountedDynamics(Linear(0.5))
    z0 = torch.tensor([[[2.0], [1.0], [3.0]]], dtype=torch.float64)  # (samples, batch, 1)
    origin = torch.tensor([0.0, 0.7, 2.0], dtype=torch.float64)
    times = torch.tensor([0.0, 0.5, 1.0, 2.5], dtype=torch.float64)
    z = solve_at(f, z0, origin, times, SolverOptions(rtol=1e-10, atol=1e-12))
    expected = z0[0] * torch.exp(-0.5 * (times[None, :] - origin[:, None]))
    torch.testing.assert_close(z[0, :, :, 0], expected[..., 0] if expected.dim() == 3
                               else expected, rtol=1e-7, atol=1e-9)
    # Only the wanted pairs are solved for; they come out the same.
    needed = torch.tensor([[True, False, False, False], [False, True, True, False],
                           [False, False, False, True]])
    partial = solve_at(f, z0, origin, times, SolverOptions(rtol=1e-10, atol=1e-12), needed)
    torch.testing.assert_close(partial[0, needed], z[0, needed], rtol=1e-7, atol=1e-9)


class Rotate(nn.Module):
    def forward(self, t, z):
        return torch.stack([-z[..., 1], z[..., 0]], dim=-1)


def test_solve_at_interpolates_many_times_like_the_rotation():
    # Thousands of distinct offsets: the solve stops at the nodes and the rest is dense
    # output, which must still follow (cos, sin) from each series' own origin.
    g = torch.Generator().manual_seed(0)
    origin = torch.rand(4, generator=g, dtype=torch.float64) * 2.0
    times = torch.sort(torch.rand(1500, generator=g, dtype=torch.float64) * 3.0).values
    f = CountedDynamics(Rotate())
    z0 = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(1, 4, 2)
    z = solve_at(f, z0, origin, times, SolverOptions(rtol=1e-10, atol=1e-12))
    offsets = times[None, :] - origin[:, None]
    expected = torch.stack([torch.cos(offsets), torch.sin(offsets)], dim=-1)
    torch.testing.assert_close(z[0], expected, rtol=0, atol=1e-6)
    # The solve's cost follows the span, not the 6000 requested pairs.
    assert f.nfe < 1000


def test_hermite_interpolation_gradient_matches_finite_differences():
    nodes = torch.tensor([-0.3, 0.0, 0.4, 0.9], dtype=torch.float64)
    z = torch.randn(2, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    dz = torch.randn(2, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    at = torch.tensor([[-0.3, 0.1, 0.85], [0.0, 0.4, 0.2], [-0.1, 0.9, 0.5]],
                      dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: hermite_interpolate(nodes, a, b, at), (z, dz))
    # Interpolation passes through the nodes.
    out = hermite_interpolate(nodes, z, dz, nodes.expand(3, 4))
    torch.testing.assert_close(out, z)


@pytest.mark.parametrize("kind", ["last", "mean", None])
def test_context_level_against_a_loop(kind):
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    mask = (torch.rand(3, 6, 2, generator=g) > 0.5).double()
    mask[2, :, 1] = 0.0  # a channel never read
    level, seen = context_level(values, mask, kind)
    for b in range(3):
        for c in range(2):
            rows = [t for t in range(6) if mask[b, t, c] > 0]
            assert float(seen[b, c]) == float(bool(rows))
            if not rows or kind is None:
                expected = 0.0
            elif kind == "last":
                expected = float(values[b, rows[-1], c])
            else:
                expected = float(values[b, rows, c].mean())
            assert float(level[b, c]) == pytest.approx(expected)



@pytest.mark.parametrize("n_points", [2, 4])
def test_context_slope_is_numpys_line_through_each_channels_last_points(n_points):
    g = torch.Generator().manual_seed(1)
    times = torch.sort(torch.rand(9, generator=g, dtype=torch.float64) * 5).values
    values = torch.randn(4, 9, 3, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 9, 3, generator=g) > 0.4).double()
    mask[0, :, 0] = 0.0  # a channel never read
    mask[1, :, 1] = 0.0
    mask[1, 5, 1] = 1.0  # read once
    slope = torch.sinh(context_slope(times, values, mask, n_points))
    for b in range(4):
        for c in range(3):
            rows = [t for t in range(9) if mask[b, t, c] > 0][-n_points:]
            expected = (0.0 if len(rows) < 2 else
                        np.polyfit(times[rows].numpy(), values[b, rows, c].numpy(), 1)[0])
            assert float(slope[b, c]) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 points"):
        context_slope(times, values, mask, 1)


def test_the_encoder_reads_the_slope_only_when_asked():
    # Two contexts with the same last value, one rising to it and one falling. The slope
    # is an extra input of the encoder's head.
    times = torch.tensor([0.0, 1.0, 2.0])
    values = torch.tensor([[[0.0], [1.0], [2.0]], [[2.0], [3.0], [2.0]]])
    mask = torch.ones(2, 3, 1)
    with_slope = LatentODE(1, latent_dim=2, hidden=(8,), encoder="rnn", level="last",
                           slope_points=2)
    assert with_slope.encoder.head[0].in_features == 32 + 3  # level, seen, slope
    without = LatentODE(1, latent_dim=2, hidden=(8,), encoder="rnn", level="last")
    assert without.encoder.head[0].in_features == 32 + 2
    with pytest.raises(ValueError, match="slope_points must be 0"):
        LatentODE(1, slope_points=1)
    # Zeroing the head's weights on everything but the slope: mu differs by the slope only.
    with torch.no_grad():
        head = with_slope.encoder.head[0]
        head.weight[:, :-1] = 0.0
    context = with_slope.encode(times, values, mask)
    assert not torch.allclose(context.mu[0], context.mu[1])
    with torch.no_grad():
        head.weight[:, -1] = 0.0
    context = with_slope.encode(times, values, mask)
    torch.testing.assert_close(context.mu[0], context.mu[1])


def test_a_context_level_makes_the_model_shift_with_the_series():
    # Relative to the last value, a series' encoder reads the same differences whatever its
    # level; the decoder's output is counted from its value at the origin, plus the level.
    m = model(level="last")
    times, values, mask = batch()
    context = m.encode(times, values, mask)
    level, _ = context_level(values, mask, "last")
    torch.testing.assert_close(context.level, level)
    assert m.anchored
    with torch.no_grad():
        mean = m.decode(context.mu[None], context, times)
        offset = m.decoder(solve_at(m.dynamics, context.mu[None], context.origin, times,
                                    m.solver)) - m.decoder(context.mu)[None, :, None]
    torch.testing.assert_close(mean - offset, level[None, :, None, :].expand_as(mean))


@pytest.mark.parametrize("kind", ["last", "mean"])
def test_the_mean_at_the_origin_is_the_last_value_under_the_last_level(kind):
    m = model(encoder="ode-rnn", level=kind)
    times, values, mask = batch()
    mask[0, :, 1] = 0.0  # series 0 never shows channel 1
    values = values * mask
    context = m.encode(times, values, mask)
    with torch.no_grad():
        mean = m.decode(torch.randn(4, *context.mu.shape, dtype=torch.float64), context,
                        times)
    at_origin = mean[:, torch.arange(len(context.origin)),
                     torch.searchsorted(times, context.origin)]  # (samples, batch, channels)
    level, seen = context_level(values, mask, "last")
    gap = (at_origin - level) * seen
    if kind == "last":  # every draw starts where the series was last seen
        torch.testing.assert_close(gap, torch.zeros_like(gap))
        # ... and a channel it has not shown, at the population's mean (0, standardised)
        assert seen[0, 1] == 0 and (at_origin[:, 0, 1] == 0).all()
    else:
        assert gap.abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["last", "mean"])
def test_mean_reversion_pulls_each_channel_from_its_level_like_an_ornstein_uhlenbeck_mean(kind):
    # With the decoder's output held constant, only the reversion moves the means: away from
    # the time its level was read, each channel's mean is m + (level - m)(1 - j) exp(-k h),
    # h the time from that reading (before it as after it), j the share of the distance to
    # m that a reading's noise puts behind at once; at the reading itself, the level.
    m = model(level=kind, mean_reversion=True)
    double = dict(dtype=torch.float64)
    target, rate, jump = np.array([0.5, -2.0]), np.array([1.5, 0.25]), np.array([0.3, 0.0])
    with torch.no_grad():
        last = m.decoder[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.7, -1.1], **double))
        m.reversion_mean.copy_(torch.tensor(target, **double))
        m.log_reversion_rate.copy_(torch.tensor(rate, **double).log())
        m.reversion_jump.copy_(torch.logit(torch.tensor(jump, **double)))
    times, values, mask = batch()
    mask[0, 1, 1], mask[0, 2:, 1] = 1.0, 0.0  # series 0 last shows channel 1 at 0.3
    values = values * mask
    context = m.encode(times, values, mask)
    with torch.no_grad():
        mean = m.decode(context.mu[None], context, times)[0].numpy()  # (batch, T, channels)
    level = context.level.numpy()[:, None, :]
    t, read = times.numpy(), mask.numpy() > 0
    read_at = np.array([[t[np.flatnonzero(read[b, :, c])[-1]] for c in range(2)]
                        for b in range(len(read))])
    assert read_at[0, 1] == 0.3
    horizon = np.abs(t[None, :, None] - read_at[:, None, :])
    pull = np.where(horizon > 0, 1 - (1 - jump) * np.exp(-rate * horizon), 0.0)
    expected = level + (target - level) * pull
    if kind == "mean":  # not anchored: the decoder's constant output adds to every time
        expected = expected + np.array([0.7, -1.1])
    np.testing.assert_allclose(mean, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("noise, spread, sign", [(1.0, 0.2, -1.0), (0.01, 1.0, 1.0)])
def test_training_pulls_toward_the_mean_only_where_readings_do_not_persist(noise, spread,
                                                                           sign):
    # Readings scattered around a common mean (noise 1 around levels of s.d. 0.2): the bound
    # rises with a faster pull and a larger jump, so training raises them (the gradient of
    # the loss is negative). Series that keep levels of their own (noise 0.01 around levels
    # of s.d. 1): any pull away from a series' level costs, so training lowers them.
    g = torch.Generator().manual_seed(0)
    n, k = 256, 8
    times = torch.linspace(0.0, 1.0, k, dtype=torch.float64)
    own = spread * torch.randn(n, 1, 1, generator=g, dtype=torch.float64)
    values = own + noise * torch.randn(n, k, 1, generator=g, dtype=torch.float64)
    mask = torch.ones_like(values)
    read = mask.clone()
    read[:, k // 2:] = 0.0  # the first half read, all scored
    torch.manual_seed(0)
    m = LatentODE(1, latent_dim=2, hidden=(8,), encoder="rnn", encoder_hidden=6,
                  level="last", mean_reversion=True).double()
    bound, _ = m.elbo(times, values, mask, enc_mask=read, n_samples=4)
    (-bound.sum()).backward()
    assert sign * m.reversion_jump.grad.item() > 0
    assert sign * m.log_reversion_rate.grad.item() > 0


def test_without_a_level_there_is_nothing_to_revert_from():
    m = model(level=None, mean_reversion=True)
    assert not m.mean_reversion
    assert not any("reversion" in name for name, _ in m.named_parameters())


def test_decoding_only_the_needed_pairs_matches_the_full_decode():
    m = model(level="last")
    times, values, mask = batch()
    context = m.encode(times, values, mask)
    z = torch.randn(3, *context.mu.shape, dtype=torch.float64)
    needed = mask.sum(-1) > 0
    with torch.no_grad():
        full = m.decode(z, context, times)
        some = m.decode(z, context, times, needed)
    torch.testing.assert_close(some[:, needed], full[:, needed])
    assert (some[:, ~needed] == 0).all()


def test_posterior_draws_of_a_batch_are_its_encoding_and_a_draw_from_it():
    # The one owner of "batch -> draws of z": the encoder reads every observation and the
    # draws come from the generator given, as encode and draw do by hand.
    m = model(level="last")
    times, values, mask = batch()
    union = SimpleNamespace(times=times, values=values, mask=mask, events=None, inputs=None,
                            static=None)
    with torch.no_grad():
        z, context = m.posterior_draws(union, 5, torch.Generator().manual_seed(3))
        by_hand = m.encode(times, values, mask)
        expected = m.draw(by_hand, 5, torch.Generator().manual_seed(3))
    assert z.shape == (5, 4, 3)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    torch.testing.assert_close(context.mu, by_hand.mu, rtol=0, atol=0)
    torch.testing.assert_close(context.level, by_hand.level, rtol=0, atol=0)


def test_horizon_noise_scores_each_value_with_the_variance_at_its_distance_from_the_origin():
    # The bound's observation term against Normal.log_prob with the variance written out:
    # std**2 + diffusion**2 * |t - origin|, the origin being each series' last read row.
    torch.manual_seed(0)
    m = LatentODE(2, latent_dim=3, hidden=(8,), encoder="rnn", encoder_hidden=6,
                  solver=SolverOptions(rtol=1e-9, atol=1e-10), level="last",
                  horizon_noise=True).double()
    with torch.no_grad():
        m.log_std.copy_(torch.log(torch.tensor([0.2, 0.05])))
        m.log_diffusion.copy_(torch.log(torch.tensor([0.3, 1.5])))
    times, values, mask = batch()
    mask[:, -1, 0] = 1.0
    read = mask.clone()
    read[:2, 2:] = 0.0  # two series read up to t = 0.3, two to the end
    m.draw = lambda context, n_samples: context.mu.unsqueeze(0)  # z at the posterior mean
    terms = m.elbo_terms(times, values, mask, enc_mask=read)
    context = m.encode(times, values, read)
    assert context.origin.tolist() == [0.3, 0.3, 1.2, 1.2]
    mean = m.decode(context.mu.unsqueeze(0), context, times)[0]
    gap = (times.view(1, -1, 1) - context.origin.view(-1, 1, 1)).abs()
    std = torch.sqrt(torch.tensor([0.2, 0.05]) ** 2 + torch.tensor([0.3, 1.5]) ** 2 * gap)
    expected = (torch.distributions.Normal(mean, std).log_prob(values) * mask).sum((-1, -2))
    torch.testing.assert_close(terms["observations"][0], expected)


def test_without_horizon_noise_the_noise_is_the_same_at_every_horizon():
    m = model()
    assert not hasattr(m, "log_diffusion")
    horizon = torch.tensor([[0.0, 0.5, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(m.observation_log_std(horizon), m.observation_log_std())
    times, values, mask = batch()
    batch_ = SimpleNamespace(times=times, values=values, mask=mask, events=None, inputs=None,
                             static=None)
    std = m.observation_std_at(batch_, times)
    assert std.shape == (4, 4, 2)
    torch.testing.assert_close(std, m.observation_log_std().exp().expand(4, 4, 2))


def test_forecast_origins_are_where_the_encoder_puts_the_posterior():
    m = LatentODE(2, latent_dim=3, hidden=(8,), encoder="ode-rnn", encoder_hidden=6,
                  horizon_noise=True).double()
    times, values, mask = batch()
    mask[1, 2:] = 0.0
    mask[3, 1:] = 0.0
    batch_ = SimpleNamespace(times=times, values=values * mask, mask=mask, events=None,
                             inputs=None, static=None)
    origins = m.forecast_origins(batch_)
    assert origins.tolist() == [1.2, 0.3, 1.2, 0.0]
    torch.testing.assert_close(origins, m.encode(times, values * mask, mask).origin)


def test_free_bits_floor_each_dimensions_kl_and_stop_its_gradient_below_the_floor():
    from latode.nn.likelihoods import gaussian_kl_standard

    mu = torch.tensor([[0.1, 2.0, 0.0], [1.0, 0.0, -0.3]], requires_grad=True)
    logvar = torch.tensor([[0.0, -1.0, 0.2], [-2.0, 0.0, 0.0]], requires_grad=True)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    per_dim = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl_standard(mu, logvar), per_dim.sum(-1))
    floored = gaussian_kl_standard(mu, logvar, free_bits=0.5)
    torch.testing.assert_close(floored, per_dim.clamp(min=0.5).sum(-1))
    floored.sum().backward()
    below = (per_dim < 0.5).detach()
    assert below.any() and (~below).any()
    assert torch.all(mu.grad[below] == 0) and torch.all(mu.grad[~below] != 0)


def test_the_bound_with_free_bits_charges_the_floor_instead_of_each_small_kl():
    m = model(level="last")
    times, values, mask = batch()
    torch.manual_seed(0)
    plain, _ = m.elbo(times, values, mask)
    torch.manual_seed(0)  # the same z draw
    relaxed, info = m.elbo(times, values, mask, free_bits=0.4)
    context = m.encode(times, values, mask)
    per_dim = 0.5 * (context.mu ** 2 + context.logvar.exp() - 1 - context.logvar)
    extra = (per_dim.clamp(min=0.4) - per_dim).sum(-1)
    torch.testing.assert_close(relaxed, plain - extra)
    assert info["kl"] == pytest.approx(float(per_dim.sum(-1).mean().detach()))  # unfloored
