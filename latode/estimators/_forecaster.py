"""What every forecaster shares: frames in, the shared trainer, forecasts out.

A concrete forecaster (latent ODE, RNN baseline) supplies four things:

* ``_build_module(n_channels)`` — its torch module;
* ``_series_log_likelihood(module, batch, n_samples, generator)`` — a per-series
  log-likelihood (or lower bound) of a union batch, shape (batch,), used for training
  (``_batch_loss``), validation and ``score``;
* ``_predictive_means(module, batch, target_times, n_samples, generator)`` — channel means at
  the target times for ``n_samples`` posterior draws, shape (samples, batch, targets, channels);
* ``_batch_loss(module, batch)`` — the training loss (defaults to the negative log-likelihood
  per observed value).

With ``objective="extrapolate"`` the model reads only each series' first ``context_fraction``
of its time span (:meth:`BaseForecaster._read_mask`) and is scored on all its observations, so
training asks for what a forecast asks for: the future from a prefix (Rubanova et al. 2019's
"extrap" mode). A ``(low, high)`` fraction is drawn anew per series and batch, so the model
learns to read contexts of many lengths.

Everything else — validation of frames, splitting, batching, training, forecasts with
quantiles, samples, scores, persistence — lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from latode._params import InstanceOf, Interval, Options, Predicate
from latode.data import IrregularFrameConverter, PackedSeries, UnionBatch
from latode.data.packing import solver_grid
from latode.data.targets import forecast_targets
from latode.estimators._base import COMMON_CONSTRAINTS, TorchEstimator, resolve_device, seed_from

__all__ = ["BaseForecaster", "quantile_column", "level_columns"]


def _is_fraction_range(value: object) -> bool:
    """``(low, high)`` with ``0 < low <= high <= 1`` (a range of context fractions)."""
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0 < value[0] <= value[1] <= 1)


FORECASTER_CONSTRAINTS = {
    **COMMON_CONSTRAINTS,
    "id_col": [InstanceOf(str)],
    "time_col": [InstanceOf(str)],
    "target_cols": [InstanceOf(type(None), str, list, tuple)],
    "time_scale": [InstanceOf(type(None), str, pd.Timedelta),
                   Interval(float, 0, None, closed="neither")],
    "standardize": [InstanceOf(bool)],
    "objective": [Options(("reconstruct", "extrapolate"))],
    "context_fraction": [
        Interval(float, 0, 1, closed="neither"),
        Predicate(_is_fraction_range, "a pair (low, high) with 0 < low <= high <= 1"),
    ],
}


def quantile_column(target: str, q: float) -> str:
    """Name of the column of quantile ``q`` of ``target``: ``"y_q0.1"``.

    Examples
    --------
    >>> quantile_column("hr", 0.9)
    'hr_q0.9'
    """
    return f"{target}_q{q:g}"


def level_columns(target: str, level: float) -> tuple[str, str]:
    """Names of the bounds of a central ``level``% interval, as the Nixtla libraries write
    them: ``("y-lo-80", "y-hi-80")``."""
    return f"{target}-lo-{level:g}", f"{target}-hi-{level:g}"


def _check_quantiles(quantiles: object, level: object) -> tuple[list[float], list[float]]:
    qs = [] if quantiles is None else list(np.atleast_1d(quantiles))
    levels = [] if level is None else list(np.atleast_1d(level))
    for q in qs:
        if isinstance(q, bool) or not isinstance(q, (int, float, np.number)):
            raise TypeError(f"quantiles must be numbers in (0, 1); got {q!r}.")
        if not 0 < float(q) < 1:
            raise ValueError(f"quantiles must lie in (0, 1) (exclusive); got {q!r}.")
    for lv in levels:
        if isinstance(lv, bool) or not isinstance(lv, (int, float, np.number)):
            raise TypeError(f"level must be numbers in (0, 100); got {lv!r}.")
        if not 0 < float(lv) < 100:
            raise ValueError(f"level must lie in (0, 100), e.g. level=[80, 95]; got {lv!r}.")
    return [float(q) for q in qs], [float(lv) for lv in levels]


class BaseForecaster(TorchEstimator):
    """Shared implementation of latode's forecasters (see the module docstring)."""

    _parameter_constraints = FORECASTER_CONSTRAINTS

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_channels: int) -> torch.nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _series_log_likelihood(self, module, batch: UnionBatch, n_samples: int,
                               generator: torch.Generator | None) -> torch.Tensor:
        """Per-series log-likelihood (bound). ``generator=None`` is training and validation:
        read through :meth:`_read_mask`; with a generator (``score``) read everything."""
        raise NotImplementedError  # pragma: no cover

    def _predictive_means(self, module, batch: UnionBatch, target_times: torch.Tensor,
                          n_samples: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def _read_mask(self, batch: UnionBatch) -> torch.Tensor:
        """The entries the model may read while training and validating: every observed one
        (``objective="reconstruct"``), or those in the first ``context_fraction`` of each
        series' own observed span (``"extrapolate"``); shape (batch, grid, channels)."""
        if self.objective == "reconstruct":
            return batch.mask
        seen = batch.mask.sum(-1) > 0  # (batch, grid)
        times = batch.times.expand_as(seen)
        inf = torch.tensor(float("inf"), dtype=times.dtype, device=times.device)
        first = torch.where(seen, times, inf).amin(-1, keepdim=True)
        last = torch.where(seen, times, -inf).amax(-1, keepdim=True)
        fraction = self.context_fraction
        if isinstance(fraction, (tuple, list)):
            low, high = float(fraction[0]), float(fraction[1])
            # Drawn from torch's global generator, which fit seeds: fits stay repeatable.
            fraction = low + (high - low) * torch.rand(first.shape, dtype=times.dtype,
                                                       device=times.device)
        cutoff = first + fraction * (last - first)
        return batch.mask * (times <= cutoff).unsqueeze(-1).to(batch.mask)

    def _batch_loss(self, module, batch: UnionBatch):
        bound = self._series_log_likelihood(module, batch, 1, None)
        n_obs = batch.mask.sum().clamp(min=1.0)
        return -bound.sum() / n_obs

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, y: None = None, *, checkpoint_dir: str | None = None,
            tracking: Any = None) -> BaseForecaster:
        """Fit on a long frame of irregular series.

        Parameters
        ----------
        df : DataFrame
            One row per (series, timestamp): ``id_col``, ``time_col`` and the value columns
            (NaN where a channel was not observed).
        y : None
            Ignored (scikit-learn API).
        checkpoint_dir : str or None
            Write a checkpoint every epoch there and resume from it if one exists.
        tracking : bool, str or None
            Log the fit to MLflow: ``True`` uses the default tracking URI, a string is a
            tracking URI.

        Returns
        -------
        self
        """
        self._validate_params()
        device = resolve_device(self.device)
        target_cols = None if self.target_cols is None else (
            (self.target_cols,) if isinstance(self.target_cols, str) else tuple(self.target_cols))
        converter = IrregularFrameConverter(self.id_col, self.time_col, target_cols,
                                            self.time_scale, self.standardize)
        packed = converter.fit_pack(df)
        seed = seed_from(self.random_state)
        train_idx, val_idx = self._split(packed.n_series, seed)
        summary = self._data_summary(packed, converter)
        for name in ("module_", "converter_"):
            self.__dict__.pop(name, None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_module(packed.n_channels).to(device)
            self.converter_ = converter
            self._fit_module(module, packed, train_idx, val_idx, seed, device,
                             checkpoint_dir, tracking, summary)
        self.module_ = module.eval()
        self.n_features_in_ = packed.n_channels
        self.n_series_ = packed.n_series
        return self

    def _fit_module(self, module, packed, train_idx, val_idx, seed, device, checkpoint_dir,
                    tracking, summary) -> None:
        batch_size = int(self.batch_size)

        def batches(generator: torch.Generator):
            order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
            return packed.union_batches(order, batch_size, device=device)

        validate = None
        if len(val_idx):
            val_batches = list(packed.union_batches(val_idx, batch_size, device=device))

            def validate(module):
                total, count = self._log_likelihood_sum(module, val_batches, 1, None)
                return -total / max(count, 1.0)

        self._train(module, self._batch_loss, batches, validate=validate, seed=seed,
                    checkpoint_dir=checkpoint_dir, tracking=tracking, data_summary=summary)

    def _log_likelihood_sum(self, module, batches, n_samples: int,
                            generator: torch.Generator | None) -> tuple[float, float]:
        """Summed per-series log-likelihood over ``batches`` and the number of observed
        values it covers (validation and :meth:`score`)."""
        total, count = 0.0, 0.0
        for batch in batches:
            total += float(self._series_log_likelihood(module, batch, n_samples,
                                                       generator).sum())
            count += float(batch.mask.sum())
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
            "n_observations": int(observed.sum()), "channels": ",".join(converter.channels),
            "missing_fraction": float(1.0 - observed.mean()),
            "time_start": str(span.iloc[0]), "time_end": str(span.iloc[1]),
        }

    # ------------------------------------------------------------- forecasting
    def _forecast_draws(self, context_df, timestamps, horizon, freq, n_samples, random_state,
                        noisy: bool):
        """Targets and draws at them in the user's units: (PackedSeries, means, draws) with
        means and draws of shape (samples, rows, channels)."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        conv = self.converter_
        context = conv.pack(context_df, argument="context_df")
        targets = forecast_targets(conv, context, timestamps=timestamps, horizon=horizon,
                                   freq=freq)
        position = pd.Index(context.ids).get_indexer(targets.ids)
        generator = torch.Generator().manual_seed(seed_from(random_state))
        device = next(self.module_.parameters()).device
        n_rows = len(targets.keys)
        means = np.empty((n_samples, n_rows, targets.n_channels))
        draws = np.empty_like(means)
        std = self.module_.observation_log_std().detach().exp().cpu().numpy()
        step = int(self.batch_size)
        self.module_.eval()
        for start in range(0, targets.n_series, step):
            chunk = np.arange(start, min(start + step, targets.n_series))
            batch = context.union_batch(position[chunk], device=device)
            rows = targets.rows_of(chunk)
            grid_times, _, column = solver_grid(targets.times[rows], torch.float32)
            grid = torch.as_tensor(grid_times, dtype=torch.float32, device=device)
            with torch.no_grad():
                mean = self._predictive_means(self.module_, batch, grid, n_samples, generator)
            mean = mean.cpu().numpy()
            which = np.repeat(np.arange(len(chunk)), targets.lengths[chunk])
            chunk_means = mean[:, which, column]
            means[:, rows] = chunk_means
            if noisy:
                noise = torch.randn(chunk_means.shape, generator=generator).numpy()
                draws[:, rows] = chunk_means + noise * std
        scaler = conv.scaler_
        means = scaler.inverse_transform(means)
        draws = scaler.inverse_transform(draws) if noisy else means
        return targets, means, draws

    def predict(self, context_df: pd.DataFrame, timestamps: object = None, *,
                horizon: object = None, freq: object = None,
                quantiles: Sequence[float] | None = (0.1, 0.5, 0.9),
                level: Sequence[float] | None = None, n_samples: int = 100,
                random_state: int | None = 0) -> pd.DataFrame:
        """Forecast (or interpolate) each series at any timestamps.

        Parameters
        ----------
        context_df : DataFrame
            The observed context of each series (the fitted columns; any length and times).
        timestamps : DataFrame or sequence of times, optional
            A frame of (id, time) rows to forecast, or times applied to every series of the
            context. Times may lie before, between or after the observations.
        horizon : duration, number or sequence of them, optional
            Instead of ``timestamps``: offsets from each series' last observation (a sequence),
            or the end of a regular grid spaced by ``freq``.
        freq : duration or number, optional
            Spacing of the ``horizon`` grid; ``None`` (the default) is continuous time.
        quantiles : sequence of float in (0, 1), optional
            Quantiles of the predictive distribution, in columns ``<target>_q<q>``.
        level : sequence of float in (0, 100), optional
            Central intervals, in columns ``<target>-lo-<level>`` / ``<target>-hi-<level>``.
        n_samples : int
            Posterior draws behind the mean and quantiles.
        random_state : int or None
            Seed of those draws (the default 0 makes ``predict`` repeatable).

        Returns
        -------
        DataFrame
            ``id_col``, ``time_col`` in the user's types, the mean of each target (column
            named as the target) and the quantile / interval columns.
        """
        qs, levels = _check_quantiles(quantiles, level)
        targets, means, draws = self._forecast_draws(context_df, timestamps, horizon, freq,
                                                     n_samples, random_state, noisy=True)
        conv = self.converter_
        columns: dict[str, np.ndarray] = {}
        for c, name in enumerate(conv.channels):
            columns[name] = means[:, :, c].mean(0)
            for q in qs:
                columns[quantile_column(name, q)] = np.quantile(draws[:, :, c], q, axis=0)
            for lv in levels:
                lo, hi = level_columns(name, lv)
                columns[lo] = np.quantile(draws[:, :, c], 0.5 - lv / 200, axis=0)
                columns[hi] = np.quantile(draws[:, :, c], 0.5 + lv / 200, axis=0)
        return conv.to_frame(targets.ids[targets.series_of_row], targets.keys, columns)

    def sample(self, context_df: pd.DataFrame, timestamps: object = None, *,
               horizon: object = None, freq: object = None, n_samples: int = 100,
               random_state: int | None = None, noise: bool = True) -> pd.DataFrame:
        """Draw trajectories at the requested times (arguments as in :meth:`predict`).

        Parameters
        ----------
        noise : bool
            Add the learned observation noise (draws of observations) or not (draws of the
            underlying mean trajectory).

        Returns
        -------
        DataFrame
            ``sample_id``, ``id_col``, ``time_col`` and one column per target.
        """
        targets, means, draws = self._forecast_draws(context_df, timestamps, horizon, freq,
                                                     n_samples, random_state, noisy=noise)
        conv = self.converter_
        ids = targets.ids[targets.series_of_row]
        frames = []
        for s in range(n_samples):
            frame = conv.to_frame(ids, targets.keys,
                                  {c: draws[s, :, i] for i, c in enumerate(conv.channels)})
            frame.insert(0, "sample_id", s)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def score(self, df: pd.DataFrame, y: None = None, *, n_samples: int = 16,
              random_state: int | None = 0) -> float:
        """Mean log-likelihood per observed value, in nats, in the user's units (higher is
        better). For the latent ODE it is the importance-weighted bound with ``n_samples``."""
        self._check_fitted()
        packed = self.converter_.pack(df, argument="df")
        generator = torch.Generator().manual_seed(seed_from(random_state))
        device = next(self.module_.parameters()).device
        batches = packed.union_batches(np.arange(packed.n_series), int(self.batch_size),
                                       device=device)
        with torch.no_grad():
            total, count = self._log_likelihood_sum(self.module_, batches, n_samples, generator)
        # Densities of standardised values -> densities in the user's units.
        observed = ~np.isnan(packed.values)
        jacobian = float((observed * np.log(self.converter_.scaler_.std)).sum())
        return (total - jacobian) / max(count, 1.0)

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

