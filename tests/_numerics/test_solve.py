"""The torchdiffeq wrapper: accuracy, NFE counting, and failures turned into SolverError."""

import math
import time

import pytest
import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, count_nfe, odeint_checked, reset_nfe
from latode.exceptions import LatodeError, SolverError


class Rotation(nn.Module):
    """dz/dt = A z with A a rotation generator: z(t) = (cos t, sin t) from (1, 0)."""

    def forward(self, t, z):
        return torch.stack([-z[..., 1], z[..., 0]], dim=-1)


class Stiff(nn.Module):
    def forward(self, t, z):
        return -1e8 * (z - torch.cos(t))


@pytest.mark.parametrize("method, tol", [("dopri5", 1e-7), ("rk4", 1e-6), ("bosh3", 1e-5)])
def test_solution_matches_the_analytic_rotation(method, tol):
    f = CountedDynamics(Rotation())
    t = torch.linspace(0, 2 * math.pi, 9, dtype=torch.float64)
    options = SolverOptions(method=method, rtol=1e-9, atol=1e-10,
                            step_size=1e-3 if method == "rk4" else None)
    z = odeint_checked(f, torch.tensor([1.0, 0.0], dtype=torch.float64), t, options)
    torch.testing.assert_close(z, torch.stack([t.cos(), t.sin()], -1), atol=tol, rtol=0)
    assert f.nfe > 0 and count_nfe(nn.Sequential(f)) == f.nfe
    reset_nfe(nn.Sequential(f))
    assert f.nfe == 0


def test_nfe_counts_every_evaluation_of_a_fixed_step_solver():
    f = CountedDynamics(Rotation())
    odeint_checked(f, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]),
                   SolverOptions(method="rk4", step_size=0.1))
    assert f.nfe == 10 * 4  # ten steps of four stages


def test_step_budget_raises_solver_error_with_remedy():
    f = CountedDynamics(Stiff())
    with pytest.raises(SolverError, match="max_num_steps") as info:
        odeint_checked(f, torch.zeros(1), torch.tensor([0.0, 1.0]),
                       SolverOptions(rtol=1e-8, atol=1e-8, max_num_steps=20))
    assert "fixed-step solver" in str(info.value)
    assert isinstance(info.value, LatodeError) and isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("adjoint", [False, True])
def test_a_fixed_step_grid_beyond_the_cap_is_refused_before_it_is_built(adjoint):
    f = CountedDynamics(Rotation())
    options = SolverOptions(method="rk4", step_size=0.01, adjoint=adjoint, max_num_steps=10)
    z0 = torch.tensor([1.0, 0.0], requires_grad=adjoint)
    odeint_checked(f, z0, torch.tensor([0.0, 1.0]), options)  # 100 steps: max_num_steps
    # bounds adaptive solves only
    with pytest.raises(SolverError, match=r"needs 1e\+14 steps, over the 1e\+07 a fixed-step"):
        odeint_checked(f, z0, torch.tensor([0.0, 1e12]), options)  # ~4e14 bytes of grid
    assert f.nfe == 100 * 4  # the refused solve evaluated nothing


def test_time_budget_raises_solver_error():
    class Slow(nn.Module):
        def forward(self, t, z):
            time.sleep(0.02)
            return -z

    with pytest.raises(SolverError, match="time budget"):
        odeint_checked(CountedDynamics(Slow()), torch.ones(1), torch.linspace(0, 1, 50),
                       SolverOptions(method="euler", time_budget=0.1))


def test_time_budget_reaches_counted_dynamics_wrapped_in_another_module():
    # The ODE-RNN solves a gap-rescaled field around its CountedDynamics.
    class Slow(nn.Module):
        def forward(self, t, z):
            time.sleep(0.02)
            return -z

    class Rescaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = CountedDynamics(Slow())

        def forward(self, t, z):
            return 3.0 * self.inner(t, z)

    field = Rescaled()
    with pytest.raises(SolverError, match="time budget"):
        odeint_checked(field, torch.ones(1), torch.linspace(0, 1, 50),
                       SolverOptions(method="euler", time_budget=0.1))
    assert field.inner._deadline is None  # retired after the solve


