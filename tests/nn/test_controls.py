"""Known inputs of the latent dynamics (latode.nn.controls), checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latode._numerics import SolverOptions
from latode.data.covariates import control_rows
from latode.datasets import one_compartment
from latode.nn.controls import ControlledDynamics, ControlSchedule, DoseResponse, held_inputs
from latode.nn.latent_ode import Covariates, LatentContext, LatentODE


def schedule_of(times, values, kinds):
    at, steps, impulses = control_rows(np.asarray(times, float), np.asarray(values, float),
                                       np.zeros(len(times), int), 1, kinds)
    return ControlSchedule(*(torch.tensor(a, dtype=torch.float64)
                             for a in (at, steps, impulses)))


def test_future_covariates_are_held_from_each_row_until_the_next():
    schedule = schedule_of([1.0, 3.0, 4.0], [[2.0], [np.nan], [-1.0]], ["future"])
    clock = torch.tensor([[0.5], [1.0], [2.9], [3.5], [4.0], [9.0]])
    held = held_inputs(clock.double(), schedule)[:, 0, 0]
    # Before the first row the held value is 0 (the training mean in scaled units).
    assert held.tolist() == [0.0, 2.0, 2.0, 2.0, -1.0, -1.0]


def test_impulse_curves_are_the_one_compartment_model_of_their_rates():
    """Each pair of compartments is the concentration of a one-compartment model with
    first-order absorption (its closed form in latode.datasets, with volume 1)."""
    dose_times, doses = [0.5, 2.0, 2.5], [1.0, 3.0, 0.5]
    schedule = schedule_of(dose_times, np.array(doses)[:, None], ["impulse"])
    rates = [0.2, 0.7, 3.0]
    signal = DoseResponse(1, rates=rates).double()
    signal.set_rates(rates)  # again, in float64
    torch.testing.assert_close(signal.rates(), torch.tensor(rates, dtype=torch.float64))
    times = np.linspace(0.0, 6.0, 25)
    curves = signal(torch.tensor(times).view(-1, 1), schedule)[:, 0].detach().numpy()
    pairs = [(0, 1), (0, 2), (1, 2)]  # (slow, fast), the order of the curves
    for k, (slow, fast) in enumerate(pairs):
        expected = one_compartment(times, np.array(dose_times), np.array(doses),
                                   ka=rates[fast], ke=rates[slow], volume=1.0)
        np.testing.assert_allclose(curves[:, k], expected, rtol=1e-10, atol=1e-12)


def test_rates_must_grow_from_one_compartment_to_the_next():
    with pytest.raises(ValueError, match="grow by more than"):
        DoseResponse(1, rates=[1.0, 1.2])


def test_controlled_dynamics_need_a_schedule():
    dynamics = ControlledDynamics(2, (8,), 1)
    with pytest.raises(RuntimeError, match="drive"):
        dynamics(torch.tensor(0.0), torch.zeros(1, 3))


def _controlled_module(adjoint: bool) -> LatentODE:
    torch.manual_seed(0)
    return LatentODE(1, latent_dim=3, hidden=(16,), encoder="rnn", encoder_hidden=8,
                     solver=SolverOptions(rtol=1e-10, atol=1e-10, adjoint=adjoint),
                     level="last", n_inputs=2, n_static=1, controls=(1, 1, [0.5, 2.0]))


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _batch_loss(module: LatentODE) -> torch.Tensor:
    times = torch.tensor([0.0, 0.4, 1.0, 1.7, 2.5])
    values = torch.tensor([[[1.0], [1.3], [0.0], [0.8], [0.6]],
                           [[0.2], [0.0], [0.5], [0.4], [0.9]]])
    mask = torch.tensor([[[1.0], [1.0], [0.0], [1.0], [1.0]],
                         [[1.0], [0.0], [1.0], [1.0], [1.0]]])
    read = mask.clone()
    read[:, 3:] = 0.0
    schedule = ControlSchedule(torch.tensor([[0.0, 1.2], [0.3, 2.0]]),
                               torch.tensor([[[1.0], [-0.5]], [[0.5], [0.0]]]),
                               torch.tensor([[[0.0], [2.0]], [[1.0], [1.0]]]))
    covariates = Covariates(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2),
                            torch.tensor([[0.3], [-1.0]]), schedule)
    torch.manual_seed(1)
    bound, _ = module.elbo(times, values, mask, enc_mask=read, covariates=covariates)
    return -bound.sum()


def test_gradients_through_the_controls_match_with_and_without_the_adjoint(float64):
    grads = []
    for adjoint in (False, True):
        module = _controlled_module(adjoint)
        _batch_loss(module).backward()
        grads.append(torch.cat([module.dose_response.log_rates.grad,
                                module.dynamics.func.net[0].weight.grad.flatten()]))
    assert grads[0].abs().sum() > 0
    # The held inputs jump, and adaptive steps across a jump resolve it only to about the
    # step's size: the two gradients agree to a few parts in a thousand, not to the
    # tolerance (inputs missing from the adjoint's backward solve would be off by O(1)).
    torch.testing.assert_close(grads[0], grads[1], rtol=2e-2, atol=1e-4)


def test_the_rates_gradient_matches_finite_differences(float64):
    module = _controlled_module(False)
    # A fixed-step solve: an adaptive one's step choices move the loss by more than a
    # finite difference resolves.
    module.solver = SolverOptions(method="rk4", step_size=0.01)
    parameter = module.dose_response.log_rates

    def loss() -> torch.Tensor:
        with torch.random.fork_rng():
            return _batch_loss(module)

    loss().backward()
    analytic = parameter.grad[1].item()
    eps = 1e-5
    with torch.no_grad():
        parameter[1] += eps
        up = loss().item()
        parameter[1] -= 2 * eps
        down = loss().item()
        parameter[1] += eps
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-6)


def test_the_dose_effect_is_linear_in_the_doses():
    """Twice the doses, twice the response: the what-if a dosing model must get right."""
    module = _controlled_module(False)
    z = torch.randn(4, 2, 3)
    schedule = ControlSchedule(torch.tensor([[0.0, 1.2], [0.3, 2.0]]), torch.zeros(2, 2, 1),
                               torch.tensor([[[0.0], [2.0]], [[1.0], [1.0]]]))
    times = torch.tensor([0.5, 1.5, 3.0])

    def effect(impulses):
        context = LatentContext(z[0], z[0], torch.tensor([0.5, 0.4]), torch.zeros(2, 1),
                                ControlSchedule(schedule.times, schedule.steps, impulses))
        return module._dose_effect(z, context, times, None)

    once = effect(schedule.impulses)
    assert once.abs().max() > 0
    torch.testing.assert_close(effect(2 * schedule.impulses), 2 * once)
