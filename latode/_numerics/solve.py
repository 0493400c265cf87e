"""The one place latode calls torchdiffeq: options, NFE counting and solver failures.

torchdiffeq does the solving and the adjoint. This module adds three things a product needs:

* :class:`SolverOptions` — typed solver settings (method, tolerances, adjoint on/off, a step
  budget on every adaptive solve and an optional wall-clock budget);
* :class:`CountedDynamics` — a wrapper that counts function evaluations (NFE). It stores only
  Python integers, never per-step tensors, so the adjoint's memory stays flat in depth;
* :func:`odeint_checked` — calls ``odeint`` or ``odeint_adjoint`` and turns torchdiffeq's bare
  ``AssertionError`` (step underflow, ``max_num_steps`` exceeded, non-finite state) into a
  :class:`~latode.exceptions.SolverError` whose message says what to change.

Fixed-step methods get their time grid through torchdiffeq's ``grid_constructor`` option as a
:class:`_LazyTimeGrid` rather than through ``step_size``: the points are the same, but they are
handed out one at a time instead of being unbound into ``2 * n_steps`` tensors that live for
the whole solve, so the adjoint's memory does not grow with the number of steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from latode.exceptions import SolverError

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_STEP_METHODS",
    "SolverOptions",
    "CountedDynamics",
    "odeint_checked",
    "count_nfe",
    "reset_nfe",
    "solver_error_from",
]

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_STEP_METHODS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")

_REMEDY = (
    "Try looser tolerances (rtol/atol), a fixed-step solver (solver='rk4' with a step_size), "
    "a larger max_num_steps, or a smaller learning_rate."
)


@dataclass(frozen=True)
class SolverOptions:
    """Settings of one ODE solve.

    Parameters
    ----------
    method : str
        A torchdiffeq method: adaptive (``"dopri5"``, ...) or fixed-step (``"rk4"``, ...).
    rtol, atol : float
        Relative and absolute tolerances of adaptive methods.
    adjoint : bool
        Backpropagate with the adjoint method (memory constant in the number of steps)
        instead of through the solver's operations.
    step_size : float or None
        Step of fixed-step methods; ``None`` steps between the requested times only.
    max_num_steps : int
        Step budget of an adaptive solve; exceeding it raises :class:`SolverError`. (A
        fixed-step grid has its own cap, :data:`MAX_FIXED_STEPS`.)
    time_budget : float or None
        Wall-clock seconds one solve may take: the forward solve, and with ``adjoint`` the
        backward solve again, counted from when ``backward`` reaches it.
    error_norm : callable or None
        Norm of the scaled local error that adaptive methods keep below 1: called with the
        state's tuple of tensors (or the tensor) and returning a scalar tensor. ``None`` is
        torchdiffeq's default (RMS, maximum over the components of a tuple state). Use it to
        leave auxiliary integrals, such as regularisers, out of step-size control. The
        adjoint's backward solve applies it to the state and its adjoint.
    """

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-4
    adjoint: bool = False
    step_size: float | None = None
    max_num_steps: int = 10_000
    time_budget: float | None = None
    error_norm: Callable | None = None

    def __post_init__(self) -> None:
        if self.method not in ADAPTIVE_METHODS + FIXED_STEP_METHODS:
            raise ValueError(
                f"Unknown ODE solver {self.method!r}; use one of "
                f"{', '.join(ADAPTIVE_METHODS + FIXED_STEP_METHODS)}."
            )

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    def torchdiffeq_options(self) -> dict:
        """The ``options`` dict torchdiffeq expects for this method.

        Fixed-step methods get a ``grid_constructor`` (:func:`_fixed_time_grid`) that builds
        torchdiffeq's own ``step_size`` grid, point for point, as a :class:`_LazyTimeGrid`.
        """
        if self.adaptive:
            options = {"max_num_steps": int(self.max_num_steps)}
            if self.error_norm is not None:
                options["norm"] = self.error_norm
            return options
        step = None if self.step_size is None else float(self.step_size)
        return {"grid_constructor": _fixed_time_grid(step)}


class _LazyTimeGrid:
    """A 1-D tensor of time points that hands them out one at a time.

    torchdiffeq's fixed-grid loop is ``for t0, t1 in zip(grid[:-1], grid[1:])``. Iterating a
    tensor unbinds it: a solve of ``n`` steps creates ``2 * n`` 0-d tensors up front and keeps
    them until it ends (the adjoint's peak memory grew by about 1.1 MB per 1000 steps for
    them, ``benchmarks/odenet.py``). Iterating this sequence creates each point when the loop reaches
    it, as the same view of the same tensor, so the solution is bit for bit unchanged.

    It supports what torchdiffeq does with a grid: ``len``, integer indexing (a 0-d tensor),
    slicing (another lazy grid, sharing the storage), iteration and negation (the adjoint's
    backward solve runs in reversed time).

    Parameters
    ----------
    points : Tensor, shape (n,)

    Examples
    --------
    >>> grid = _LazyTimeGrid(torch.tensor([0.0, 0.5, 1.0]))
    >>> [float(a) for a in grid[1:]], float((-grid)[-1]), len(grid)
    ([0.5, 1.0], -1.0, 3)
    """

    __slots__ = ("points",)

    def __init__(self, points: torch.Tensor):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int | slice) -> torch.Tensor | _LazyTimeGrid:
        item = self.points[index]
        return _LazyTimeGrid(item) if isinstance(index, slice) else item

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self.points[i] for i in range(len(self.points)))

    def __neg__(self) -> _LazyTimeGrid:
        return _LazyTimeGrid(-self.points)


#: The most steps a fixed-step grid may have (its float32 points alone take 40 MB, and
#: four-stage steps at that count take hours): a far-off time asks for more than any
#: machine holds, and gets a SolverError instead of an allocation failure.
MAX_FIXED_STEPS = 10_000_000


def _fixed_time_grid(step_size: float | None) -> Callable:
    """A torchdiffeq ``grid_constructor``: steps of ``step_size`` from ``t[0]`` to ``t[-1]``.

    The points are torchdiffeq's own ``step_size`` grid (``t[0] + k * step_size`` for ``k``
    up to ``ceil((t[-1] - t[0]) / step_size)``, the last replaced by ``t[-1]``); with
    ``step_size=None`` they are the requested times ``t``. Either way they come as a
    :class:`_LazyTimeGrid`. A grid of more than :data:`MAX_FIXED_STEPS` steps raises
    :class:`~latode.exceptions.SolverError` before it is allocated (a far-off time would
    otherwise ask for terabytes).

    Examples
    --------
    >>> grid = _fixed_time_grid(0.4)(None, None, torch.tensor([0.0, 1.0]))
    >>> [round(float(a), 6) for a in grid]
    [0.0, 0.4, 0.8, 1.0]
    """

    def construct(func, y0, t: torch.Tensor) -> _LazyTimeGrid:
        if step_size is None:
            return _LazyTimeGrid(t)
        if t[0] > t[-1]:
            # A solve backwards in time (the adjoint's): torchdiffeq negates the times to
            # ascending ones, then hands a user's constructor the original, descending ones
            # and negates what it returns; its own step_size grid is built on the ascending
            # times, so build it there too.
            return -construct(func, y0, -t)
        # The same arithmetic as torchdiffeq's step_size grid, so that solutions match it.
        n_points = torch.ceil((t[-1] - t[0]) / step_size + 1).item()
        if n_points - 1 > MAX_FIXED_STEPS:
            raise SolverError(
                f"A fixed-step solve from t={float(t[0]):.6g} to {float(t[-1]):.6g} with "
                f"step_size={step_size:g} needs {n_points - 1:.3g} steps, over the "
                f"{MAX_FIXED_STEPS:.0e} a fixed-step grid may have: ask for nearer times, "
                "raise step_size, or use an adaptive solver (e.g. 'dopri5')."
            )
        points = torch.arange(0, n_points, dtype=t.dtype, device=t.device) * step_size + t[0]
        points[-1] = t[-1]
        return _LazyTimeGrid(points)

    return construct


class CountedDynamics(nn.Module):
    """Wrap dynamics ``f(t, y)`` and count its evaluations.

    Only integers are kept (``nfe``), so wrapping costs no memory per solver step.

    Parameters
    ----------
    func : nn.Module
        The dynamics, called as ``func(t, y)``.

    Examples
    --------
    >>> class Decay(nn.Module):
    ...     def forward(self, t, y):
    ...         return -y
    >>> f = CountedDynamics(Decay())
    >>> _ = f(torch.tensor(0.0), torch.zeros(1, 2))
    >>> f.nfe
    1
    """

    def __init__(self, func: nn.Module):
        super().__init__()
        self.func = func
        self.nfe = 0
        self._deadline: float | None = None

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise SolverError(
                f"The ODE solve ran past its time budget after {self.nfe} function "
                f"evaluations. {_REMEDY}"
            )
        return self.func(t, y)


def count_nfe(module: nn.Module) -> int:
    """Total evaluations counted by every :class:`CountedDynamics` inside ``module``."""
    return sum(m.nfe for m in module.modules() if isinstance(m, CountedDynamics))


def reset_nfe(module: nn.Module) -> None:
    """Set the counters of every :class:`CountedDynamics` inside ``module`` to zero."""
    for m in module.modules():
        if isinstance(m, CountedDynamics):
            m.nfe = 0


def solver_error_from(error: BaseException) -> SolverError | None:
    """The :class:`SolverError` that torchdiffeq's ``error`` stands for, or ``None``.

    torchdiffeq reports solver failures as bare ``AssertionError``; the adjoint's backward
    solve raises them from ``loss.backward()``, so the trainer translates there too.
    """
    if isinstance(error, SolverError):
        return error
    if not isinstance(error, AssertionError):
        return None
    text = str(error)
    if "underflow in dt" in text:
        what = "The ODE solver's step size underflowed (the dynamics are too stiff)"
    elif "max_num_steps exceeded" in text:
        what = "The ODE solver exceeded its step budget (max_num_steps)"
    elif "non-finite values" in text:
        what = "The ODE state became non-finite (NaN or inf) during the solve"
    else:
        return None
    return SolverError(f"{what}: {text.splitlines()[0][:200]}. {_REMEDY}")


def odeint_checked(
    func: CountedDynamics | Callable,
    y0: torch.Tensor,
    t: torch.Tensor,
    options: SolverOptions,
) -> torch.Tensor:
    """Solve ``dy/dt = func(t, y)`` from ``y0`` at times ``t`` with torchdiffeq.

    Parameters
    ----------
    func : nn.Module
        Dynamics; must be an ``nn.Module`` when ``options.adjoint`` is true (its parameters
        receive the adjoint gradients).
    y0 : Tensor, shape (..., d)
        State at ``t[0]``.
    t : Tensor, shape (T,)
        Strictly monotonic times.
    options : SolverOptions

    Returns
    -------
    Tensor, shape (T, ..., d)

    Raises
    ------
    SolverError
        On step underflow, an exhausted step or time budget, or a non-finite state.

    Examples
    --------
    >>> class Decay(nn.Module):
    ...     def forward(self, t, y):
    ...         return -y
    >>> y = odeint_checked(Decay(), torch.ones(1), torch.tensor([0.0, 1.0]),
    ...                    SolverOptions(rtol=1e-8, atol=1e-9))
    >>> round(float(y[-1]), 6)  # exp(-1)
    0.367879
    """
    # The counter that enforces time_budget: ``func`` itself, or one it wraps (a rescaled
    # field such as the ODE-RNN's gap-scaled dynamics).
    counted = func if isinstance(func, CountedDynamics) else next(
        (m for m in func.modules() if isinstance(m, CountedDynamics)), None
    ) if isinstance(func, nn.Module) else None
    if counted is not None:
        # Always set: this also retires a backward deadline left by a failed adjoint solve.
        counted._deadline = (None if options.time_budget is None
                             else time.perf_counter() + options.time_budget)
    solver_kwargs = dict(
        rtol=options.rtol,
        atol=options.atol,
        method=options.method,
        options=options.torchdiffeq_options(),
    )
    try:
        if options.adjoint:
            if not isinstance(func, nn.Module):
                raise TypeError("adjoint=True needs the dynamics to be a torch.nn.Module")
            solution = odeint_adjoint(
                func,
                y0,
                t,
                # torchdiffeq wraps a custom forward norm into the adjoint's own norm.
                adjoint_options={k: v for k, v in options.torchdiffeq_options().items()
                                 if k != "norm"},
                **solver_kwargs,
            )
            if options.time_budget is not None and counted is not None:
                _budget_backward_solve(counted, solution, options.time_budget)
            return solution
        return odeint(func, y0, t, **solver_kwargs)
    except AssertionError as error:
        translated = solver_error_from(error)
        if translated is None:
            raise
        raise translated from error
    finally:
        if counted is not None:
            counted._deadline = None


def _budget_backward_solve(func: CountedDynamics, solution, budget: float) -> None:
    """Give the adjoint's backward solve of ``solution`` its own ``budget`` seconds.

    The forward deadline is gone by the time ``backward`` runs; hooks on torchdiffeq's
    autograd node start a fresh one when the backward solve starts and retire it when the
    solve ends (only callables, nothing per step is stored).
    """
    node = _adjoint_node(solution)
    if node is None:  # nothing requires a gradient: there is no backward solve
        return

    def start(grad_outputs):
        func._deadline = time.perf_counter() + budget

    def stop(grad_inputs, grad_outputs):
        func._deadline = None

    node.register_prehook(start)
    node.register_hook(stop)


def _adjoint_node(solution) -> torch.autograd.graph.Node | None:
    """torchdiffeq's ``OdeintAdjointMethod`` node behind ``solution``; a tuple state reaches
    it through the view and slice that split the flat solution."""
    tensors = solution if isinstance(solution, tuple) else (solution,)
    nodes = [tensor.grad_fn for tensor in tensors if tensor.grad_fn is not None]
    for _ in range(3):
        for node in nodes:
            if node.name() == "OdeintAdjointMethodBackward":
                return node
        nodes = [parent for node in nodes for parent, _ in node.next_functions
                 if parent is not None]
    return None