class SlowDecay(nn.Module):
    """dz/dt = -w z, sleeping ``delay`` seconds per evaluation (set between forward and
    backward, so only the adjoint's backward solve is slow)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.delay = 0.0

    def forward(self, t, z):
        time.sleep(self.delay)
        if isinstance(z, tuple):
            return tuple(-self.w * part for part in z)
        return -self.w * z


ADJOINT_RK4 = dict(method="rk4", step_size=0.1, adjoint=True)


@pytest.mark.parametrize("tuple_state", [False, True])
def test_time_budget_covers_the_adjoint_backward_solve(tuple_state):
    field = SlowDecay()
    f = CountedDynamics(field)
    y0 = (torch.ones(2), torch.ones(3)) if tuple_state else torch.ones(2)
    solution = odeint_checked(f, y0, torch.tensor([0.0, 1.0]),
                              SolverOptions(**ADJOINT_RK4, time_budget=0.3))
    forward_nfe = f.nfe
    loss = sum(part[-1].sum() for part in solution) if tuple_state else solution[-1].sum()
    field.delay = 0.05  # the backward solve needs ~40 evaluations: ~2 s, past the budget
    with pytest.raises(SolverError, match="time budget"):
        loss.backward()
    assert forward_nfe == 40 and f.nfe - forward_nfe < 20  # stopped early, not at the end


def test_a_backward_solve_within_budget_passes_and_leaves_no_deadline():
    f = CountedDynamics(SlowDecay())
    solution = odeint_checked(f, torch.ones(2), torch.tensor([0.0, 1.0]),
                              SolverOptions(**ADJOINT_RK4, time_budget=30.0))
    solution[-1].sum().backward()
    assert f.nfe > 40 and f._deadline is None
    # d/dw of sum(exp(-w) z0) at w = 1, z0 = (1, 1): -2 exp(-1)
    torch.testing.assert_close(f.func.w.grad, torch.tensor([-2 * math.exp(-1)]), atol=1e-5,
                               rtol=0)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown ODE solver 'rk45'"):
        SolverOptions(method="rk45")


class Tanh(nn.Module):
    """A small nonlinear dynamics with parameters, so that gradients are non-trivial."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 3)

    def forward(self, t, z):
        return torch.tanh(self.linear(z)) * torch.cos(t)


@pytest.mark.parametrize("method", ["euler", "rk4", "explicit_adams"])
@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("step_size", [0.07, 0.25, None])
def test_fixed_step_solve_is_bitwise_torchdiffeqs_own(method, adjoint, step_size):
    # latode hands torchdiffeq a lazy time grid instead of step_size; solutions and gradients
    # (forward and, with the adjoint, the backward solve in reversed time) must be the very
    # same numbers as torchdiffeq's own step_size path.
    from torchdiffeq import odeint, odeint_adjoint

    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    y0 = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)

    def run(solve):
        f = Tanh().double()
        y = solve(f)
        y.square().sum().backward()
        return y.detach(), [p.grad for p in f.parameters()]

    options = {} if step_size is None else {"step_size": step_size}
    torchdiffeq_solve = odeint_adjoint if adjoint else odeint
    kwargs = dict(adjoint_options=options) if adjoint else {}
    expected = run(lambda f: torchdiffeq_solve(f, y0, t, method=method, options=options,
                                               **kwargs))
    mine = run(lambda f: odeint_checked(
        f, y0, t, SolverOptions(method=method, step_size=step_size, adjoint=adjoint)))
    torch.testing.assert_close(mine[0], expected[0], rtol=0, atol=0)
    for got, want in zip(mine[1], expected[1]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_fixed_step_solve_holds_no_tensor_per_step():
    # Iterating a tensor time grid would keep 2 * n_steps 0-d tensors alive for the whole
    # solve; the number of live tensors at the last step must not grow with the step count.
    import gc

    class Census(nn.Module):
        def __init__(self, last_step_start):
            super().__init__()
            self.last_step_start = last_step_start
            self.live = None

        def forward(self, t, z):
            if float(t) >= self.last_step_start:
                self.live = sum(type(o) is torch.Tensor for o in gc.get_objects())
            return -z

    live = {}
    for n_steps in (10, 400):
        f = Census(last_step_start=1.0 - 1.5 / n_steps)
        odeint_checked(f, torch.ones(2), torch.tensor([0.0, 1.0]),
                       SolverOptions(method="euler", step_size=1.0 / n_steps))
        live[n_steps] = f.live
    assert live[400] - live[10] < 20, live
