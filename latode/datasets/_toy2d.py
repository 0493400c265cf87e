"""The 2-D toy densities of FFJORD's experiments, with their exact log-densities.

Five samplers (Grathwohl et al. 2019, ``lib/toy_data.py``; two moons and concentric circles
from scikit-learn) and, for each, the density they draw from, so a density estimator's
held-out log-likelihood can be set against the best any model could reach:

* ``"moons"``: two half circles of radius 2 (scikit-learn's ``make_moons`` scaled by 2,
  shifted by (-1, -0.2)), Gaussian noise of s.d. 0.2;
* ``"circles"``: circles of radius 3 and 1.5 (``make_circles``, factor 0.5, scaled by 3),
  noise s.d. 0.24;
* ``"8gaussians"``: eight equal Gaussians of s.d. 0.5/1.414 on a circle of radius 4/1.414;
* ``"checkerboard"``: uniform on 8 of the 16 squares of side 2 in [-4, 4]^2;
* ``"2spirals"``: two interleaved Archimedean spirals, the arm point t ~ 3π sqrt(U) plus
  uniform [0, 0.5]^2 jitter, scaled by 1/3, plus Gaussian noise of s.d. 0.1.

The arcs and spirals are curves blurred by noise; their densities are integrals along the
curve, taken by Simpson's rule on a grid far finer than the noise (``CURVE_POINTS``).
scikit-learn spaces the angles of moons and circles evenly rather than drawing them; the
density is that of uniformly drawn angles, which the even spacing stratifies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_ndtr, logsumexp, ndtr

from latode._params import Interval
from latode.datasets._common import check_number, make_rng

__all__ = ["TOY2D_NAMES", "make_toy2d", "toy2d_log_density"]

TOY2D_NAMES = ("moons", "circles", "8gaussians", "checkerboard", "2spirals")
# Simpson nodes per curve: the widest spacing (the outer spiral arm, 3.3 per unit of t) is
# 0.016, a sixth of the narrowest noise (0.1), so the rule's relative error, ~ (0.016 / 0.1)^4
# / 180, is below 1e-5.
CURVE_POINTS = 2001
_LOG_2PI = np.log(2 * np.pi)
# The 8 Gaussians' means before FFJORD's division of the draws by 1.414.
_EIGHT_CENTERS = 4 * np.c_[np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)]


def _check_name(func: str, name: Any) -> None:
    if name not in TOY2D_NAMES:
        raise ValueError(f"{func}: unknown toy density {name!r}; use one of "
                         f"{', '.join(map(repr, TOY2D_NAMES))}.")


def make_toy2d(name: str, n_samples: int, random_state: Any = None) -> np.ndarray:
    """Draw ``n_samples`` points of one of FFJORD's 2-D toy densities.

    Parameters
    ----------
    name : {"moons", "circles", "8gaussians", "checkerboard", "2spirals"}
    n_samples : int
        Number of points, at least 2 (moons, circles and spirals split them in two).
    random_state : None, int or numpy Generator

    Returns
    -------
    ndarray of shape (n_samples, 2)

    Examples
    --------
    >>> make_toy2d("8gaussians", 3, random_state=0).shape
    (3, 2)
    """
    _check_name("make_toy2d", name)
    check_number("make_toy2d", "n_samples", n_samples, Interval(int, 2, None, closed="left"))
    rng = make_rng("make_toy2d", random_state)
    n = int(n_samples)
    if name in ("moons", "circles"):
        from sklearn.datasets import make_circles, make_moons

        # scikit-learn takes an int seed, not a Generator: pass an int through unchanged.
        seed = random_state if isinstance(random_state, (int, np.integer)) else \
            int(rng.integers(2**31 - 1))
        if name == "moons":
            return make_moons(n, noise=0.1, random_state=seed)[0] * 2 + np.array([-1.0, -0.2])
        return make_circles(n, factor=0.5, noise=0.08, random_state=seed)[0] * 3
    if name == "8gaussians":
        return (_EIGHT_CENTERS[rng.integers(0, 8, n)] + 0.5 * rng.normal(size=(n, 2))) / 1.414
    if name == "checkerboard":
        x1 = rng.uniform(size=n) * 4 - 2
        x2 = rng.uniform(size=n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
        return np.c_[x1, x2] * 2
    half = n // 2
    t = np.sqrt(rng.uniform(size=(half, 1))) * 540 * (2 * np.pi) / 360
    arm = np.c_[-np.cos(t) * t + rng.uniform(size=(half, 1)) * 0.5,
                np.sin(t) * t + rng.uniform(size=(half, 1)) * 0.5]
    x = np.vstack([arm, -arm]) / 3
    x = x[rng.permutation(len(x))] + 0.1 * rng.normal(size=x.shape)
    # An odd n gets one more point, drawn the same way from a random arm.
    return x if len(x) == n else np.vstack([x, make_toy2d(name, 2, rng)[:1]])


def toy2d_log_density(name: str, X: Any) -> np.ndarray:
    """Exact log-density of :func:`make_toy2d`'s distribution ``name`` at each row of ``X``.

    Parameters
    ----------
    name : {"moons", "circles", "8gaussians", "checkerboard", "2spirals"}
    X : array-like of shape (n, 2)

    Returns
    -------
    ndarray of shape (n,)
        ``-inf`` where the density is zero (outside the checkerboard's squares).

    Examples
    --------
    >>> toy2d_log_density("checkerboard", [[0.5, 0.5], [0.5, 2.5]])  # -log 32 on a black square
    array([-3.4657359,       -inf])
    """
    _check_name("toy2d_log_density", name)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"toy2d_log_density: X must have shape (n, 2); got {X.shape}.")
    if name == "checkerboard":
        # Unscaled, the mass is 1/8 on each unit square [k, k+1) x [j, j+1) of [-2, 2)^2
        # whose row parity matches its column parity (x2 in floor(x1) % 2 + {0, -2} + [0, 1)).
        u = X / 2
        inside = (np.abs(u) < 2).all(1) & ((np.floor(u[:, 0]) % 2) == (np.floor(u[:, 1]) % 2))
        return np.where(inside, -np.log(32.0), -np.inf)
    if name == "8gaussians":
        return _gaussian_blur_log_density(X, _EIGHT_CENTERS / 1.414, 0.5 / 1.414)
    fraction, log_weight = _simpson_nodes()
    if name == "moons":
        theta = np.pi * fraction
        upper = np.c_[np.cos(theta), np.sin(theta)]
        lower = np.c_[1 - np.cos(theta), 0.5 - np.sin(theta)]
        curve = np.vstack([upper, lower]) * 2 + np.array([-1.0, -0.2])
        return _gaussian_blur_log_density(X, curve, 0.2, np.tile(log_weight, 2) - np.log(2))
    if name == "circles":
        ring = np.c_[np.cos(2 * np.pi * fraction), np.sin(2 * np.pi * fraction)]
        return _gaussian_blur_log_density(X, np.vstack([ring, 0.5 * ring]) * 3, 0.24,
                                          np.tile(log_weight, 2) - np.log(2))
    return _spirals_log_density(X, fraction, log_weight)


def _simpson_nodes() -> tuple[np.ndarray, np.ndarray]:
    """Nodes in [0, 1] and the logs of Simpson's weights, which sum to 1."""
    fraction = np.linspace(0.0, 1.0, CURVE_POINTS)
    weight = np.ones(CURVE_POINTS)
    weight[1:-1:2], weight[2:-1:2] = 4.0, 2.0
    return fraction, np.log(weight / weight.sum())


def _gaussian_blur_log_density(X: np.ndarray, centers: np.ndarray, sd: float,
                               log_weight: np.ndarray | None = None) -> np.ndarray:
    """log of the mixture of N(center, sd^2 I) over ``centers`` with weights exp(log_weight)
    (equal when None), in row chunks."""
    if log_weight is None:
        log_weight = np.full(len(centers), -np.log(len(centers)))
    out = np.empty(len(X))
    squared_centers = (centers**2).sum(1)
    for start in range(0, len(X), 512):
        x = X[start:start + 512]
        d2 = (x**2).sum(1)[:, None] + squared_centers[None] - 2 * x @ centers.T
        out[start:start + 512] = logsumexp(log_weight - 0.5 * np.maximum(d2, 0) / sd**2, axis=1)
    return out - _LOG_2PI - 2 * np.log(sd)


def _uniform_blur(y: np.ndarray, low: float, high: float, sd: float, log: bool) -> np.ndarray:
    """Density (or its log) of U(low, high) + N(0, sd^2) at y: (Φ(a) - Φ(b)) / (high - low)."""
    a, b = (y - low) / sd, (y - high) / sd
    # Φ(a) - Φ(b) = Φ(-b) - Φ(-a): take the side where both are small, so no digits cancel.
    flip = b > 0
    hi, lo = np.where(flip, -b, a), np.where(flip, -a, b)
    if not log:
        return (ndtr(hi) - ndtr(lo)) / (high - low)
    upper = log_ndtr(hi)
    return upper + np.log1p(-np.exp(log_ndtr(lo) - upper)) - np.log(high - low)


def _spirals_log_density(X: np.ndarray, fraction: np.ndarray,
                         log_weight: np.ndarray) -> np.ndarray:
    """Spiral arm c(t) = (-t cos t, t sin t) / 3 with t = 3π sqrt(U), so p(t) = 2t / (3π)^2;
    the arm is ±(c(t) + (a, b) / 3) + N(0, 0.01 I) with a, b ~ U(0, 0.5), so given t and the
    sign each coordinate is a uniform of width 1/6 blurred by the noise."""
    stop = 3 * np.pi
    t = stop * fraction
    weight = 2 * t / stop * np.exp(log_weight)  # p(t) dt (Simpson's weights sum to 1)
    curve = np.c_[-np.cos(t) * t, np.sin(t) * t] / 3
    boxes = {1.0: (0.0, 0.5 / 3), -1.0: (-0.5 / 3, 0.0)}

    def density(x, log):
        parts = []
        for sign, (low, high) in boxes.items():
            blur = _uniform_blur(x[:, None, :] - sign * curve[None], low, high, 0.1, log)
            parts.append(blur.prod(-1) @ weight if not log else
                         blur.sum(-1) + np.log(np.maximum(weight, 1e-300)))
        if log:
            return logsumexp(np.concatenate(parts, axis=1), axis=1) - np.log(2)
        with np.errstate(divide="ignore"):
            return np.log(0.5 * (parts[0] + parts[1]))

    out = np.empty(len(X))
    for start in range(0, len(X), 256):
        x = X[start:start + 256]
        chunk = density(x, log=False)
        # Plain sums are exact near the arms and far cheaper than sums of logs; rows so far
        # from every arm (about 3.8) that they underflow are summed again in logs.
        far = chunk < np.log(1e-280)
        if far.any():
            chunk[far] = density(x[far], log=True)
        out[start:start + 256] = chunk
    return out
