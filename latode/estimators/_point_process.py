"""The point process of a fitted latent ODE forecaster: intensities, event draws, split scores.

:class:`EventModel` is a component that :class:`~latode.estimators.LatentODEForecaster`
builds when it is fitted with ``point_process=True``: the latent state drives an event
intensity λ(t) (see :mod:`latode.nn.point_process`). It is handed the pieces of the fitted
forecaster it reads — the module, the converter and three of the forecaster's steps — and
reaches into nothing else, so the forecaster's ``predict_intensity``, ``sample_events`` and
``score_components`` are thin delegations. Rates are reported per unit of the user's time:
one unit of a numeric time column, one day for datetimes and timedeltas, or the ``per=``
given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from latode.data import PackedSeries
from latode.data.converter import IrregularFrameConverter
from latode.data.packing import solver_grid
from latode.data.targets import MAX_MODEL_TIME
from latode.data.times import model_time_per_unit
from latode.estimators._base import seed_from, seeded_by
from latode.estimators._forecast_output import (
    _FORECAST_REMEDY,
    MAX_SOLVE_PAIRS,
    _check_quantiles,
    series_generators,
    summary_columns,
)
from latode.estimators._inputs import check_positive_int
from latode.estimators._schedule import prediction_chunk
from latode.exceptions import SolverError
from latode.nn.latent_ode import LatentODE

__all__ = ["EventModel", "INTENSITY_COLUMN"]

#: name of the intensity column of :meth:`EventModel.predict_intensity`
INTENSITY_COLUMN = "intensity"

#: Points of each series' window on which ``sample_events`` bounds its intensity.
_BOUND_POINTS = 65


class EventModel:
    """``predict_intensity``, ``sample_events`` and ``score_components`` of a fitted latent
    ODE with a point process (see the module docstring).

    Parameters
    ----------
    module : LatentODE
        The fitted module, built with ``point_process=True``.
    converter : IrregularFrameConverter
        The fitted converter: packs frames, writes frames, holds the time axis.
    batch_size : int or "auto"
        The forecaster's ``batch_size``: series per solve (:func:`prediction_chunk`).
    prepare : callable
        ``prepare()`` makes ``module`` solve with the forecaster's current solver parameters
        and raises on bad ones (``_solve_with_current_parameters``); called once the
        arguments of a call are checked.
    draws_at_targets : callable
        The forecaster's draws of a model output at requested (series, time) rows
        (``ForecastOutputMixin._draws_at_targets``), which also checks the draws' arguments
        and calls ``prepare``.
    log_unit_change : callable
        ``log_unit_change(packed)``: from model to user units of ``packed``'s log-densities
        (``BaseForecaster._log_unit_change``).
    """

    def __init__(self, module: LatentODE, converter: IrregularFrameConverter,
                 batch_size: int | str, *, prepare: Callable[[], None],
                 draws_at_targets: Callable[..., tuple],
                 log_unit_change: Callable[[PackedSeries], tuple[float, float]]) -> None:
        self.module = module
        self.converter = converter
        self.batch_size = batch_size
        self.prepare = prepare
        self.draws_at_targets = draws_at_targets
        self.log_unit_change = log_unit_change

    def predict_intensity(self, context_df: pd.DataFrame, timestamps: object = None, *,
                          horizon: object = None, freq: object = None,
                          quantiles=(0.1, 0.5, 0.9), level=None, n_samples: int = 100,
                          random_state: int | None = 0, per: object = None) -> pd.DataFrame:
        """Event intensity λ(t) of each series at any timestamps, across posterior draws
        (as :meth:`LatentODEForecaster.predict_intensity
        <latode.estimators.LatentODEForecaster.predict_intensity>`).

        Returns
        -------
        DataFrame
            ``id_col``, ``time_col``, ``intensity`` (posterior mean rate, events per ``per``)
            and ``intensity_q<q>`` / ``intensity-lo-<level>`` / ``intensity-hi-<level>``.
        """
        qs, levels = _check_quantiles(quantiles, level)
        factor = 1.0 / model_time_per_unit(self.converter.time_axis_, per)

        def draw(module, batch, grid, n, generator, needed):
            z, context = module.posterior_draws(batch, n, generator)
            _, log_rate, _ = module.decode_with_intensity(z, context, grid, needed)
            return torch.exp(log_rate).unsqueeze(-1)

        targets, rates, _ = self.draws_at_targets(context_df, timestamps, horizon, freq,
                                                  n_samples, random_state, draw, 1)
        rates = rates[..., 0] / factor
        columns = summary_columns(INTENSITY_COLUMN, rates.mean(0), rates, qs, levels)
        return self.converter.to_frame(targets.ids[targets.series_of_row], targets.keys,
                                       columns)

    def sample_events(self, context_df: pd.DataFrame, horizon: object, *,
                      n_samples: int = 10, random_state: int | None = None,
                      max_tries: int = 8) -> pd.DataFrame:
        """Draw future event times by thinning (as :meth:`LatentODEForecaster.sample_events
        <latode.estimators.LatentODEForecaster.sample_events>`).

        Returns
        -------
        DataFrame
            ``sample_id``, ``id_col``, ``time_col``: one row per drawn event, sorted.
        """
        check_positive_int(n_samples, "n_samples")
        check_positive_int(max_tries, "max_tries")
        self.prepare()
        if horizon is None:
            raise ValueError("horizon is required: the length of the window to draw events in.")
        span = model_time_per_unit(self.converter.time_axis_, horizon, "horizon")
        if span > MAX_MODEL_TIME:
            raise ValueError(
                f"horizon={horizon!r} is {span:.3g} model time units (at most "
                f"{MAX_MODEL_TIME:.0e}; one unit is the time_scale, or the training span by "
                "default): the model cannot forecast that far. Pass a shorter horizon.")
        if n_samples * _BOUND_POINTS > MAX_SOLVE_PAIRS:
            raise ValueError(
                f"n_samples={n_samples} draws of a series' intensity on its {_BOUND_POINTS} "
                f"bound points exceed the {MAX_SOLVE_PAIRS:,} a solve may take; ask for at most "
                f"{MAX_SOLVE_PAIRS // _BOUND_POINTS} draws per call and call again for more.")
        conv = self.converter
        context = conv.pack(context_df, argument="context_df")
        seed = seed_from(random_state)
        device = next(self.module.parameters()).device
        frames = []
        # The bound reads every series' draws on every series' points: n_samples x step^2 x
        # _BOUND_POINTS triples, kept within the budget of one solve.
        step = max(1, min(prediction_chunk(self.batch_size),
                          math.isqrt(MAX_SOLVE_PAIRS // (n_samples * _BOUND_POINTS))))
        for start in range(0, context.n_series, step):
            chunk = np.arange(start, min(start + step, context.n_series))
            batch = context.union_batch(chunk, device=device)
            generators = series_generators(seed, context.ids[chunk])
            # The window on the batch's clock (since each series' first row), and back.
            last = torch.as_tensor(context.times[context.indptr[chunk + 1] - 1] - batch.origins,
                                   dtype=torch.float32, device=device)
            with torch.no_grad():
                draws = self.module.posterior_draws(batch, n_samples, generators)
                s_idx, b_idx, times = self._thin(draws, last, last + span, generators,
                                                 max_tries)
            frames.append(pd.DataFrame({
                "sample_id": s_idx, "series": chunk[b_idx],
                "t": batch.origins[b_idx] + times}))
        events = pd.concat(frames, ignore_index=True).sort_values(
            ["series", "sample_id", "t"], kind="stable", ignore_index=True)
        frame = conv.to_frame(context.ids[events["series"].to_numpy()],
                              conv.time_axis_.to_keys(events["t"].to_numpy()), {})
        frame.insert(0, "sample_id", events["sample_id"].to_numpy())
        return frame

    def _rates_at(self, draws, times: torch.Tensor) -> torch.Tensor:
        """λ at sorted (possibly repeated) model ``times``, shape (samples, batch, len), on
        the CPU, where the thinning draws live; a non-finite λ is a :class:`SolverError`."""
        grid, _, inverse = solver_grid(times.numpy(), torch.float32)
        z, context = draws
        grid = torch.as_tensor(grid, dtype=torch.float32, device=z.device)
        _, log_rate, _ = self.module.decode_with_intensity(z, context, grid)
        rates = torch.exp(log_rate).cpu()[..., torch.as_tensor(inverse)]
        if not torch.isfinite(rates).all():
            raise SolverError(
                "sample_events: the intensity is not finite (NaN or inf) in the window: the "
                f"model's state diverged. {_FORECAST_REMEDY}"
            )
        return rates

    def _thin(self, draws, start, end, generators, max_tries):
        """Event times in each series' window [start, end) by thinning: candidates from a
        homogeneous process at a bound above λ, each kept with probability λ / bound.

        Each series draws from its own generator, and its bound comes from its own window
        (65 points, so a short window is never judged by a few), so its events do not
        depend on the other series of the batch. A series whose λ passes its bound doubles
        the bound and draws again, alone.

        Returns
        -------
        (sample index, batch index, model time) arrays of the kept events.
        """
        n_samples, n_series = draws[0].shape[:2]
        start, end = start.cpu(), end.cpu()
        length = end - start
        own = start[:, None] + length[:, None] * torch.linspace(0.0, 1.0, _BOUND_POINTS)
        rates = self._rates_at_each(draws, own.ravel())  # (samples, batch, batch * 65)
        mine = rates.reshape(n_samples, n_series, n_series, -1)[:, torch.arange(n_series),
                                                                 torch.arange(n_series)]
        bound = 2.0 * mine.amax(-1).clamp_min(1e-6)  # (samples, batch)
        candidates = float((bound * length).sum())  # expected, over all draws and series
        if candidates * n_samples * n_series > 16 * MAX_SOLVE_PAIRS:
            raise ValueError(
                f"sample_events would draw about {candidates:.3g} candidate events for "
                f"{n_series} series x {n_samples} draws (the intensity times the horizon), too "
                "many to thin in memory: pass a shorter horizon or fewer n_samples.")
        kept, pending = [], list(range(n_series))
        for _ in range(max_tries):
            drawn = []
            for b in pending:
                counts = torch.poisson(bound[:, b] * length[b], generator=generators[b]).long()
                s_idx = torch.repeat_interleave(torch.arange(n_samples), counts)
                times = start[b] + length[b] * torch.rand(len(s_idx), generator=generators[b])
                drawn.append((b, s_idx, times))
            every = torch.cat([times for _, _, times in drawn])
            rate_all = self._rates_at_each(draws, every)  # (samples, batch, candidates)
            offset, still = 0, []
            for b, s_idx, times in drawn:
                at = torch.arange(offset, offset + len(times))
                offset += len(times)
                rate = rate_all[s_idx, b, at]
                if (rate > bound[s_idx, b]).any():
                    bound[:, b] = bound[:, b] * 2.0
                    still.append(b)
                    continue
                keep = torch.rand(len(times), generator=generators[b]) * bound[s_idx, b] < rate
                kept.append((s_idx[keep], torch.full((int(keep.sum()),), b), times[keep]))
            pending = still
            if not pending:
                if not kept:
                    nothing = torch.zeros(0, dtype=torch.long)
                    return nothing.numpy(), nothing.numpy(), np.zeros(0, dtype=np.float32)
                return tuple(torch.cat(part).numpy() for part in zip(*kept))
        raise RuntimeError(
            f"sample_events: the intensity kept exceeding its bound after {max_tries} "
            "doublings; the fitted λ is extremely peaked. Raise max_tries."
        )

    def _rates_at_each(self, draws, times: torch.Tensor) -> torch.Tensor:
        """λ at ``times`` in any order (possibly repeated), shape (samples, batch, len)."""
        if len(times) == 0:
            return torch.zeros(draws[0].shape[:2] + (0,))
        order = torch.argsort(times)
        rates = torch.empty(draws[0].shape[:2] + (len(times),))
        rates[..., order] = self._rates_at(draws, times[order])
        return rates

    def score_components(self, df: pd.DataFrame, *, n_samples: int = 16,
                         random_state: int | None = 0) -> dict[str, float]:
        """The terms of the evidence lower bound of ``df``, apart (as
        :meth:`LatentODEForecaster.score_components
        <latode.estimators.LatentODEForecaster.score_components>`, which adds ``total``).

        Returns
        -------
        dict
            ``observations`` (per observed value, user units), ``events`` (per event) and
            ``kl`` (per series), each expected over ``n_samples`` posterior draws.
        """
        check_positive_int(n_samples, "n_samples")
        self.prepare()
        packed = self.converter.pack(df, argument="df")
        generator = torch.Generator().manual_seed(seed_from(random_state))
        device = next(self.module.parameters()).device
        sums = {"observations": 0.0, "events": 0.0, "kl": 0.0}
        with torch.no_grad(), seeded_by(generator):
            for batch in packed.union_batches(np.arange(packed.n_series),
                                              prediction_chunk(self.batch_size), device=device):
                terms = self.module.elbo_terms(batch.times, batch.values, batch.mask,
                                               events=batch.events, window=batch.present,
                                               n_samples=n_samples)
                for key in sums:
                    sums[key] += float(terms[key].mean(0).sum() if key != "kl"
                                       else terms[key].sum())
        if not all(np.isfinite(value) for value in sums.values()):
            raise SolverError(
                f"score_components: a term of the bound is not finite (NaN or inf): "
                f"{sums}. {_FORECAST_REMEDY}"
            )
        n_values = float((~np.isnan(packed.values)).sum())
        n_events = float(packed.scored_events.sum())
        values_jacobian, per_event = self.log_unit_change(packed)
        # With no events the term is only -∫λ dt, which the change of units leaves alone.
        return {
            "observations": (sums["observations"] - values_jacobian) / max(n_values, 1.0),
            "events": sums["events"] / max(n_events, 1.0) + (per_event if n_events else 0.0),
            "kl": sums["kl"] / packed.n_series,
        }
