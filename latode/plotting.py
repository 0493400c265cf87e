"""Figures of a fit: the loss curve, forecast bands, densities.

Matplotlib is imported when a function is called, and figures are built with the object API
(``matplotlib.figure.Figure``, drawn by the Agg backend when saved), so nothing here touches
pyplot's global state or needs a display. Each function returns the figure; save it with
``fig.savefig("loss.png")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plot_loss_curve", "plot_forecast", "plot_density"]


def _figure(n_rows: int = 1, width: float = 7.0, height: float = 3.0):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, 1, squeeze=False)[:, 0]
    return figure, axes


def plot_loss_curve(history: Sequence[dict[str, float]]):
    """Training (and validation) loss per epoch.

    Parameters
    ----------
    history : list of dict
        An estimator's ``history_`` (records with ``epoch``, ``train_loss``, ``val_loss``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_loss_curve([{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5},
    ...                        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.5}])
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['train_loss', 'val_loss']
    """
    figure, (ax,) = _figure()
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    for key in ("train_loss", "val_loss"):
        values = [r.get(key, np.nan) for r in history]
        if np.any(np.isfinite(values)):
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood per value)")
    ax.legend()
    return figure


def _plot_times(times: pd.Series) -> Any:
    if pd.api.types.is_timedelta64_dtype(times):
        return times.dt.total_seconds() / 3600.0  # matplotlib has no timedelta axis
    return times


def _suffixed(forecast: pd.DataFrame, prefix: str) -> list[tuple[float, str]]:
    """``(number, column)`` for each column ``<prefix><number>``, by number."""
    return sorted((float(c[len(prefix):]), c) for c in forecast.columns
                  if c.startswith(prefix) and c[len(prefix):].replace(".", "", 1).isdigit())


def _band_columns(forecast: pd.DataFrame, target: str) -> tuple[str, str] | None:
    """The widest band of the frame: its outermost quantiles, else its widest ``level``."""
    quantiles = _suffixed(forecast, f"{target}_q")
    if len(quantiles) >= 2:
        return quantiles[0][1], quantiles[-1][1]
    lows = dict((level, column) for level, column in _suffixed(forecast, f"{target}-lo-"))
    highs = dict((level, column) for level, column in _suffixed(forecast, f"{target}-hi-"))
    common = sorted(set(lows) & set(highs))
    return (lows[common[-1]], highs[common[-1]]) if common else None


def _forecast_target(forecast: pd.DataFrame, id_col: str, time_col: str,
                     target: str | None) -> str:
    """``target``, checked, or the frame's one forecast column when ``None``."""
    means = [c for c in forecast.columns if c not in (id_col, time_col, "sample_id")
             and "_q" not in c and "-lo-" not in c and "-hi-" not in c]
    if target is None:
        if len(means) != 1:
            raise ValueError(f"The forecast has {len(means)} target columns {means}; choose "
                             "one with target=.")
        return means[0]
    if target not in forecast.columns:
        raise ValueError(f"target={target!r} is not a column of the forecast; its targets are "
                         f"{means}.")
    return target


