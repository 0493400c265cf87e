"""The 1-D periodic toy set of Rubanova et al. (2019), section 4.1 of the Latent ODE paper.

As in ``Periodic_1d`` of their ``generate_timeseries.py`` (with the arguments of
``lib/parse_datasets.py``): every series shares one irregular time grid, ``t = 0`` plus
``n_points - 1`` times drawn uniformly on ``[0, max_t]`` and sorted, and is

    y(t) = amplitude * sin(2 pi f t + phase) + offset,

with ``f ~ U(0.4, 0.8)``, amplitude 1, phase 0 and ``offset ~ 1 + N(0, 0.1^2)``. Each series
then keeps ``n_observed`` of the points at random (their ``--sample-tp``). With
``n_extrapolate > 0``, ``n_extrapolate`` more times are drawn uniformly on
``(max_t, max_t (n_points + n_extrapolate) / n_points]``, the same density as the window;
they are the extrapolation targets. (Their ``--extrap`` instead splits the one grid into
halves by index, so the observed part ends near, not at, a fixed time.)

One deliberate difference: their ``add_noise`` adds ``noise_weight * U(0, 1)`` noise, which is
biased upwards; here the noise is ``N(0, noise_std^2)`` so that ``truth`` is the mean of
``observed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latode._params import Interval
from latode.datasets._common import check_number, check_range, make_rng, wide_to_long

__all__ = ["PeriodicData", "make_periodic"]


@dataclass(frozen=True)
class PeriodicData:
    """The output of :func:`make_periodic`.

    Attributes
    ----------
    observed : pandas.DataFrame
        ``unique_id`` (int), ``ds`` (float), ``y``: ``n_observed`` noisy points per series.
    future : pandas.DataFrame
        The ``n_extrapolate`` noisy points after the observation window (empty when 0).
    truth : pandas.DataFrame
        Noise-free ``y`` on the whole grid, ``n_points + n_extrapolate`` rows per series.
    params : pandas.DataFrame
        Indexed by ``unique_id``: ``frequency``, ``amplitude``, ``phase``, ``offset``.
    """

    observed: pd.DataFrame
    future: pd.DataFrame
    truth: pd.DataFrame
    params: pd.DataFrame


def _check_periodic_args(
    n_series: int, n_points: int, n_observed: int, noise_std: float, n_extrapolate: int,
    max_t: float,
) -> None:
    func = "make_periodic"
    check_number(func, "n_series", n_series, Interval(int, 1, None, closed="left"))
    check_number(func, "n_points", n_points, Interval(int, 1, None, closed="left"))
    check_number(func, "n_observed", n_observed, Interval(int, 1, n_points))
    check_number(func, "n_extrapolate", n_extrapolate, Interval(int, 0, None, closed="left"))
    check_number(func, "noise_std", noise_std, Interval(float, 0, None, closed="left"))
    check_number(func, "max_t", max_t, Interval(float, 0, None, closed="neither"))


def make_periodic(
    n_series: int = 1000,
    n_points: int = 100,
    n_observed: int = 50,
    noise_std: float = 0.01,
    n_extrapolate: int = 0,
    *,
    max_t: float = 5.0,
    freq_range: tuple[float, float] = (0.4, 0.8),
    amplitude_range: tuple[float, float] = (1.0, 1.0),
    phase_range: tuple[float, float] = (0.0, 0.0),
    random_state: Any = 0,
) -> PeriodicData:
    """Irregularly sampled noisy sinusoids (Rubanova et al. 2019, "periodic" toy set).

    See the module docstring for the generating process. The defaults reproduce the paper's
    set-up (100 points on ``[0, 5]``, noise 0.01, frequency in ``[0.4, 0.8]``, amplitude 1,
    phase 0); widen ``amplitude_range`` or ``phase_range`` for a harder set.

    Parameters
    ----------
    n_series : int
        Number of series.
    n_points : int
        Points of the shared grid in the observation window ``[0, max_t]``.
    n_observed : int
        Points each series keeps at random from its window; ``<= n_points``.
    noise_std : float
        Standard deviation of the Gaussian observation noise.
    n_extrapolate : int
        Grid points after the window, returned (noisy) in ``future``.
    max_t : float
        End of the observation window.
    freq_range, amplitude_range, phase_range : (float, float)
        Uniform ranges of each series' frequency, amplitude and phase (radians).
    random_state : None, int or numpy.random.Generator
        Seed for the grid, the parameters, the subsampling and the noise.

    Returns
    -------
    PeriodicData
        ``observed``, ``future`` and ``truth`` long frames (channel ``y``) and ``params``.

    Examples
    --------
    >>> data = make_periodic(n_series=3, n_points=20, n_observed=5, random_state=0)
    >>> data.observed.shape, data.truth.shape
    ((15, 3), (60, 3))
    >>> bool(data.truth["ds"].min() == 0.0 and data.truth["ds"].max() <= 5.0)
    True
    """
    _check_periodic_args(n_series, n_points, n_observed, noise_std, n_extrapolate, max_t)
    func = "make_periodic"
    freq = check_range(func, "freq_range", freq_range)
    amplitude = check_range(func, "amplitude_range", amplitude_range)
    phase = check_range(func, "phase_range", phase_range)
    rng = make_rng(func, random_state)

    # The window's points lie in [0, max_t] and the future's after it, so that "observed"
    # and "future" never interleave in time.
    end = float(max_t) * (n_points + n_extrapolate) / n_points
    grid = np.concatenate([
        [0.0],
        np.sort(rng.uniform(0.0, max_t, n_points - 1)),
        np.sort(rng.uniform(max_t, end, n_extrapolate)),
    ])
    params = pd.DataFrame(
        {
            "frequency": rng.uniform(*freq, n_series),
            "amplitude": rng.uniform(*amplitude, n_series),
            "phase": rng.uniform(*phase, n_series),
            "offset": 1.0 + 0.1 * rng.standard_normal(n_series),
        },
        index=pd.Index(np.arange(n_series), name="unique_id"),
    )
    p = {k: v.to_numpy()[:, None] for k, v in params.items()}
    clean = p["amplitude"] * np.sin(2 * np.pi * p["frequency"] * grid + p["phase"]) + p["offset"]
    times = np.broadcast_to(grid, clean.shape)

    keep = np.sort(np.argsort(rng.random((n_series, n_points)), axis=1)[:, :n_observed], axis=1)
    rows = np.arange(n_series)[:, None]
    noisy = clean + noise_std * rng.standard_normal(clean.shape)
    ids = params.index.to_numpy()
    return PeriodicData(
        observed=wide_to_long(ids, times[rows, keep], {"y": noisy[rows, keep]}),
        future=wide_to_long(ids, times[:, n_points:], {"y": noisy[:, n_points:]}),
        truth=wide_to_long(ids, times, {"y": clean}),
        params=params,
    )
