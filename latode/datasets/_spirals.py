"""The 2-D spiral benchmark of Chen et al. (2018), section 5.1 of the Neural ODE paper.

Two Archimedean spirals are drawn densely on ``n_dense`` points of ``theta in [0, stop]``,
exactly as ``generate_spiral2d`` in torchdiffeq's ``examples/latent_ode.py``:

* counter-clockwise, centred at (+5, 0): ``z = t``, ``r = a + b z``;
* clockwise, centred at (-5, 0): ``z = stop + 1 - t``, ``r = a + 50 b / z``;

with ``(x, y) = (r cos z +- 5, r sin z)``. Each sample picks a direction with probability 1/2
and a random start ``t0`` on the dense grid; its window is the ``n_total`` dense points from
``t0`` and its future the ``n_extrapolate`` points after them. ``n_observed`` points of the
window are kept at random (the irregular sampling of the paper's Table 2: 30, 50 or 100 of
100) and Gaussian noise of standard deviation ``noise_std`` is added to observed and future
values. Times are measured from the start of each sample's window, as in the original,
where every sample shares the time stamps ``orig_ts[:nsample]``: the ``k``-th point of every
window is at exactly ``k * stop / (n_dense - 1)``, so all series share one time grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latode._params import Interval
from latode.datasets._common import check_number, make_rng, wide_to_long

__all__ = ["SpiralsData", "make_spirals"]


@dataclass(frozen=True)
class SpiralsData:
    """The output of :func:`make_spirals`.

    Attributes
    ----------
    observed : pandas.DataFrame
        Noisy, irregularly sampled points: ``unique_id`` (int), ``ds`` (float time since the
        start of the window), ``x``, ``y``; ``n_spirals * n_observed`` rows.
    future : pandas.DataFrame
        The ``n_extrapolate`` dense points after the window, noisy, same columns; the
        extrapolation targets.
    truth : pandas.DataFrame
        The noise-free dense trajectory over window and future, same columns;
        ``n_spirals * (n_total + n_extrapolate)`` rows.
    direction : pandas.Series
        Indexed by ``unique_id``: +1 for counter-clockwise, -1 for clockwise spirals.
    """

    observed: pd.DataFrame
    future: pd.DataFrame
    truth: pd.DataFrame
    direction: pd.Series


def _dense_spirals(n_dense: int, stop: float, a: float, b: float):
    """Time grid (n_dense,) and the clockwise / counter-clockwise paths (n_dense, 2)."""
    t = np.linspace(0.0, stop, n_dense)
    z_cw = stop + 1.0 - t
    r_cw = a + b * 50.0 / z_cw
    clockwise = np.stack([r_cw * np.cos(z_cw) - 5.0, r_cw * np.sin(z_cw)], axis=1)
    r_cc = a + b * t
    counter = np.stack([r_cc * np.cos(t) + 5.0, r_cc * np.sin(t)], axis=1)
    return t, clockwise, counter


def _check_spiral_args(
    n_spirals: int, n_observed: int, n_total: int, noise_std: float, n_extrapolate: int,
    n_dense: int, stop: float,
) -> None:
    func = "make_spirals"
    check_number(func, "n_spirals", n_spirals, Interval(int, 1, None, closed="left"))
    check_number(func, "n_total", n_total, Interval(int, 1, None, closed="left"))
    check_number(func, "n_observed", n_observed, Interval(int, 1, n_total))
    check_number(func, "n_extrapolate", n_extrapolate, Interval(int, 0, None, closed="left"))
    check_number(func, "noise_std", noise_std, Interval(float, 0, None, closed="left"))
    check_number(func, "stop", stop, Interval(float, 0, None, closed="neither"))
    # t0 is drawn from [n_total, n_dense - n_total - n_extrapolate), like the original's
    # "don't sample t0 very near the start or the end".
    needed = 2 * n_total + n_extrapolate + 1
    check_number(func, "n_dense", n_dense, Interval(int, needed, None, closed="left"))


def make_spirals(
    n_spirals: int = 1000,
    n_observed: int = 100,
    n_total: int = 100,
    noise_std: float = 0.3,
    n_extrapolate: int = 100,
    *,
    n_dense: int = 1000,
    stop: float = 6 * np.pi,
    a: float = 0.0,
    b: float = 0.3,
    random_state: Any = 0,
) -> SpiralsData:
    """Noisy, irregularly sampled 2-D spirals (Chen et al. 2018, section 5.1).

    The defaults follow the run in torchdiffeq's ``examples/latent_ode.py``
    (1000 spirals, 1000 dense points on ``[0, 6 pi]``, ``a=0``, ``b=0.3``, noise 0.3, windows of
    100 points); pass ``n_observed=30`` or ``50`` for the sparser rows of the paper's Table 2.
    See the module docstring for the formulas.

    Parameters
    ----------
    n_spirals : int
        Number of samples (series).
    n_observed : int
        Points kept at random, without replacement, from each window; ``<= n_total``.
    n_total : int
        Length of each window in dense points.
    noise_std : float
        Standard deviation of the Gaussian observation noise on ``x`` and ``y``.
    n_extrapolate : int
        Dense points after the window returned in ``future`` (0 for none).
    n_dense : int
        Points of the dense grid on ``[0, stop]``; at least ``2 n_total + n_extrapolate + 1``.
    stop : float
        End of the dense grid (``theta`` for the counter-clockwise spiral).
    a, b : float
        Parameters of the Archimedean spiral ``r = a + b theta``.
    random_state : None, int or numpy.random.Generator
        Seed for directions, starts, subsampling and noise.

    Returns
    -------
    SpiralsData
        ``observed``, ``future`` and ``truth`` long frames (channels ``x``, ``y``) and
        ``direction``.

    Examples
    --------
    >>> data = make_spirals(n_spirals=4, n_observed=30, n_extrapolate=10, random_state=0)
    >>> data.observed.shape, data.future.shape, data.truth.shape
    ((120, 4), (40, 4), (440, 4))
    >>> list(data.observed.columns)
    ['unique_id', 'ds', 'x', 'y']
    >>> sorted(set(data.direction))
    [-1, 1]
    """
    _check_spiral_args(n_spirals, n_observed, n_total, noise_std, n_extrapolate, n_dense, stop)
    rng = make_rng("make_spirals", random_state)
    _, clockwise, counter = _dense_spirals(n_dense, float(stop), float(a), float(b))

    start = rng.integers(n_total, n_dense - n_total - n_extrapolate, size=n_spirals)
    counter_clockwise = rng.random(n_spirals) > 0.5
    window = start[:, None] + np.arange(n_total + n_extrapolate)  # (n_spirals, length)
    path = np.where(counter_clockwise[:, None, None], counter[window], clockwise[window])
    # Offsets as k * dt, not t[window] - t[start]: the difference of two grid values rounds
    # differently per start, so the same offset would differ between spirals in the last bits
    # and a batch's union of timestamps would grow ~6-fold for nothing.
    dt = float(stop) / (n_dense - 1)
    times = np.broadcast_to(np.arange(n_total + n_extrapolate) * dt, window.shape)

    # A random permutation per row, cut to n_observed and sorted: irregular, no repeats.
    keep = np.sort(np.argsort(rng.random((n_spirals, n_total)), axis=1)[:, :n_observed], axis=1)
    rows = np.arange(n_spirals)[:, None]
    observed_xy = path[rows, keep] + noise_std * rng.standard_normal((n_spirals, n_observed, 2))
    future_cols = np.arange(n_total, n_total + n_extrapolate)
    future_xy = path[:, future_cols] + noise_std * rng.standard_normal(
        (n_spirals, n_extrapolate, 2)
    )

    ids = np.arange(n_spirals)

    def frame(tt: np.ndarray, xy: np.ndarray) -> pd.DataFrame:
        return wide_to_long(ids, tt, {"x": xy[..., 0], "y": xy[..., 1]})

    direction = pd.Series(
        np.where(counter_clockwise, 1, -1), index=pd.Index(ids, name="unique_id"),
        name="direction",
    )
    return SpiralsData(
        observed=frame(times[rows, keep], observed_xy),
        future=frame(times[:, future_cols], future_xy),
        truth=frame(times, path),
        direction=direction,
    )
