"""What latode's flow density estimators share: input checks, standardisation with its
log-determinant, training through the shared trainer, scoring, sampling and persistence.

Inputs are standardised, x -> u = (x - mean) / scale, and the log-determinant of that map,
-Σ log scale, is added back, so densities are in the user's units:
``log p_x(x) = log p_u(u) - Σ_j log scale_j``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import DensityMixin

from latode.estimators._base import TorchEstimator, resolve_device, seed_from
from latode.estimators._inputs import check_positive_int, check_rows
from latode.estimators._schedule import resolve_lr_decay

__all__ = ["FlowDensityEstimator", "AUTO_TRAIN_STEPS", "AUTO_EPOCH_STEPS",
           "AUTO_PATIENCE_STEPS", "AUTO_FINAL_LR_FRACTION"]

_CHUNK = 4096  # rows per evaluation solve, to bound memory

#: The smallest standard deviation of a column: its square is float64's smallest normal.
_MIN_SCALE = math.sqrt(np.finfo(np.float64).tiny)

#: Most memory the draws of one ``sample`` call may take (float64, as returned).
MAX_SAMPLE_BYTES = 2 * 1024**3

#: ``max_epochs="auto"``: as many epochs as give this many optimisation steps, so that a
#: small data set is not trained less and a large one not for longer than it needs.
AUTO_TRAIN_STEPS = 1200
#: ``max_epochs="auto"``: an epoch is as many passes over the training rows as make at least
#: this many steps, so the held-out likelihood (a tight solve) is not computed every step or
#: two on small data.
AUTO_EPOCH_STEPS = 10
#: ``patience="auto"``: stop after this many steps' worth of epochs without a better
#: held-out likelihood.
AUTO_PATIENCE_STEPS = 400
#: ``lr_decay="auto"``: the learning rate falls to this fraction of its start over the
#: ``max_epochs`` budget.
AUTO_FINAL_LR_FRACTION = 0.1


class FlowDensityEstimator(DensityMixin, TorchEstimator):
    """Base of density estimators built on a normalizing flow on standardised inputs.

    Subclasses declare their parameters and implement ``_build_module``, ``_batch_loss``
    (training loss of a batch of standardised rows at the trainer's step), ``_log_prob`` (exact log-density of
    standardised rows) and ``_inverse`` (base draws to standardised data).
    """

    # Subclasses build the module and say how it scores, trains and samples.
    def _build_module(self, n_features: int) -> torch.nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _prepare_fit(self, n_features: int) -> None:
        """Set fitted settings derived from the data before the module is built."""

    def _batch_loss(self, module, u: torch.Tensor, step: int):  # pragma: no cover
        raise NotImplementedError

    def _log_prob(self, module, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _inverse(self, module, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _schedule(self, n_train: int) -> tuple[int, int, int | None, float]:
        """Passes over the training rows per epoch, ``max_epochs``, ``patience`` and the
        per-step ``lr_decay`` for ``n_train`` training rows; ``"auto"`` values resolved from
        the number of steps an epoch takes."""
        per_pass = max(1, math.ceil(n_train / int(self.batch_size)))
        passes = 1
        if self.max_epochs == "auto":
            passes = max(1, math.ceil(AUTO_EPOCH_STEPS / per_pass))
        per_epoch = passes * per_pass
        max_epochs = (math.ceil(AUTO_TRAIN_STEPS / per_epoch) if self.max_epochs == "auto"
                      else int(self.max_epochs))
        patience = self.patience
        if patience == "auto":
            patience = math.ceil(AUTO_PATIENCE_STEPS / per_epoch)
        decay = resolve_lr_decay(getattr(self, "lr_decay", 1.0), max_epochs * per_epoch,
                                 AUTO_FINAL_LR_FRACTION)
        return passes, max_epochs, patience, decay

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, *, checkpoint_dir=None, tracking=None):
        """Fit the flow by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Each column is standardised. A constant column is refused (a point mass has no
            density; drop it), as is a column whose variance overflows or underflows
            float64 (standard deviations beyond about 1e154 or below 1e-154; rescale it).
        y : None
            Ignored; present for scikit-learn's API.
        checkpoint_dir : path or None
            Write a resumable checkpoint there after every epoch (and resume from it).
        tracking : None, bool, str or Tracking
            Log the fit to MLflow (see :mod:`latode.tracking`).

        Returns
        -------
        self
        """
        with self._finishing_tracking(X):  # ends the tracked run, fitted or failed
            self._fit(X, checkpoint_dir, tracking)
        return self

    def _fit(self, X, checkpoint_dir, tracking) -> None:
        self._validate_params()
        X = check_rows(self, X, reset=True, dtype=[np.float64, np.float32], method="fit")
        n_samples, n_features = X.shape
        with np.errstate(over="ignore", invalid="ignore"):
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            scale = X.std(axis=0, dtype=np.float64)
        overflowing = ~(np.isfinite(self.mean_) & np.isfinite(scale))
        if overflowing.any():
            # Finite values whose square overflows would otherwise give inf scales and
            # NaN or -inf densities without a word.
            raise ValueError(
                f"Invalid X for {type(self).__name__}.fit: column "
                f"{int(np.flatnonzero(overflowing)[0])} has values too large to standardise "
                "(its variance overflows float64); rescale X, e.g. divide it by its largest "
                "absolute value."
            )
        self._check_spread(X, scale)
        self.scale_ = scale
        self._prepare_fit(n_features)
        device = resolve_device(self.device)
        u = self._standardise(X, device)
        seed = self._fit_seed(checkpoint_dir)  # a resumed random_state=None fit keeps its seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_module(n_features).to(device)
            order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))
            n_val = int(round(self.validation_fraction * n_samples))
            if n_val < 1 or n_val >= n_samples:
                n_val = 0  # too few rows to hold some out: monitor the training loss
            train, held_out = u[order[n_val:].to(device)], u[order[:n_val].to(device)]

            passes, max_epochs, patience, lr_decay = self._schedule(len(train))

            def batches(generator: torch.Generator):
                epoch = []
                for _ in range(passes):
                    perm = torch.randperm(len(train), generator=generator).to(device)
                    epoch += [train[perm[i:i + self.batch_size]]
                              for i in range(0, len(train), self.batch_size)]
                return epoch

            def validate(mod):
                return {"val_loss": -float(self._chunked_log_prob(mod, held_out).mean())}

            self._train(
                module, self._batch_loss, batches, max_epochs=max_epochs,
                patience=patience, validate=validate if n_val else None,
                seed=seed, checkpoint_dir=checkpoint_dir, tracking=tracking,
                data_summary={"n_samples": n_samples, "n_features": n_features},
                lr_decay=lr_decay, data=u,
            )
        module.eval()
        self.module_ = module

    # ----------------------------------------------------------------- scoring
    def score_samples(self, X) -> np.ndarray:
        """Log-density of each row, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        self._check_fitted()
        X = check_rows(self, X, reset=False, dtype=[np.float64, np.float32],
                       method="score_samples")
        u = self._standardise(X, next(self.module_.parameters()).device)
        log_prob = self._chunked_log_prob(self.module_, u).cpu().double().numpy()
        return log_prob - float(np.log(self.scale_).sum())

    def score(self, X, y=None) -> float:
        """Total log-likelihood of ``X`` (the sum of :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        float
        """
        return float(self.score_samples(X).sum())

    def sample(self, n_samples: int = 1, random_state: int | None = None) -> np.ndarray:
        """Draw from the fitted density.

        Parameters
        ----------
        n_samples : int
        random_state : int or None
            Seed of the base draws; ``None`` takes one from numpy's global generator.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            In the units of the training data.
        """
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        size = 8 * n_samples * self.n_features_in_  # the float64 draws returned
        if size > MAX_SAMPLE_BYTES:
            raise ValueError(
                f"n_samples={n_samples} draws of {self.n_features_in_} features would take "
                f"{size / 1024**3:.3g} GiB (at most {MAX_SAMPLE_BYTES / 1024**3:.0f} GiB, "
                f"{MAX_SAMPLE_BYTES // (8 * self.n_features_in_):,} draws, per call; each "
                "is an ODE solve): draw fewer and call again with another random_state.")
        generator = torch.Generator().manual_seed(seed_from(random_state))
        z = torch.randn(n_samples, self.n_features_in_, generator=generator)
        device = next(self.module_.parameters()).device
        with torch.no_grad():
            parts = [self._inverse(self.module_, chunk.to(device)).cpu()
                     for chunk in z.split(_CHUNK)]
        u = torch.cat(parts).double().numpy()
        return u * self.scale_ + self.mean_

    # ---------------------------------------------------------------- helpers
    def _check_spread(self, X: np.ndarray, scale: np.ndarray) -> None:
        """Refuse columns whose density cannot be learned: a constant column is a point mass
        (no density at all), and a spread below ``_MIN_SCALE`` squares to a variance that
        underflows float64 (it would be read as constant and give wrong densities, as an
        overflowing one is refused above)."""
        if len(X) < 2:
            raise ValueError(f"Invalid X for {type(self).__name__}.fit: n_samples=1; a density "
                             "is learned from at least 2 samples.")
        for j in np.flatnonzero(~(scale >= _MIN_SCALE)):
            if np.ptp(X[:, j]) == 0:
                raise ValueError(
                    f"Invalid X for {type(self).__name__}.fit: column {j} is constant (every "
                    f"value is {float(X[0, j])!r}); its distribution is a point mass, which has no "
                    "density to learn. Drop the column (its value is known).")
            raise ValueError(
                f"Invalid X for {type(self).__name__}.fit: column {j} has values too small to "
                f"standardise (standard deviation {scale[j]:.3g}, its variance underflows "
                "float64); rescale X, e.g. divide it by its largest absolute value.")

    def _standardise(self, X: np.ndarray, device: torch.device) -> torch.Tensor:
        u = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return torch.as_tensor(u, dtype=torch.float32, device=device)

    def _chunked_log_prob(self, module, u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self._log_prob(module, chunk) for chunk in u.split(_CHUNK)])

    # ------------------------------------------------------------ persistence
    def _fitted_state(self) -> dict[str, Any]:
        state = {
            "n_features_in_": int(self.n_features_in_),
            "mean_": self.mean_, "scale_": self.scale_,
            "history_": self.history_, "n_epochs_": self.n_epochs_,
            "best_epoch_": self.best_epoch_, "bad_steps_": self.bad_steps_,
            **self._extra_state(),
        }
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        return state

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                value = value.numpy()
            if key == "feature_names_in_":
                value = np.asarray(value, dtype=object)
            setattr(self, key, value)
        self.module_ = self._build_module(self.n_features_in_)
