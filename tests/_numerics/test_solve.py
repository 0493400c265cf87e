"""The torchdiffeq wrapper: accuracy, NFE counting, and failures turned into SolverError."""

import math

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


def test_time_budget_raises_solver_error():
    class Slow(nn.Module):
        def forward(self, t, z):
            import time

            time.sleep(0.02)
            return -z

    with pytest.raises(SolverError, match="time budget"):
        odeint_checked(CountedDynamics(Slow()), torch.ones(1), torch.linspace(0, 1, 50),
                       SolverOptions(method="euler", time_budget=0.1))


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown ODE solver 'rk45'"):
        SolverOptions(method="rk45")
