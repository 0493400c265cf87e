"""What a forecaster's covariates mean for its module: its input sizes, and where the doses'
compartments start."""

from __future__ import annotations

import numpy as np

from latode.data import IrregularFrameConverter, PackedSeries
from latode.nn.controls import initial_rates

__all__ = ["covariate_shapes", "initialise_dose_rates", "input_spacing"]


def covariate_shapes(converter: IrregularFrameConverter) -> dict:
    """``n_inputs``, ``n_static`` and ``controls`` of a forecaster's module (the rates are
    placeholders until :func:`initialise_dose_rates` sees the data)."""
    kinds = converter.roles.kinds
    controls = None
    if converter.roles.controls:
        controls = (kinds.count("future"), kinds.count("impulse"), initial_rates(1.0))
    return {"n_inputs": len(kinds), "n_static": converter.n_static, "controls": controls}


def input_spacing(packed: PackedSeries) -> float:
    """Typical time between a series' impulses (or, with at most one per series, between its
    rows), in model units: where the impulses' compartments start their rates."""
    impulse = [j for j, kind in enumerate(packed.input_kinds) if kind == "impulse"]
    rows = np.ones(len(packed.times), dtype=bool)
    if impulse:
        given = np.nan_to_num(packed.inputs[:, impulse]) != 0
        if (np.bincount(packed.series_of_row[given.any(1)],
                        minlength=packed.n_series) > 1).any():
            rows = given.any(1)
    series, times = packed.series_of_row[rows], packed.times[rows]
    same = series[1:] == series[:-1]
    gaps = np.diff(times)[same]
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 1.0


def initialise_dose_rates(module, packed: PackedSeries) -> None:
    """Start a module's dose compartments (if it has any) at rates around the data's
    spacing of doses (:func:`input_spacing`)."""
    response = getattr(module, "dose_response", None)
    if response is not None:
        response.set_rates(initial_rates(input_spacing(packed)))
