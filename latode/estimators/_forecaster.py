"""What every forecaster shares: frames in, the shared trainer, forecasts out.

A concrete forecaster (latent ODE, RNN baseline) supplies four things:

* ``_build_module(n_channels)`` — its torch module;
* ``_series_log_likelihood(module, batch, n_samples, generator)`` — a per-series
  log-likelihood (or lower bound) of a union batch, shape (batch,), used for training
  (``_batch_loss``), validation and ``score``;
* ``_predictive_means(module, batch, target_times, n_samples, generator, needed=None)`` —
  channel means at the target times for ``n_samples`` posterior draws, shape (samples,
  batch, targets, channels); only the (series, time) pairs of ``needed`` must be right;
* ``_batch_loss(module, batch, step)`` — the training loss at the trainer's optimisation
  ``step`` (defaults to the negative log-likelihood per observed value, whatever the step).

With ``objective="extrapolate"`` the model reads only each series' first ``context_fraction``
of its time span (:meth:`BaseForecaster._read_mask`) and is scored on all its observations, so
training asks for what a forecast asks for: the future from a prefix (Rubanova et al. 2019's
"extrap" mode). A ``(low, high)`` fraction is drawn anew per series and batch, so the model
learns to read contexts of many lengths; validation reads the middle fraction, so that the
early-stopping score does not move with the draw.

Everything else — validation of frames, splitting, batching, training, scores,
persistence — lives here once; forecasts with quantiles and samples come from
:class:`~latode.estimators._forecast_output.ForecastOutputMixin`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from latode._params import InstanceOf, Interval, Options, Predicate
from latode.data import IrregularFrameConverter, PackedSeries, UnionBatch
from latode.data.covariates import CovariateRoles
from latode.data.times import model_time_per_unit
from latode.estimators._base import COMMON_CONSTRAINTS, TorchEstimator, resolve_device, seed_from
from latode.estimators._forecast_output import (
    _FORECAST_REMEDY,
    MAX_SOLVE_PAIRS,
    ForecastOutputMixin,
    level_columns,
    quantile_column,
)
from latode.estimators._inputs import check_positive_int
from latode.estimators._schedule import (
    AUTO,
    MAX_EPOCHS,
    plan_lr_decay,
    prediction_chunk,
    training_plan,
)
from latode.exceptions import SolverError
from latode.nn.point_process import scored_events
from latode.training import distributed

__all__ = ["BaseForecaster", "quantile_column", "level_columns"]

#: Step of the low-discrepancy sequence that spreads validation's context fractions.
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _is_fraction_range(value: object) -> bool:
    """``(low, high)`` with ``0 < low <= high <= 1`` (a range of context fractions)."""
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0 < value[0] <= value[1] <= 1)


#: The ODE solve's parameters among COMMON_CONSTRAINTS: a forecaster that solves no ODE (the
#: GRU-Δt baseline) leaves them out, so that it neither accepts nor validates settings it
#: would ignore.
SOLVER_PARAMETERS = ("solver", "rtol", "atol", "adjoint", "step_size", "max_num_steps")

FORECASTER_CONSTRAINTS = {
    **COMMON_CONSTRAINTS,
    "id_col": [InstanceOf(str)],
    "time_col": [InstanceOf(str)],
    "target_cols": [InstanceOf(type(None), str, list, tuple)],
    "time_scale": [InstanceOf(type(None), str, pd.Timedelta),
                   Interval(float, 0, None, closed="neither")],
    "standardize": [InstanceOf(bool)],
    "objective": [Options(("reconstruct", "extrapolate"))],
    "max_epochs": [Options((AUTO,)), Interval(int, 1, None)],
    "batch_size": [Options((AUTO,)), Interval(int, 1, None)],
    "patience": [Options((AUTO,)), InstanceOf(type(None)), Interval(int, 1, None)],
    "ema_decay": [InstanceOf(type(None)), Interval(float, 0, 1, closed="neither")],
    "past_covariates": [InstanceOf(type(None), str, list, tuple)],
    "future_covariates": [InstanceOf(type(None), str, list, tuple)],
    "impulse_covariates": [InstanceOf(type(None), str, list, tuple)],
    "context_fraction": [
        Interval(float, 0, 1, closed="neither"),
        Predicate(_is_fraction_range, "a pair (low, high) with 0 < low <= high <= 1"),
    ],
}


class BaseForecaster(ForecastOutputMixin, TorchEstimator):
    """Shared implementation of latode's forecasters (see the module docstring)."""

    _parameter_constraints = FORECASTER_CONSTRAINTS
    #: The most epochs an ``"auto"`` ``max_epochs`` runs (:func:`training_plan`).
    _most_epochs = MAX_EPOCHS

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_channels: int) -> torch.nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _series_log_likelihood(self, module, batch: UnionBatch, n_samples: int,
                               generator: torch.Generator | None) -> torch.Tensor:
        """Per-series log-likelihood (bound). ``generator=None`` is training and validation:
        read through :meth:`_read_mask`; with a generator (``score``) read everything."""
        raise NotImplementedError  # pragma: no cover

    def _predictive_means(self, module, batch: UnionBatch, target_times: torch.Tensor,
                          n_samples: int, generator: torch.Generator,
                          needed: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def _converter_options(self) -> dict[str, Any]:
        """Extra :class:`IrregularFrameConverter` arguments of this forecaster: its
        covariates' roles, and what a subclass adds."""
        return {"covariates": CovariateRoles.from_parameters(
            self.past_covariates, self.future_covariates, self.impulse_covariates)}

    def _read_mask(self, batch: UnionBatch, training: bool) -> torch.Tensor:
        """The entries the model may read while training and validating: every observed one
        (``objective="reconstruct"``), or those in the first ``context_fraction`` of each
        series' own observed span (``"extrapolate"``); shape (batch, grid, channels)."""
        return batch.mask * self._read_rows(batch, training).unsqueeze(-1)

    @staticmethod
    def _n_scored(batch: UnionBatch) -> torch.Tensor:
        """Observed values (and events, for a point process) a batch's likelihood covers."""
        count = batch.mask.sum()
        if batch.events is None:
            return count
        return count + scored_events(batch.events, batch.present).sum()

    def _read_rows(self, batch: UnionBatch, training: bool) -> torch.Tensor:
        """Grid times the model may read, shape (batch, grid): see :meth:`_read_mask`. A
        ``(low, high)`` fraction is drawn per series when ``training``; otherwise (validation)
        fractions are spread over the range by a fixed low-discrepancy sequence, so that
        validation scores forecasts from the same span of origins as training, and the same
        origins every epoch."""
        if self.objective == "reconstruct":
            return torch.ones_like(batch.present)
        seen = batch.mask.sum(-1) > 0  # (batch, grid)
        if batch.events is not None:
            seen = seen | (batch.events > 0)
        times = batch.times.expand_as(seen)
        inf = torch.tensor(float("inf"), dtype=times.dtype, device=times.device)
        first = torch.where(seen, times, inf).amin(-1, keepdim=True)
        last = torch.where(seen, times, -inf).amax(-1, keepdim=True)
        fraction = self.context_fraction
        if isinstance(fraction, (tuple, list)):
            low, high = float(fraction[0]), float(fraction[1])
            if training:
                # Drawn from torch's global generator, which fit seeds: fits stay repeatable.
                fraction = low + (high - low) * torch.rand(first.shape, dtype=times.dtype,
                                                           device=times.device)
            else:
                position = torch.arange(first.shape[0], dtype=times.dtype, device=times.device)
                spread = torch.remainder(0.5 + position.unsqueeze(1) * _GOLDEN, 1.0)
                fraction = low + (high - low) * spread
        cutoff = first + fraction * (last - first)
        return (times <= cutoff).to(batch.mask)

    def _batch_loss(self, module, batch: UnionBatch, step: int):
        bound = self._series_log_likelihood(module, batch, 1, None)
        return -bound.sum() / self._n_scored(batch).clamp(min=1.0)

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, y: None = None, *, static_df: pd.DataFrame | None = None,
            checkpoint_dir: str | None = None, tracking: Any = None) -> BaseForecaster:
        """Fit on a long frame of irregular series.

        Parameters
        ----------
        df : DataFrame
            One row per (series, timestamp): ``id_col``, ``time_col`` and the value columns
            (NaN where a channel was not observed), and any covariate columns.
        y : None
            Ignored (scikit-learn API).
        static_df : DataFrame or None
            Static features, one row per series keyed by ``id_col`` (a column or the index):
            numbers, or categories (one-hot encoded); NaN where unknown. ``predict`` then
            needs the same columns for the series it forecasts.
        checkpoint_dir : str or None
            Write a checkpoint every epoch there and resume from it if one exists.
        tracking : bool, str or None
            Log the fit to MLflow: ``True`` uses the default tracking URI, a string is a
            tracking URI.

        Returns
        -------
        self
        """
        with self._finishing_tracking(df):  # ends the tracked run, fitted or failed
            self._fit(df, checkpoint_dir, tracking, static_df)
        return self

    def _fit(self, df: pd.DataFrame, checkpoint_dir, tracking, static_df=None) -> None:
        self._validate_params()
        device = resolve_device(self.device)
        target_cols = None if self.target_cols is None else (
            (self.target_cols,) if isinstance(self.target_cols, str) else tuple(self.target_cols))
        converter = IrregularFrameConverter(self.id_col, self.time_col, target_cols,
                                            self.time_scale, self.standardize,
                                            **self._converter_options())
        packed = converter.fit_pack(df, static_df=static_df)
        seed = self._fit_seed(checkpoint_dir)  # a resumed random_state=None fit keeps its seed
        train_idx, val_idx = self._split(packed.n_series, seed)
        summary = self._data_summary(packed, converter)
        for name in ("module_", "converter_"):
            self.__dict__.pop(name, None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.converter_ = converter  # the module's shape follows the converter's inputs
            module = self._build_module(packed.n_channels).to(device)
            self._fit_module(module, packed, train_idx, val_idx, seed, device,
                             checkpoint_dir, tracking, summary)
        self.module_ = module.eval()
        self.n_features_in_ = packed.n_channels
        self.n_series_ = packed.n_series

    def _fit_module(self, module, packed, train_idx, val_idx, seed, device, checkpoint_dir,
                    tracking, summary) -> None:
        plan = training_plan(len(train_idx), self.batch_size, self.max_epochs, self.patience,
                             most_epochs=self._most_epochs)
        batch_size = plan.batch_size
        # Under torchrun each rank builds only its shard of every global batch, on the union
        # grid of its own series (see latode.training.distributed); in one process
        # ``distributed`` is the identity and the batches are the whole global batches.
        parallel = distributed.init_from_env(device)
        if parallel:
            # Ranks that drew their own seeds (random_state=None) take rank 0's, so all of
            # them hold out the same series and shuffle alike.
            seed = distributed.agree_seed(seed)
            train_idx, val_idx = self._split(packed.n_series, seed)

        def batches(generator: torch.Generator):
            order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
            if not parallel:
                return packed.union_batches(order, batch_size, device=device)
            return distributed.shard_batches(
                order, batch_size, lambda s: packed.union_batch(s, device=device),
                lambda batch: float(self._n_scored(batch)))

        validate = None
        if len(val_idx):
            own_val = distributed.own_part(val_idx)

            def validate(module):
                # Built anew each epoch, one batch at a time: memory stays one batch, not
                # the whole validation set, however many series there are.
                try:
                    total, count = self._log_likelihood_sum(
                        module, packed.union_batches(own_val, batch_size, device=device),
                        1, None)
                except SolverError:
                    if not parallel:
                        raise
                    # Every rank must reach the sum below; a failed solve scores inf.
                    total, count = -math.inf, 1.0
                total, count = distributed.all_reduce_sum([total, count])
                return -total / max(count, 1.0)

        self._train(module, self._batch_loss, batches, max_epochs=plan.max_epochs,
                    patience=plan.patience, validate=validate, seed=seed,
                    checkpoint_dir=checkpoint_dir, tracking=tracking, data_summary=summary,
                    data=packed, lr_decay=plan_lr_decay(getattr(self, "lr_decay", 1.0), plan,
                                                        len(train_idx)))

    def _log_likelihood_sum(self, module, batches, n_samples: int,
                            generator: torch.Generator | None) -> tuple[float, float]:
        """Summed per-series log-likelihood over ``batches`` and the number of observed
        values it covers (validation and :meth:`score`)."""
        total, count = 0.0, 0.0
        for batch in batches:
            total += float(self._series_log_likelihood(module, batch, n_samples,
                                                       generator).sum())
            count += float(self._n_scored(batch))
        return total, count

    def _split(self, n_series: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Hold out ``validation_fraction`` of the series (none if fewer than 2 would train)."""
        n_val = int(math.floor(self.validation_fraction * n_series))
        if n_val == 0 or n_series - n_val < 1:
            return np.arange(n_series), np.arange(0)
        order = np.random.default_rng(seed).permutation(n_series)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    @staticmethod
    def _data_summary(packed: PackedSeries, converter: IrregularFrameConverter) -> dict:
        observed = ~np.isnan(packed.values)
        span = converter.time_axis_.from_keys(np.array([packed.keys.min(), packed.keys.max()]))
        return {
            "n_series": int(packed.n_series), "n_rows": int(len(packed.keys)),
            "n_observations": int(observed.sum()),
            "channels": ",".join(map(str, converter.channels)),
            "missing_fraction": float(1.0 - observed.mean()) if observed.size else 0.0,
            "time_start": str(span.iloc[0]), "time_end": str(span.iloc[1]),
        }

    def cross_validation(self, df: pd.DataFrame, *, horizon: Any, n_windows: int = 1,
                         step_size: Any = None, refit: bool = False,
                         quantiles: Any = (0.1, 0.5, 0.9), level: Any = None,
                         n_samples: int = 100, random_state: int | None = 0,
                         static_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Backtest: forecast each series' observations after each of ``n_windows`` cutoffs.

        Cutoffs are shared times: the last is ``horizon`` before the frame's last timestamp,
        the others ``step_size`` (default ``horizon``) apart before it. At each, every series
        is read up to the cutoff and its observations in the next ``horizon`` are forecast.
        This estimator is left as it is: clones are fitted, once on the rows up to the first
        cutoff, or at every cutoff with ``refit=True``. Future and impulse covariates after
        a cutoff come from ``df`` (they are known ahead); ``static_df`` as for :meth:`fit`.

        Returns
        -------
        DataFrame
            ``id_col``, ``time_col``, ``cutoff``, the forecast's columns (as ``predict``
            names them) and each target's actual value as ``<target>_actual``.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from latode import RNNForecaster
        >>> df = pd.DataFrame({"unique_id": np.repeat([0, 1], 8),
        ...                    "ds": np.tile(np.arange(8.0), 2), "y": np.arange(16.0)})
        >>> cv = RNNForecaster(max_epochs=1, verbose=0, random_state=0).cross_validation(
        ...     df, horizon=2.0, n_windows=2, quantiles=None)
        >>> sorted(cv["cutoff"].unique().tolist()), len(cv)
        ([3.0, 5.0], 8)
        >>> mae = (cv["y"] - cv["y_actual"]).abs().mean()
        """
        from latode.estimators._backtest import cross_validation

        return cross_validation(self, df, horizon=horizon, n_windows=n_windows,
                                step_size=step_size, refit=refit, quantiles=quantiles,
                                level=level, n_samples=n_samples, random_state=random_state,
                                static_df=static_df)

    def score(self, df: pd.DataFrame, y: None = None, *, n_samples: int = 16,
              random_state: int | None = 0, static_df: pd.DataFrame | None = None) -> float:
        """Mean log-likelihood per observed value, in nats, in the user's units (higher is
        better). For the latent ODE it is the importance-weighted bound with ``n_samples``.
        ``static_df`` as in :meth:`fit`."""
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        self._solve_with_current_parameters()
        packed = self.converter_.pack(df, argument="df", static_df=static_df)
        generator = torch.Generator().manual_seed(seed_from(random_state))
        device = next(self.module_.parameters()).device
        batches = packed.union_batches(np.arange(packed.n_series),
                                       _score_chunk(self.batch_size, n_samples, packed),
                                       device=device)
        with torch.no_grad():
            total, count = self._log_likelihood_sum(self.module_, batches, n_samples, generator)
        values_jacobian, per_event = self._log_unit_change(packed)
        n_events = 0.0 if packed.events is None else float(packed.scored_events.sum())
        result = (total - values_jacobian + n_events * per_event) / max(count, 1.0)
        if not math.isfinite(result):
            raise SolverError(f"The score is not finite ({result}): the model's state "
                              f"diverged on df. {_FORECAST_REMEDY}")
        return result

    def _log_unit_change(self, packed: PackedSeries) -> tuple[float, float]:
        """From log-densities in model units to the user's units, for ``packed``: the sum of
        log(channel std) over its observed values (to subtract: densities of standardised
        values), and log(model time per user time unit) (to add once per scored event:
        event rates per the user's unit; 0 without a point process)."""
        observed = ~np.isnan(packed.values)
        values_jacobian = float((observed * np.log(self.converter_.scaler_.std)).sum())
        per_event = 0.0 if packed.events is None else math.log(
            model_time_per_unit(self.converter_.time_axis_))
        return values_jacobian, per_event

    # ------------------------------------------------------------- persistence
    def _fitted_state(self) -> dict:
        return {"converter": self.converter_.state(), "n_series": self.n_series_,
                "history": self.history_, "n_epochs": self.n_epochs_,
                "best_epoch": self.best_epoch_, "bad_steps": self.bad_steps_}

    def _restore_fitted_state(self, state: dict) -> None:
        self.converter_ = IrregularFrameConverter.from_state(state["converter"])
        self.n_features_in_ = len(self.converter_.channels)
        self.n_series_ = state["n_series"]
        self.history_ = list(state["history"])
        self.n_epochs_ = state["n_epochs"]
        self.best_epoch_ = state["best_epoch"]
        self.bad_steps_ = state["bad_steps"]
        self.module_ = self._build_module(self.n_features_in_)


def _score_chunk(batch_size: int | str, n_samples: int, packed: PackedSeries) -> int:
    """Series per solve of ``score``: few enough that ``n_samples`` draws of their rows stay
    within ``MAX_SOLVE_PAIRS``, or an error naming ``n_samples`` when one series alone
    would take 16 times that (several GiB)."""
    longest = int(packed.lengths.max())
    if n_samples * longest > 16 * MAX_SOLVE_PAIRS:
        raise ValueError(
            f"score with n_samples={n_samples} draws of a series of {longest} rows would solve "
            f"{n_samples * longest:.3g} (draw, time) pairs at once (at most "
            f"{16 * MAX_SOLVE_PAIRS:,}); pass n_samples={max(1, 16 * MAX_SOLVE_PAIRS // longest)}"
            " or fewer.")
    return max(1, min(prediction_chunk(batch_size), MAX_SOLVE_PAIRS // (n_samples * longest)))
