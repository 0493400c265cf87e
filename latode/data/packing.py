"""Ragged irregular series packed once into flat arrays, and batched for ODE solves.

:class:`PackedSeries` stores every observation of every series in one sorted array with an
``indptr`` of series boundaries (as neuralforecast does), so nothing loops over series in
Python. :meth:`PackedSeries.union_batch` lays a batch out on the union of its timestamps as
one grid, values and masks of shape (batch, grid, channels); one ODE solve serves the whole
batch (Rubanova et al. 2019). Each series' times are counted from its own first row, so what
a model computes for a series does not depend on which other series share its batch. (The
encoders step through each series' own observations inside that grid.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latode.data.covariates import control_rows
from latode.data.validation import show

__all__ = ["PackedSeries", "UnionBatch", "solver_grid"]


def solver_grid(times: np.ndarray, dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    """Sorted distinct times *in the solver's dtype*, for a strictly increasing ODE grid.

    Float times that differ only below the dtype's precision (``0.1 + 0.2`` and ``0.3`` in
    float32) share one grid point.

    Returns
    -------
    grid : ndarray (float64 holding dtype-exact values), first : index of each grid point's
    first occurrence in ``times``, inverse : grid position of each element of ``times``.

    Examples
    --------
    >>> grid, first, inverse = solver_grid(np.array([0.3, 0.1 + 0.2, 0.0]), torch.float32)
    >>> len(grid), inverse.tolist()
    (2, [1, 1, 0])
    """
    cast = torch.as_tensor(np.asarray(times, dtype=np.float64)).to(dtype).to(torch.float64)
    return np.unique(cast.numpy(), return_index=True, return_inverse=True)


@dataclass
class UnionBatch:
    """Series on the union of their timestamps, each counted from its own first row.

    Attributes
    ----------
    times : Tensor, shape (grid,)
        Strictly increasing model times since each series' first row; ``times[0]`` is 0.
    values : Tensor, shape (batch, grid, channels)
        Zero where not observed.
    mask : Tensor, shape (batch, grid, channels)
        1.0 where observed.
    present : Tensor, shape (batch, grid)
        1.0 where the series has a row at that time (even with all channels NaN).
    series : ndarray, shape (batch,)
        Positions of the series in the :class:`PackedSeries`.
    origins : ndarray, shape (batch,)
        Model time (float64) of each series' first row: series ``i`` is at grid time ``t``
        at model time ``origins[i] + t``.
    events : Tensor or None, shape (batch, grid)
        Number of events at each time (point processes only).
    inputs, inputs_mask : Tensor or None, shape (batch, grid, covariates)
        Covariate values (zero where not given) and where they are given.
    static : Tensor or None, shape (batch, static features)
        Each series' encoded static features.
    control_times : Tensor or None, shape (batch, K)
        Grid times (since each series' first row) of the changes of its controls, the future
        and impulse covariates, including any given after its rows
        (:func:`~latode.data.covariates.control_rows`).
    control_steps, control_impulses : Tensor or None, shape (batch, K, ...)
        The jumps of the future covariates and the amounts of the impulses at those times.
    """

    times: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor
    series: np.ndarray
    origins: np.ndarray
    events: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    inputs_mask: torch.Tensor | None = None
    static: torch.Tensor | None = None
    control_times: torch.Tensor | None = None
    control_steps: torch.Tensor | None = None
    control_impulses: torch.Tensor | None = None


@dataclass
class PackedSeries:
    """Every observation of many series, sorted by series then time.

    Attributes
    ----------
    ids : ndarray, shape (n_series,)
        Series ids in the user's type.
    indptr : ndarray, shape (n_series + 1,)
        Rows ``indptr[i]:indptr[i+1]`` belong to series ``i``.
    keys : ndarray, shape (n_rows,)
        Exact time keys (int64 ns or float64).
    times : ndarray, shape (n_rows,)
        Model times (float64).
    values : ndarray, shape (n_rows, channels)
        Values, NaN where not observed.
    events : ndarray or None, shape (n_rows,)
        Number of events at each row (point processes only).
    inputs : ndarray or None, shape (n_rows, covariates)
        Scaled covariates, NaN where a row does not give one.
    input_kinds : tuple of str
        ``"past"``, ``"future"`` or ``"impulse"`` for each column of ``inputs``.
    static : ndarray or None, shape (n_series, static features)
        Encoded static features of each series.
    """

    ids: np.ndarray
    indptr: np.ndarray
    keys: np.ndarray
    times: np.ndarray
    values: np.ndarray
    events: np.ndarray | None = None
    inputs: np.ndarray | None = None
    input_kinds: tuple[str, ...] = ()
    static: np.ndarray | None = None

    @property
    def n_series(self) -> int:
        return len(self.ids)

    @property
    def n_channels(self) -> int:
        return self.values.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def scored_events(self) -> np.ndarray | None:
        """``events`` where a Poisson likelihood can score them: zero in series of one row,
        whose window [first, last row] has no length (see
        :func:`latode.nn.point_process.scored_events`, the same rule on batches)."""
        if self.events is None:
            return None
        return self.events * (self.lengths > 1)[self.series_of_row]

    @property
    def series_of_row(self) -> np.ndarray:
        """Position of the series each row belongs to, shape (n_rows,)."""
        return np.repeat(np.arange(self.n_series), self.lengths)

    def rows_of(self, series: np.ndarray) -> np.ndarray:
        """Row indices of the given series positions, in order."""
        starts, ends = self.indptr[series], self.indptr[series + 1]
        lengths = ends - starts
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return np.repeat(starts, lengths) + offsets

    def subset(self, series: np.ndarray) -> PackedSeries:
        """A new :class:`PackedSeries` with only the given series positions."""
        series = np.asarray(series, dtype=np.int64)
        rows = self.rows_of(series)
        indptr = np.concatenate([[0], np.cumsum(self.lengths[series])])
        return PackedSeries(self.ids[series], indptr, self.keys[rows], self.times[rows],
                            self.values[rows],
                            None if self.events is None else self.events[rows],
                            None if self.inputs is None else self.inputs[rows],
                            self.input_kinds,
                            None if self.static is None else self.static[series])

    @property
    def controls(self) -> list[int]:
        """Columns of ``inputs`` that are controls (future and impulse covariates)."""
        return [j for j, kind in enumerate(self.input_kinds) if kind != "past"]

    def union_batch(self, series: np.ndarray | None = None, *, dtype=torch.float32,
                    device: str | torch.device = "cpu",
                    future: PackedSeries | None = None,
                    future_series: np.ndarray | None = None) -> UnionBatch:
        """Batch ``series`` (positions; all when ``None``) on the union of their times, each
        series' times counted from its own first row.

        A series' grid times thus mean the same (its age) wherever the other series of the
        batch start, so what a model computes for it depends on its own rows only; float32
        keeps the resolution of short gaps in series that start far from the training
        origin.
        """
        series = np.arange(self.n_series) if series is None else np.asarray(series, np.int64)
        rows = self.rows_of(series)
        batch_row = np.repeat(np.arange(len(series)), self.lengths[series])
        origins = self.times[self.indptr[series]]
        grid_times, _, column = solver_grid(self.times[rows] - origins[batch_row], dtype)
        pairs = batch_row * len(grid_times) + column
        if len(np.unique(pairs)) < len(pairs):
            clash = series[batch_row[np.flatnonzero(np.diff(np.sort(pairs)) == 0)[0]]]
            raise ValueError(
                f"Series {show(self.ids[clash])} has timestamps closer together than the model's "
                f"{dtype} time resolution at their distance from the series' first row; merge "
                f"(e.g. average) those rows, or split the series."
            )
        shape = (len(series), len(grid_times))
        values, mask, present = self._scatter(rows, batch_row, column, shape)
        events = None
        if self.events is not None:
            events = np.zeros(shape)
            events[batch_row, column] = self.events[rows]
            events = torch.as_tensor(events, dtype=dtype, device=device)
        batch = UnionBatch(
            times=torch.as_tensor(grid_times, dtype=dtype, device=device),
            values=torch.as_tensor(values, dtype=dtype, device=device),
            mask=torch.as_tensor(mask, dtype=dtype, device=device),
            present=torch.as_tensor(present, dtype=dtype, device=device),
            series=series, origins=origins, events=events,
        )
        if self.static is not None:
            batch.static = torch.as_tensor(self.static[series], dtype=dtype, device=device)
        if self.inputs is not None:
            self._add_inputs(batch, rows, batch_row, column, dtype, device, future,
                             future_series)
        return batch

    def _add_inputs(self, batch: UnionBatch, rows, batch_row, column, dtype, device,
                    future: PackedSeries | None, future_series: np.ndarray | None) -> None:
        """Covariates and the control schedule of ``batch``."""
        def tensor(array):
            return torch.as_tensor(array, dtype=dtype, device=device)

        shape = tuple(batch.present.shape) + (self.inputs.shape[1],)
        given = ~np.isnan(self.inputs[rows])
        inputs, inputs_mask = np.zeros(shape), np.zeros(shape)
        inputs[batch_row, column] = np.where(given, self.inputs[rows], 0.0)
        inputs_mask[batch_row, column] = given
        batch.inputs, batch.inputs_mask = tensor(inputs), tensor(inputs_mask)
        controls = self.controls
        if not controls:
            return
        times = self.times[rows] - batch.origins[batch_row]
        values = self.inputs[rows][:, controls]
        if future is not None:
            take = np.flatnonzero(future_series >= 0)
            extra = future.rows_of(future_series[take])
            extra_row = np.repeat(take, future.lengths[future_series[take]])
            times = np.concatenate([times, future.times[extra] - batch.origins[extra_row]])
            values = np.concatenate([values, future.inputs[extra][:, controls]])
            batch_row = np.concatenate([batch_row, extra_row])
            order = np.lexsort((times, batch_row))
            times, values, batch_row = times[order], values[order], batch_row[order]
        at, steps, impulses = control_rows(times, values, batch_row, len(batch.series),
                                           [self.input_kinds[j] for j in controls])
        batch.control_times = tensor(at)
        batch.control_steps, batch.control_impulses = tensor(steps), tensor(impulses)

    def union_batches(self, series: np.ndarray, batch_size: int, *, dtype=torch.float32,
                      device: str | torch.device = "cpu"):
        """Yield :meth:`union_batch` of consecutive chunks of ``batch_size`` positions."""
        series = np.asarray(series, dtype=np.int64)
        for start in range(0, len(series), batch_size):
            yield self.union_batch(series[start:start + batch_size], dtype=dtype, device=device)

    def _scatter(self, rows, batch_row, column, shape):
        values = np.zeros(shape + (self.n_channels,))
        mask = np.zeros(shape + (self.n_channels,))
        present = np.zeros(shape)
        observed = ~np.isnan(self.values[rows])
        values[batch_row, column] = np.where(observed, self.values[rows], 0.0)
        mask[batch_row, column] = observed
        present[batch_row, column] = 1.0
        return values, mask, present
