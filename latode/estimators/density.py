"""Density estimators with scikit-learn's interface: a continuous normalizing flow (FFJORD with
RNODE regularisation) and the planar flow it was first compared with.

Both standardise the inputs internally and account for the log-determinant of that map, so
densities are in the user's units (see :mod:`latode.estimators._flows`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from latode._params import InstanceOf, Interval, Options, Predicate
from latode.estimators._base import COMMON_CONSTRAINTS, SCHEDULE_CONSTRAINTS
from latode.estimators._flows import FlowDensityEstimator
from latode.nn.cnf import ContinuousNormalizingFlow
from latode.nn.planar import PlanarFlow

__all__ = ["CNFDensityEstimator", "PlanarFlowDensityEstimator"]

#: ``trace="auto"`` uses the exact trace up to this dimension, Hutchinson's estimator above:
#: the exact trace costs one backward pass per dimension, the estimator one in all.
AUTO_EXACT_MAX_DIM = 5

_TRAINING_KEYS = (
    "max_epochs", "batch_size", "learning_rate", "weight_decay", "grad_clip", "patience",
    "validation_fraction", "random_state", "device", "verbose",
)


class _PenaltyWeights(Predicate):
    """A dict of RNODE weights; any dict has the right type (a bad one is a ValueError)."""

    def type_matches(self, value: Any) -> bool:
        return isinstance(value, dict)


def _penalty_weights(value: Any) -> bool:
    return isinstance(value, dict) and set(value) <= {"kinetic", "frobenius"} and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0
        for v in value.values())


def _positive_int_sequence(value: Any) -> bool:
    return (
        isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                for v in value)
    )


class CNFDensityEstimator(FlowDensityEstimator):
    """Continuous normalizing flow density estimator (FFJORD; RNODE regularisation).

    The flow dz/dt = f(t, z), an MLP vector field, carries standardised data to N(0, I) over
    t ∈ [0, T]; ``log p(x) = log N(z(T)) + ∫ tr(∂f/∂z) dt`` (Chen et al. 2018). Training
    maximises the likelihood with the exact trace or Hutchinson's unbiased estimate
    (Grathwohl et al. 2019); :meth:`score_samples` always uses the exact trace.

    Parameters
    ----------
    hidden : tuple of int, default=(64, 64, 64)
        Hidden widths of the vector field's MLP (tanh); FFJORD's toy-data field.
    time_dependent : bool
        Feed t to the vector field.
    integration_time : float
        T, the end time of the flow.
    trace : {"auto", "exact", "hutchinson"}
        Trace used in training: ``"exact"`` (d backward passes per evaluation),
        ``"hutchinson"`` (one vector-Jacobian product) or ``"auto"`` (exact up to
        :data:`AUTO_EXACT_MAX_DIM` features).
    noise : {"rademacher", "gaussian"}
        Hutchinson noise, drawn once per training solve.
    regularization : None, float or dict
        RNODE weights (Finlay et al. 2020) of the kinetic energy ∫‖f‖²dt and the Jacobian
        Frobenius norm ∫‖∂f/∂z‖²_F dt, added to the mean negative log-likelihood: a dict with
        keys ``"kinetic"`` and/or ``"frobenius"``, or one float for both. Both are integrated
        in the same solve as the density.
    solver, rtol, atol, adjoint, step_size, max_num_steps
        ODE solver settings of training (see :class:`~latode._numerics.SolverOptions`);
        ``rtol=atol=1e-3`` by default.
    eval_rtol, eval_atol : float or None, default=1e-5
        Tolerances of the solves that report densities and draw samples (score_samples,
        sample, and the validation loss that early stopping watches); ``None`` uses ``rtol``
        and ``atol``. FFJORD trains at loose tolerances and evaluates at tight ones: training
        then takes fewer solver steps, and reported densities stay accurate.
    max_epochs : int or "auto", default="auto"
        ``"auto"``: as many epochs as make :data:`~latode.estimators._flows.AUTO_TRAIN_STEPS`
        optimisation steps, so the budget is in steps whatever the number of rows; an epoch
        is then as many passes over the rows as make at least
        :data:`~latode.estimators._flows.AUTO_EPOCH_STEPS` steps.
    patience : int, None or "auto", default="auto"
        Epochs without a better held-out likelihood before training stops (the best weights
        are kept); ``"auto"``: the epochs of
        :data:`~latode.estimators._flows.AUTO_PATIENCE_STEPS` steps.
    batch_size, learning_rate, weight_decay, grad_clip, validation_fraction, random_state,
    device, verbose
        Training settings; early stopping watches the held-out negative log-likelihood.
    lr_decay : float in (0, 1] or "auto", default="auto"
        Learning-rate factor per optimisation step; 1.0 keeps the rate constant, ``"auto"``
        lowers it exponentially to a tenth of ``learning_rate`` over the ``max_epochs``
        budget.
    min_learning_rate : float, default=0.0
        Floor of that decay.
    ema_decay : float in (0, 1) or None, default=0.99
        Validate, early-stop and end with an exponential moving average of the weights over
        roughly the last ``1 / (1 - ema_decay)`` optimisation steps, as the forecasters do
        (fewer early in a fit: the decay warms up to ``ema_decay``, see
        :func:`~latode.training.trainer.ema_with_warmup`). A flow's held-out likelihood
        moves from step to step by more than the differences early stopping chooses
        between, and the average steadies it. ``None``: the last weights.

    Notes
    -----
    The defaults are FFJORD's toy settings as ``benchmarks/cnf.py`` tunes them (a 64-64-64
    field trained at tolerance 1e-3 and scored at 1e-5) with a budget of 1200 steps of 1024
    rows at a decaying rate: a fit on 2000 2-D points takes about three minutes on one core.
    Where the data are (close to) a Gaussian mixture, scikit-learn's ``GaussianMixture``
    with its component count chosen by BIC is as good and far faster; the flow pays off
    where a mixture fits badly (``docs/cnf.md``).

    Attributes
    ----------
    module_ : ContinuousNormalizingFlow
    trace_ : str
        The trace used in training.
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation.
    n_features_in_, history_, n_epochs_, best_epoch_, bad_steps_

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> cnf = CNFDensityEstimator(hidden=(16,), max_epochs=2, random_state=0).fit(X)
    >>> cnf.score_samples(X[:3]).shape, cnf.sample(4, random_state=0).shape
    ((3,), (4, 2))
    """

    _parameter_constraints = {
        **COMMON_CONSTRAINTS,
        **SCHEDULE_CONSTRAINTS,
        "max_epochs": [Options(("auto",)), *COMMON_CONSTRAINTS["max_epochs"]],
        "patience": [Options(("auto",)), *COMMON_CONSTRAINTS["patience"]],
        "hidden": [Predicate(_positive_int_sequence, "a non-empty tuple of positive ints")],
        "time_dependent": [Options((True, False))],
        "integration_time": [Interval(float, 0, None, closed="neither")],
        "trace": [Options(("auto", "exact", "hutchinson"))],
        "ema_decay": [InstanceOf(type(None)), Interval(float, 0, 1, closed="neither")],
        "eval_rtol": [InstanceOf(type(None)), *COMMON_CONSTRAINTS["rtol"]],
        "eval_atol": [InstanceOf(type(None)), *COMMON_CONSTRAINTS["atol"]],
        "noise": [Options(("rademacher", "gaussian"))],
        "regularization": [
            InstanceOf(type(None)), Interval(float, 0, None),
            _PenaltyWeights(_penalty_weights, "a dict mapping 'kinetic' and/or 'frobenius' "
                                              "to non-negative floats"),
        ],
    }

    def __init__(self, hidden=(64, 64, 64), *, time_dependent=True, integration_time=1.0,
                 trace="auto", noise="rademacher", regularization=None, solver="dopri5",
                 rtol=1e-3, atol=1e-3, eval_rtol=1e-5, eval_atol=1e-5, adjoint=False,
                 step_size=None, max_num_steps=1000, max_epochs="auto", batch_size=1024,
                 learning_rate=1e-2, lr_decay="auto", min_learning_rate=0.0,
                 ema_decay=0.99, weight_decay=0.0, grad_clip=None, patience="auto",
                 validation_fraction=0.1, random_state=None, device="auto", verbose=0):
        self.hidden = hidden
        self.time_dependent = time_dependent
        self.integration_time = integration_time
        self.trace = trace
        self.noise = noise
        self.regularization = regularization
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.eval_rtol = eval_rtol
        self.eval_atol = eval_atol
        self.adjoint = adjoint
        self.step_size = step_size
        self.max_num_steps = max_num_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.min_learning_rate = min_learning_rate
        self.ema_decay = ema_decay
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _regularization_weights(self) -> tuple[float, float]:
        """(kinetic, frobenius) weights from the validated ``regularization``."""
        reg = self.regularization
        if reg is None or not isinstance(reg, dict):
            return (float(reg or 0.0),) * 2
        return float(reg.get("kinetic", 0.0)), float(reg.get("frobenius", 0.0))

    def _prepare_fit(self, n_features: int) -> None:
        if self.trace == "auto":
            self.trace_ = "exact" if n_features <= AUTO_EXACT_MAX_DIM else "hutchinson"
        else:
            self.trace_ = self.trace

    def _build_module(self, n_features: int) -> ContinuousNormalizingFlow:
        return ContinuousNormalizingFlow(
            n_features, tuple(int(h) for h in self.hidden),
            time_dependent=self.time_dependent, integration_time=float(self.integration_time),
        )

    def _batch_loss(self, module: ContinuousNormalizingFlow, u: torch.Tensor, step: int):
        kinetic_weight, frobenius_weight = self._regularization_weights()
        regularize = kinetic_weight > 0 or frobenius_weight > 0
        log_prob, kinetic, frobenius = module(
            u, self._solver_options(), trace=self.trace_, noise_kind=self.noise,
            regularize=regularize,
        )
        nll = -log_prob.mean()
        if not regularize:
            return nll, {"nll": float(nll.detach())}
        loss = nll + kinetic_weight * kinetic.mean() + frobenius_weight * frobenius.mean()
        return loss, {"nll": float(nll.detach()), "kinetic": float(kinetic.detach().mean()),
                      "frobenius": float(frobenius.detach().mean())}

    def _evaluation_options(self):
        """Solver settings of scoring and sampling: no adjoint, the evaluation tolerances."""
        return self._solver_options(
            adjoint=False,
            rtol=float(self.rtol if self.eval_rtol is None else self.eval_rtol),
            atol=float(self.atol if self.eval_atol is None else self.eval_atol),
        )

    def _log_prob(self, module: ContinuousNormalizingFlow, u: torch.Tensor) -> torch.Tensor:
        # The exact trace: reported densities carry no estimator noise.
        return module(u, self._evaluation_options(), trace="exact")[0]

    def _inverse(self, module: ContinuousNormalizingFlow, z: torch.Tensor) -> torch.Tensor:
        return module.sample(z, self._evaluation_options())

    def _extra_state(self) -> dict[str, Any]:
        return {"trace_": self.trace_}


class PlanarFlowDensityEstimator(FlowDensityEstimator):
    """Planar normalizing flow density estimator (Rezende & Mohamed 2015).

    ``n_layers`` planar layers carry standardised data to N(0, I); the density is exact and
    needs no ODE solve, sampling inverts each layer by a scalar root search. This is the
    discrete baseline of Chen et al. 2018; a flow of K layers on d features has K (2d + 1)
    parameters.

    Parameters
    ----------
    n_layers : int
        Number of planar layers K.
    max_epochs, batch_size, learning_rate, weight_decay, grad_clip, patience,
    validation_fraction, random_state, device, verbose
        Training settings; early stopping watches the held-out negative log-likelihood.
    lr_decay : float in (0, 1] or "auto", default=1.0
        Learning-rate factor per optimisation step; 1.0 keeps the rate constant, ``"auto"``
        lowers it exponentially to a tenth of ``learning_rate`` over the ``max_epochs``
        budget.
    min_learning_rate : float, default=0.0
        Floor of that decay.

    Attributes
    ----------
    module_ : PlanarFlow
    mean_, scale_ : ndarray of shape (n_features,)
    n_features_in_, history_, n_epochs_, best_epoch_, bad_steps_

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> flow = PlanarFlowDensityEstimator(n_layers=4, max_epochs=2, random_state=0).fit(X)
    >>> flow.score_samples(X[:3]).shape, flow.sample(4, random_state=0).shape
    ((3,), (4, 2))
    """

    _parameter_constraints = {
        **{k: COMMON_CONSTRAINTS[k] for k in _TRAINING_KEYS},
        **SCHEDULE_CONSTRAINTS,
        "n_layers": [Interval(int, 1, None)],
    }

    def __init__(self, n_layers=32, *, max_epochs=100, batch_size=512, learning_rate=1e-2,
                 lr_decay=1.0, min_learning_rate=0.0, weight_decay=0.0, grad_clip=None,
                 patience=10, validation_fraction=0.1, random_state=None, device="auto",
                 verbose=0):
        self.n_layers = n_layers
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.min_learning_rate = min_learning_rate
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _build_module(self, n_features: int) -> PlanarFlow:
        return PlanarFlow(n_features, int(self.n_layers))

    def _batch_loss(self, module: PlanarFlow, u: torch.Tensor, step: int):
        return -module.log_prob(u).mean()

    def _log_prob(self, module: PlanarFlow, u: torch.Tensor) -> torch.Tensor:
        return module.log_prob(u)

    def _inverse(self, module: PlanarFlow, z: torch.Tensor) -> torch.Tensor:
        return module.inverse(z)
