"""Numerics that know nothing of pandas or scikit-learn: ODE solves, trace estimators."""

from latode._numerics.solve import (
    ADAPTIVE_METHODS,
    FIXED_STEP_METHODS,
    CountedDynamics,
    SolverOptions,
    count_nfe,
    odeint_checked,
    reset_nfe,
    solver_error_from,
)

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_STEP_METHODS",
    "CountedDynamics",
    "SolverOptions",
    "count_nfe",
    "odeint_checked",
    "reset_nfe",
    "solver_error_from",
]
