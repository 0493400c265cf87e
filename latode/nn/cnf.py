"""Continuous normalizing flows (Chen et al. 2018; FFJORD, Grathwohl et al. 2019) with the
RNODE regularisers (Finlay et al. 2020), as torch modules.

Data x is carried to the base distribution N(0, I) by dz/dt = f(t, z) from t = 0 to t = T.
Along the way the augmented state integrates, in one solve,

.. math::

    \\frac{d}{dt}\\begin{pmatrix} z \\\\ \\ell \\\\ E \\\\ F \\end{pmatrix}
    = \\begin{pmatrix} f(t, z) \\\\ \\operatorname{tr}(\\partial f / \\partial z) \\\\
      \\lVert f \\rVert^2 \\\\ \\lVert \\partial f / \\partial z \\rVert_F^2 \\end{pmatrix},
    \\qquad \\log p(x) = \\log \\mathcal N(z(T); 0, I) + \\ell(T),

where E (kinetic energy) and F (Jacobian Frobenius norm) are RNODE's penalties; they are
integrated only when asked for, left out of the solver's step-size control, and, being part
of the solver state, add no per-step tensors under the adjoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode._numerics.trace import exact_divergence, hutchinson_divergence, sample_noise
from latode.nn.dynamics import MLPDynamics

__all__ = [
    "CNFDynamics",
    "ContinuousNormalizingFlow",
    "density_error_norm",
    "standard_normal_log_prob",
]

TRACE_METHODS = ("exact", "hutchinson")


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row.

    Parameters
    ----------
    z : Tensor, shape (n, d)

    Returns
    -------
    Tensor, shape (n,)
    """
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def density_error_norm(state: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Solver error norm over (z, ℓ) only: RMS per component, maximum over the two.

    The RNODE integrals only feed a penalty; letting their accuracy set the step size would
    spend evaluations on them (FFJORD gives them infinite tolerance for the same reason).
    """
    return torch.stack([part.pow(2).mean().sqrt() for part in state[:2]]).max()


class CNFDynamics(nn.Module):
    """Augmented dynamics of a CNF around a vector field ``field(t, z)``.

    Called with a tensor state ``z`` it returns ``f(t, z)`` (used to sample); called with a
    tuple ``(z, ell)`` or ``(z, ell, E, F)`` it returns their time derivatives (see the module
    docstring). How the trace is computed is set by :meth:`configure` before each solve.

    Parameters
    ----------
    field : nn.Module
        The vector field, ``field(t, z)`` with ``z`` of shape (n, d) returning (n, d).

    Examples
    --------
    >>> class Triple(nn.Module):
    ...     def forward(self, t, z):
    ...         return 3.0 * z  # divergence 3 * d = 6
    >>> dyn = CNFDynamics(Triple())
    >>> z = torch.randn(4, 2)
    >>> _, dtrace = dyn(torch.tensor(0.0), (z, torch.zeros(4)))
    >>> dtrace.tolist()
    [6.0, 6.0, 6.0, 6.0]
    """

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        self.trace = "exact"
        # Hutchinson noise stays fixed through a solve, including the adjoint's backward solve
        # that runs later in loss.backward(); it is replaced at the next configure().
        self.noise: torch.Tensor | None = None

    def configure(self, trace: str = "exact", noise: torch.Tensor | None = None) -> None:
        """Choose the trace for the next solve: ``"exact"``, or ``"hutchinson"`` with ``noise``."""
        if trace not in TRACE_METHODS:
            raise ValueError(f"Unknown trace {trace!r}; use one of {', '.join(TRACE_METHODS)}.")
        if trace == "hutchinson" and noise is None:
            raise ValueError("trace='hutchinson' needs a noise tensor of the state's shape.")
        self.trace = trace
        self.noise = noise if trace == "hutchinson" else None

    def forward(self, t: torch.Tensor, state):
        if isinstance(state, torch.Tensor):
            return self.field(t, state)
        z = state[0]
        regularize = len(state) == 4
        # Derivatives are graphed only when the caller records gradients (training, and the
        # adjoint's backward solve); evaluation under no_grad builds and frees a local graph.
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            f = self.field(t, z)
            if self.trace == "exact":
                trace, frobenius = exact_divergence(f, z, create_graph=create_graph)
            else:
                trace, frobenius = hutchinson_divergence(
                    f, z, self.noise, create_graph=create_graph
                )
        outputs = (f, trace)
        if regularize:
            outputs = outputs + (f.pow(2).sum(-1), frobenius)
        if not create_graph:
            outputs = tuple(o.detach() for o in outputs)
        return outputs


class ContinuousNormalizingFlow(nn.Module):
    """A CNF with an MLP vector field and a standard normal base distribution.

    Parameters
    ----------
    dim : int
        Data dimension d.
    hidden : sequence of int
        Hidden widths of the vector field's MLP (tanh activations).
    time_dependent : bool
        Feed t to the vector field.
    integration_time : float
        T, the end of the flow. The last layer starts at zero, so the flow starts as the
        identity and the first solves are cheap.

    Examples
    --------
    >>> flow = ContinuousNormalizingFlow(2, (8,))
    >>> options = SolverOptions(rtol=1e-5, atol=1e-5)
    >>> log_prob, _, _ = flow(torch.zeros(3, 2), options)
    >>> [round(v, 4) for v in log_prob.tolist()]  # identity flow: log N(0; 0, I) = -log 2π
    [-1.8379, -1.8379, -1.8379]
    >>> flow.sample(torch.randn(5, 2), options).shape
    torch.Size([5, 2])
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), time_dependent: bool = True,
                 integration_time: float = 1.0, field: nn.Module | None = None):
        super().__init__()
        if field is None:
            field = MLPDynamics(dim, tuple(hidden), time_dependent=time_dependent)
            last = field.net[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.dim = dim
        self.integration_time = float(integration_time)
        self.dynamics = CountedDynamics(CNFDynamics(field))

    @property
    def cnf_dynamics(self) -> CNFDynamics:
        return self.dynamics.func

    def _times(self, reverse: bool, like: torch.Tensor) -> torch.Tensor:
        times = torch.tensor([0.0, self.integration_time], dtype=like.dtype, device=like.device)
        return times.flip(0) if reverse else times

    def forward(
        self,
        x: torch.Tensor,
        options: SolverOptions,
        *,
        trace: str = "exact",
        noise_kind: str = "rademacher",
        regularize: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """log p(x), and the RNODE penalties when ``regularize``, from one augmented solve.

        Parameters
        ----------
        x : Tensor, shape (n, d)
        options : SolverOptions
        trace : {"exact", "hutchinson"}
            Hutchinson noise is drawn from torch's global generator, once per call.
        noise_kind : {"rademacher", "gaussian"}
        regularize : bool
            Also integrate the kinetic energy ∫‖f‖²dt and ∫‖∂f/∂z‖²_F dt.

        Returns
        -------
        log_prob : Tensor, shape (n,)
        kinetic, frobenius : Tensor, shape (n,), or None when not ``regularize``
        """
        noise = None
        if trace == "hutchinson":
            noise = sample_noise(x.shape, noise_kind, dtype=x.dtype, device=x.device)
        self.cnf_dynamics.configure(trace, noise)
        zeros = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        state = (x, zeros) + ((zeros, zeros) if regularize else ())
        if regularize and options.adaptive and options.error_norm is None:
            options = dataclasses.replace(options, error_norm=density_error_norm)
        solution = odeint_checked(self.dynamics, state, self._times(False, x), options)
        final = [s[-1] for s in solution]
        log_prob = standard_normal_log_prob(final[0]) + final[1]
        if regularize:
            return log_prob, final[2], final[3]
        return log_prob, None, None

    def transform(self, x: torch.Tensor, options: SolverOptions) -> torch.Tensor:
        """z(T): data carried to the base space (no log-density)."""
        return odeint_checked(self.dynamics, x, self._times(False, x), options)[-1]

    def sample(self, z: torch.Tensor, options: SolverOptions) -> torch.Tensor:
        """x = z(0) from base draws z(T) = ``z``, by solving the flow backwards in time.

        Parameters
        ----------
        z : Tensor, shape (n, d)
            Draws of N(0, I).

        Returns
        -------
        Tensor, shape (n, d)
        """
        return odeint_checked(self.dynamics, z, self._times(True, z), options)[-1]
