"""Forecasts out of a fitted forecaster: posterior draws at any requested (series, time)
rows, summarised as means, quantiles and intervals (``predict``) or returned as trajectories
(``sample``). :func:`summary_columns` names and fills the summary columns of any output drawn
so, the point process's intensity included.

:class:`ForecastOutputMixin` is the output half of
:class:`~latode.estimators._forecaster.BaseForecaster`; it needs the host's ``module_``,
``converter_``, ``_predictive_means`` and ``_solve_with_current_parameters``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from latode.data import PackedSeries
from latode.data.packing import solver_grid
from latode.data.targets import forecast_targets, future_inputs
from latode.data.validation import show
from latode.estimators._base import seed_from
from latode.estimators._inputs import check_positive_int
from latode.estimators._schedule import prediction_chunk
from latode.exceptions import SolverError

__all__ = ["ForecastOutputMixin", "quantile_column", "level_columns", "summary_columns",
           "MAX_DRAW_BYTES", "MAX_SOLVE_PAIRS"]

#: Most memory the posterior draws of one predict/sample call may take (float64 values).
MAX_DRAW_BYTES = 2 * 1024**3

#: Most (draw, series, time) triples one solve decodes: the model's activations take a few
#: hundred bytes each (a 64-wide decoder: 256), so a solve stays well under 1 GiB; a forecast
#: that asks for more is solved in pieces of forecast times.
MAX_SOLVE_PAIRS = 2**20

_FORECAST_REMEDY = (
    "Try an adaptive solver (solver='dopri5') or a smaller step_size, times nearer the "
    "training span, or refit if the weights are not finite."
)


def series_generators(seed: int, ids: Sequence[object]) -> list[torch.Generator]:
    """One CPU generator per series, seeded from ``seed`` and the series' id.

    A series' Monte Carlo draws are then the same whatever other series a call forecasts,
    in whatever order or batch (its id, as text, decides them).

    Examples
    --------
    >>> a, b = series_generators(0, ["p1", "p2"]), series_generators(0, ["p2"])
    >>> torch.equal(torch.randn(3, generator=a[1]), torch.randn(3, generator=b[0]))
    True
    """
    def seed_of(series_id: object) -> int:
        digest = hashlib.blake2b(f"{seed}|{series_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1  # manual_seed takes a signed int64

    return [torch.Generator().manual_seed(seed_of(i)) for i in ids]


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


def summary_columns(name: str, mean: np.ndarray, draws: np.ndarray,
                    quantiles: Sequence[float], levels: Sequence[float]
                    ) -> dict[str, np.ndarray]:
    """The columns that summarise draws of one output, in the order they are written.

    Parameters
    ----------
    name : str
        The output's name: a target, or ``"intensity"``.
    mean : ndarray, shape (rows,)
        The point column, named ``name``.
    draws : ndarray, shape (samples, rows)
        The draws the quantiles and intervals are read from.
    quantiles, levels : sequence of float
        As checked by ``_check_quantiles``: quantiles in (0, 1), levels in percent.

    Returns
    -------
    dict of str to ndarray
        ``name``, then ``<name>_q<q>`` per quantile, then ``<name>-lo-<level>`` and
        ``<name>-hi-<level>`` per level.

    Examples
    --------
    >>> draws = np.arange(5.0)[:, None]
    >>> {k: v.tolist() for k, v in summary_columns("y", draws.mean(0), draws, [0.5],
    ...                                            [50]).items()}
    {'y': [2.0], 'y_q0.5': [2.0], 'y-lo-50': [1.0], 'y-hi-50': [3.0]}
    """
    columns = {name: mean}
    for q in quantiles:
        columns[quantile_column(name, q)] = np.quantile(draws, q, axis=0)
    for lv in levels:
        lo, hi = level_columns(name, lv)
        columns[lo] = np.quantile(draws, 0.5 - lv / 200, axis=0)
        columns[hi] = np.quantile(draws, 0.5 + lv / 200, axis=0)
    return columns


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
        if float(lv) < 1:
            # level=[0.8] is almost always a fraction meant as 80%, not a 0.8% interval.
            raise ValueError(f"level is in percent, in [1, 100): level={lv!r} would be a "
                             f"{float(lv):g}% interval; write level=[{float(lv) * 100:g}] for "
                             f"{float(lv) * 100:g}%.")
    return [float(q) for q in qs], [float(lv) for lv in levels]


def _pieces(weights: np.ndarray, budget: int) -> np.ndarray:
    """Bounds ``[0, ..., len(weights)]`` of consecutive pieces whose ``weights`` sum to at
    most ``budget`` (a piece of one heavier element stands alone).

    Examples
    --------
    >>> _pieces(np.array([2, 2, 2, 5, 1]), 4).tolist()
    [0, 2, 3, 4, 5]
    """
    bounds, total = [0], 0
    for i, weight in enumerate(np.asarray(weights).tolist()):
        if total and total + weight > budget:
            bounds.append(i)
            total = 0
        total += weight
    bounds.append(len(weights))
    return np.asarray(bounds)


class ForecastOutputMixin:
    """``predict`` and ``sample`` of every forecaster (see the module docstring)."""

    # ------------------------------------------------------------- forecasting
    def _draws_at_targets(self, context_df, timestamps, horizon, freq, n_samples,
                          random_state, draw, n_outputs: int, noise_std=None,
                          future_df=None, static_df=None):
        """Posterior draws of a model output at the requested (series, time) rows.

        ``draw(module, batch, grid, n_samples, generators, needed)`` returns the output on a
        union ``grid`` of target times, shape (samples, batch, grid, n_outputs), right at the
        pairs ``needed`` (batch, grid) marks (others may hold anything), drawing each
        series' randomness from its own generator (:func:`series_generators`). With
        ``noise_std(batch, grid)``, the spread (batch, grid, n_outputs) of Gaussian noise
        that, drawn from the same generators, is added to a copy. ``future_df`` and
        ``static_df`` are the covariates of :meth:`predict`.

        Returns
        -------
        (PackedSeries of targets, outputs, noisy outputs or None), arrays of shape
        (samples, rows, n_outputs) in model units, checked finite.
        """
        self._check_fitted()
        check_positive_int(n_samples, "n_samples")
        self._solve_with_current_parameters()
        conv = self.converter_
        context = conv.pack(context_df, argument="context_df", static_df=static_df)
        targets = forecast_targets(conv, context, timestamps=timestamps, horizon=horizon,
                                   freq=freq)
        future, future_position = future_inputs(conv, context, targets, future_df)
        position = pd.Index(context.ids).get_indexer(targets.ids)
        seed = seed_from(random_state)
        device = next(self.module_.parameters()).device
        copies = 1 if noise_std is None else 2
        draw_bytes = 8 * copies * int(n_samples) * len(targets.keys) * n_outputs
        if draw_bytes > MAX_DRAW_BYTES:
            raise ValueError(
                f"n_samples={n_samples} draws at {len(targets.keys)} forecast rows x "
                f"{n_outputs} outputs would take {draw_bytes / 1024**3:.1f} GiB, over the "
                f"{MAX_DRAW_BYTES / 1024**3:.0f} GiB a call may use: ask for fewer n_samples "
                "or fewer timestamps per call (e.g. a series or a horizon at a time).")
        outputs = np.empty((n_samples, len(targets.keys), n_outputs))
        noisy = None if noise_std is None else np.empty_like(outputs)
        spread = None if noise_std is None else np.empty(outputs.shape[1:])
        # Few enough series per solve that one forecast time of all of them fits the budget.
        step = max(1, min(prediction_chunk(self.batch_size), MAX_SOLVE_PAIRS // n_samples))
        self.module_.eval()
        for start in range(0, targets.n_series, step):
            chunk = np.arange(start, min(start + step, targets.n_series))
            batch = context.union_batch(position[chunk], device=device, future=future,
                                        future_series=future_position[position[chunk]])
            generators = series_generators(seed, targets.ids[chunk])
            self._draw_chunk(draw, batch, targets, chunk, n_samples, generators, outputs,
                             noise_std, spread)
            if noisy is not None:
                for k, generator in zip(chunk, generators):
                    own = slice(targets.indptr[k], targets.indptr[k + 1])
                    noise = torch.randn(outputs[:, own].shape, generator=generator).numpy()
                    noisy[:, own] = outputs[:, own] + noise * spread[own]
        self._check_finite_forecast(targets, outputs, outputs if noisy is None else noisy)
        return targets, outputs, noisy

    def _draw_chunk(self, draw, batch, targets: PackedSeries, chunk: np.ndarray,
                    n_samples: int, generators: list[torch.Generator],
                    outputs: np.ndarray, noise_std=None, spread: np.ndarray | None = None
                    ) -> None:
        """Fill ``outputs`` (samples, rows, n_outputs) at the rows of the series ``chunk``,
        in pieces of forecast times of at most :data:`MAX_SOLVE_PAIRS` draws each, and with
        ``noise_std`` (as in :meth:`_draws_at_targets`) ``spread`` (rows, n_outputs) too.

        Every piece solves from the series' origins again and redraws the same posterior
        draws (the generators are rewound), so the pieces give the numbers one solve would.
        """
        device = batch.values.device
        rows = targets.rows_of(chunk)
        which = np.repeat(np.arange(len(chunk)), targets.lengths[chunk])
        # Target times on the batch's clock: since each series' first context row.
        grid_times, _, column = solver_grid(targets.times[rows] - batch.origins[which],
                                            torch.float32)
        per_time = np.bincount(column, minlength=len(grid_times)) * n_samples
        bounds = _pieces(per_time, MAX_SOLVE_PAIRS)
        states = [g.get_state() for g in generators]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            for generator, state in zip(generators, states):
                generator.set_state(state)
            inside = (column >= lo) & (column < hi)
            grid = torch.as_tensor(grid_times[lo:hi], dtype=torch.float32, device=device)
            # Each series is asked for its own few times of the piece's union grid: the
            # model need only solve and decode those (series, time) pairs.
            needed = torch.zeros(len(chunk), hi - lo, dtype=torch.bool, device=device)
            needed[torch.as_tensor(which[inside], device=device),
                   torch.as_tensor(column[inside] - lo, device=device)] = True
            with torch.no_grad():
                out = draw(self.module_, batch, grid, n_samples, generators, needed)
                if noise_std is not None:
                    std = noise_std(batch, grid).cpu().numpy()
                    spread[rows[inside]] = std[which[inside], column[inside] - lo]
            outputs[:, rows[inside]] = out.cpu().numpy()[:, which[inside], column[inside] - lo]

    def _forecast_draws(self, context_df, timestamps, horizon, freq, n_samples, random_state,
                        noisy: bool, future_df=None, static_df=None):
        """Targets and draws at them in the user's units: (PackedSeries, means, draws) with
        means and draws of shape (samples, rows, channels)."""
        self._check_fitted()
        targets, means, draws = self._draws_at_targets(
            context_df, timestamps, horizon, freq, n_samples, random_state,
            self._predictive_means, len(self.converter_.channels),
            noise_std=self.module_.observation_std_at if noisy else None,
            future_df=future_df, static_df=static_df)
        scaler = self.converter_.scaler_
        means = scaler.inverse_transform(means)
        draws = scaler.inverse_transform(draws) if noisy else means
        return targets, means, draws

    def _check_finite_forecast(self, targets: PackedSeries, means: np.ndarray,
                               draws: np.ndarray) -> None:
        """A forecast is finite or an error, never NaN passed on (a fixed-step solve that
        diverges, or weights that are not finite, give NaN without a solver assertion)."""
        bad = ~(np.isfinite(means).all(axis=(0, 2)) & np.isfinite(draws).all(axis=(0, 2)))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            series = targets.ids[targets.series_of_row[row]]
            when = self.converter_.time_axis_.from_keys(targets.keys[row:row + 1]).iloc[0]
            raise SolverError(
                f"The forecast is not finite (NaN or inf) at {int(bad.sum())} of {len(bad)} "
                f"requested rows, e.g. series {show(series)} at time {when}: the model's state "
                f"diverged. {_FORECAST_REMEDY}"
            )

    def predict(self, context_df: pd.DataFrame, timestamps: object = None, *,
                horizon: object = None, freq: object = None,
                quantiles: Sequence[float] | None = (0.1, 0.5, 0.9),
                level: Sequence[float] | None = None, n_samples: int = 100,
                random_state: int | None = 0, future_df: pd.DataFrame | None = None,
                static_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast (or interpolate) each series at any timestamps.

        Parameters
        ----------
        context_df : DataFrame
            The observed context of each series (the fitted columns; any length and times).
        timestamps : DataFrame or sequence of times, optional
            A frame of (id, time) rows to forecast, or times applied to every series of the
            context. Times may lie before, between or after the observations.
        horizon : duration, number or sequence of them, optional
            Instead of ``timestamps``: offsets from each series' last row in ``context_df``
            (observed or not; a sequence), or the end of a regular grid spaced by ``freq``.
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
        future_df : DataFrame, optional
            With future or impulse covariates: their rows after each series' context, up to
            (at least) its last forecast time: id, time and those columns, every cell given
            (0 where no dose is given). Another ``future_df`` gives the forecast under other
            inputs (a what-if).
        static_df : DataFrame, optional
            With static features: one row per series of the context.

        Returns
        -------
        DataFrame
            ``id_col``, ``time_col`` in the user's types, the mean of each target (column
            named as the target) and the quantile / interval columns.
        """
        qs, levels = _check_quantiles(quantiles, level)
        targets, means, draws = self._forecast_draws(context_df, timestamps, horizon, freq,
                                                     n_samples, random_state, noisy=True,
                                                     future_df=future_df, static_df=static_df)
        conv = self.converter_
        columns: dict[str, np.ndarray] = {}
        for c, name in enumerate(conv.channels):
            columns.update(summary_columns(name, means[:, :, c].mean(0), draws[:, :, c], qs,
                                           levels))
        return conv.to_frame(targets.ids[targets.series_of_row], targets.keys, columns)

    def sample(self, context_df: pd.DataFrame, timestamps: object = None, *,
               horizon: object = None, freq: object = None, n_samples: int = 100,
               random_state: int | None = None, noise: bool = True,
               future_df: pd.DataFrame | None = None,
               static_df: pd.DataFrame | None = None) -> pd.DataFrame:
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
        if not isinstance(noise, (bool, np.bool_)):
            raise TypeError(f"noise must be True (draws of observations) or False (draws of "
                            f"the mean trajectory); got {noise!r}.")
        targets, means, draws = self._forecast_draws(context_df, timestamps, horizon, freq,
                                                     n_samples, random_state, noisy=noise,
                                                     future_df=future_df, static_df=static_df)
        conv = self.converter_
        ids = targets.ids[targets.series_of_row]
        frames = []
        for s in range(n_samples):
            frame = conv.to_frame(ids, targets.keys,
                                  {c: draws[s, :, i] for i, c in enumerate(conv.channels)})
            frame.insert(0, "sample_id", s)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