def plot_forecast(observed: pd.DataFrame, forecast: pd.DataFrame, *, id_col: str = "unique_id",
                  time_col: str = "ds", target: str | None = None,
                  series: Sequence[Any] | None = None,
                  band: tuple[str, str] | None = None, max_series: int = 4,
                  actuals: pd.DataFrame | None = None):
    """Observations, forecast mean and a band, one panel per series.

    A dashed line marks where each series' observations end (its context, when
    ``observed`` is what ``predict`` read).

    Parameters
    ----------
    observed : DataFrame
        Observed rows (``id_col``, ``time_col``, ``target``); drawn as points.
    forecast : DataFrame
        ``predict``'s frame: the mean in column ``target`` and quantile or level columns.
    target : str, optional
        The channel to draw; required when the forecast has more than one.
    series : sequence, optional
        Which series to draw (default: the first ``max_series`` of ``forecast``).
    band : (str, str), optional
        Columns of the band's lower and upper edges (default: the lowest and highest
        ``<target>_q<q>`` columns, else the widest ``<target>-lo-<l>`` / ``-hi-<l>`` pair).
    actuals : DataFrame, optional
        Held-out rows to compare the forecast with (same columns as ``observed``); drawn as
        crosses, so that ``observed`` can be the context alone.

    Raises
    ------
    ValueError
        Without series to draw, or with a ``target`` that is not a forecast column (or none
        given where there are several).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> obs = pd.DataFrame({"unique_id": 0, "ds": [0.0, 1.0], "y": [0.0, 1.0]})
    >>> fc = pd.DataFrame({"unique_id": 0, "ds": [1.5, 2.0], "y": [1.2, 1.4],
    ...                    "y_q0.1": [1.0, 1.1], "y_q0.9": [1.4, 1.7]})
    >>> len(plot_forecast(obs, fc).axes)
    1
    """
    chosen = list(series) if series is not None else \
        list(pd.unique(forecast[id_col]))[:max_series]
    if not chosen:
        raise ValueError("There is no series to plot: the forecast frame is empty.")
    target = _forecast_target(forecast, id_col, time_col, target)
    band = band or _band_columns(forecast, target)
    figure, axes = _figure(len(chosen))
    for ax, sid in zip(axes, chosen):
        obs = observed[observed[id_col] == sid].sort_values(time_col)
        fc = forecast[forecast[id_col] == sid].sort_values(time_col)
        t_fc = _plot_times(fc[time_col])
        if band is not None:
            ax.fill_between(t_fc, fc[band[0]], fc[band[1]], alpha=0.3, color="tab:blue",
                            label=f"{band[0]} – {band[1]}")
        ax.plot(t_fc, fc[target], color="tab:blue", label="forecast mean")
        ax.plot(_plot_times(obs[time_col]), obs[target], "o", color="black", markersize=3,
                label="observed")
        if actuals is not None:
            held = actuals[actuals[id_col] == sid].sort_values(time_col)
            ax.plot(_plot_times(held[time_col]), held[target], "x", color="tab:red",
                    markersize=5, label="held out")
        if len(obs):
            ax.axvline(_plot_times(obs[time_col]).iloc[-1], color="grey", linestyle="--",
                       linewidth=0.8, label="last observation")
        ax.set_title(f"{id_col} = {sid}", fontsize=9)
        ax.set_ylabel(target)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel(time_col)
    return figure


def plot_density(estimator: Any, X: Any, *, max_points: int = 2000, random_state: int = 0):
    """A fitted density estimator against its data.

    One feature: histogram and model density. Two: density contours over the points. More:
    the first two features of the data and of model samples.

    Parameters
    ----------
    estimator : fitted density estimator (``score_samples``, ``sample``)
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X, dtype=np.float64)
    X = X[np.random.default_rng(random_state).permutation(len(X))[:max_points]]
    figure, (ax,) = _figure(height=4.5 if X.shape[1] > 1 else 3.0)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    if X.shape[1] == 1:
        grid = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200)[:, None]
        ax.hist(X[:, 0], bins=40, density=True, alpha=0.4, color="gray", label="data")
        ax.plot(grid[:, 0], np.exp(estimator.score_samples(grid)), label="model density")
        ax.legend()
    elif X.shape[1] == 2:
        gx, gy = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], 80) for i in range(2))
        mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        density = np.exp(estimator.score_samples(mesh)).reshape(80, 80)
        ax.contourf(gx, gy, density, levels=20, cmap="viridis")
        ax.scatter(X[:, 0], X[:, 1], s=2, color="white", alpha=0.5)
    else:
        drawn = np.asarray(estimator.sample(len(X), random_state=random_state))
        ax.scatter(X[:, 0], X[:, 1], s=3, alpha=0.4, label="data")
        ax.scatter(drawn[:, 0], drawn[:, 1], s=3, alpha=0.4, label="model samples")
        ax.legend()
    ax.set_title(f"{type(estimator).__name__}", fontsize=9)
    return figure
