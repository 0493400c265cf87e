"""Model selection for forecasters with scikit-learn: folds of whole series, forecast scorers.

scikit-learn's splitters cut a frame by rows, so a plain ``cv=3`` puts one series' rows in
several folds: the model then trains on part of a series and is scored on the rest of it.
:class:`SeriesKFold` keeps every series whole, and :func:`make_forecast_scorer` scores a fitted
forecaster the way it is used: each test series' last observations are forecast from the
ones before them.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from sklearn.model_selection import GridSearchCV
>>> from latode import RNNForecaster
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"unique_id": np.repeat(np.arange(12), 6),
...                    "ds": np.tile(np.arange(6.0), 12), "y": rng.normal(size=72)})
>>> search = GridSearchCV(RNNForecaster(max_epochs=2, verbose=0, random_state=0),
...                       {"hidden_dim": [4, 8]}, cv=SeriesKFold(2),
...                       scoring=make_forecast_scorer("mae")).fit(df)
>>> sorted(search.best_params_)
['hidden_dim']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator, GroupKFold

from latode.data.times import time_step
from latode.metrics import QUANTILE_GRID, forecast_scores, holdout_split, horizon_split

__all__ = ["SeriesKFold", "CutoffSplit", "make_forecast_scorer", "FORECAST_METRICS"]

#: Errors :func:`make_forecast_scorer` can score (lower is better for each).
FORECAST_METRICS = ("mae", "rmse", "crps")


class SeriesKFold(BaseCrossValidator):
    """K folds of whole series: every row of a series lands in the same fold.

    Parameters
    ----------
    n_splits : int, default=5
    id_col : str, default="unique_id"
        The frame's series id column.

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": [0, 0, 1, 1, 2, 2], "ds": [0, 1] * 3, "y": 0.0})
    >>> sorted(sorted(set(df.unique_id.iloc[test])) for _, test in SeriesKFold(3).split(df))
    [[0], [1], [2]]
    """

    def __init__(self, n_splits: int = 5, id_col: str = "unique_id"):
        self.n_splits = n_splits
        self.id_col = id_col

    def _ids(self, X: Any) -> pd.Series:
        if not isinstance(X, pd.DataFrame) or self.id_col not in X.columns:
            columns = list(X.columns) if isinstance(X, pd.DataFrame) else type(X).__name__
            raise ValueError(f"SeriesKFold splits a long frame by its {self.id_col!r} column; "
                             f"got {columns}. Pass id_col= to name the id column.")
        return X[self.id_col]

    def split(self, X: pd.DataFrame, y: Any = None, groups: Any = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Row positions of the training and test series of each fold."""
        ids = self._ids(X)
        n_series = ids.nunique()
        if n_series < self.n_splits:
            raise ValueError(f"SeriesKFold(n_splits={self.n_splits}) needs at least "
                             f"{self.n_splits} series; the frame has {n_series}.")
        yield from GroupKFold(n_splits=self.n_splits).split(X, groups=ids)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        # split() is overridden; BaseCrossValidator requires the hook to exist.
        raise NotImplementedError


class CutoffSplit(BaseCrossValidator):
    """Folds over time: each fold trains on every row up to a cutoff and tests on the next
    ``horizon`` (a backtest, as ``cross_validation`` runs it, for ``GridSearchCV``).

    The last fold's test window ends at the frame's last time, and each earlier one
    ``step_size`` (default ``horizon``) before, at the latest time the frame has there; its
    cutoff lies ``horizon`` before that end. A test fold holds the rows up to its end of the
    series observed both before and after its cutoff, so that
    ``make_forecast_scorer(horizon=...)`` with the same ``horizon`` reads each series up to
    the cutoff and forecasts its rows after it.

    Parameters
    ----------
    n_splits : int, default=3
    horizon : number or duration
        Length of each test window (a number for numeric times, else e.g. ``"30D"``).
    step_size : number, duration or None
        Distance between consecutive windows' ends (default: ``horizon``).
    id_col, time_col : str

    Examples
    --------
    >>> df = pd.DataFrame({"unique_id": [0] * 6 + [1] * 6, "ds": list(range(6)) * 2,
    ...                    "y": 0.0})
    >>> [(int(df.ds.iloc[train].max()), int(df.ds.iloc[test].max()))
    ...  for train, test in CutoffSplit(2, horizon=1).split(df)]
    [(3, 4), (4, 5)]
    """

    def __init__(self, n_splits: int = 3, horizon: Any = None, step_size: Any = None,
                 id_col: str = "unique_id", time_col: str = "ds"):
        self.n_splits = n_splits
        self.horizon = horizon
        self.step_size = step_size
        self.id_col = id_col
        self.time_col = time_col

    def split(self, X: pd.DataFrame, y: Any = None, groups: Any = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Row positions of each fold's training rows and test rows, earliest fold first."""
        for col in (self.id_col, self.time_col):
            if not isinstance(X, pd.DataFrame) or col not in X.columns:
                raise ValueError(f"CutoffSplit splits a long frame by its {col!r} column; "
                                 "pass id_col= / time_col= to name it.")
        if self.horizon is None:
            raise ValueError("CutoffSplit needs horizon=, the length of each test window.")
        times = X[self.time_col]
        horizon = time_step(self.horizon, times)
        step = horizon if self.step_size is None else time_step(self.step_size, times,
                                                                "step_size")
        distinct = np.sort(times.unique())
        ids = X[self.id_col].to_numpy()
        for k in reversed(range(int(self.n_splits))):
            target = distinct[-1] - k * step
            end = distinct[distinct <= target][-1] if (distinct <= target).any() else None
            if end is None or end - horizon <= distinct[0]:
                raise ValueError(f"CutoffSplit(n_splits={self.n_splits}) reaches back before "
                                 "the frame's first time: use fewer splits or a shorter "
                                 "horizon or step_size.")
            cutoff = end - horizon
            before, window = (times <= cutoff).to_numpy(), ((times > cutoff)
                                                             & (times <= end)).to_numpy()
            tested = np.isin(ids, np.intersect1d(ids[before], ids[window]))
            yield np.flatnonzero(before), np.flatnonzero(tested & (times <= end).to_numpy())

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return int(self.n_splits)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError


def make_forecast_scorer(metric: str = "mae", holdout: float = 0.2, n_samples: int = 50,
                         horizon: Any = None):
    """A ``scoring=`` for forecasters: minus the error of forecasting each test series' last
    ``holdout`` of observation times from the ones before them.

    Parameters
    ----------
    metric : {"mae", "rmse", "crps"}, default="mae"
        Averaged over every held-out value of every target (CRPS from the quantiles of
        :data:`latode.metrics.QUANTILE_GRID`, as ``latode evaluate`` computes it).
    holdout : float in (0, 1), default=0.2
        Each series' share of observation times to forecast (at least one).
    n_samples : int, default=50
        Posterior draws behind each forecast.
    horizon : number, duration or None
        Instead of ``holdout``: forecast the rows in the last ``horizon`` of the test frame
        from the rows before (the test folds of :class:`CutoffSplit`).

    Returns
    -------
    callable
        ``scorer(estimator, X, y=None) -> float``; higher is better, as scikit-learn expects.
    """
    if metric not in FORECAST_METRICS:
        raise ValueError(f"metric={metric!r} is not one of {FORECAST_METRICS}.")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must lie in (0, 1), e.g. 0.2; got {holdout!r}.")
    quantiles = QUANTILE_GRID if metric == "crps" else None

    def scorer(estimator: Any, X: pd.DataFrame, y: Any = None) -> float:
        conv = estimator.converter_
        id_col, time_col, targets = conv.id_col, conv.time_col, list(conv.channels)
        if horizon is None:
            context, held = holdout_split(X, id_col, time_col, holdout)
        else:
            context, held = horizon_split(X, id_col, time_col, horizon)
        if held.empty:
            raise ValueError("No test series has rows both to read and to forecast; "
                             "make_forecast_scorer needs series of two or more rows.")
        forecast = estimator.predict(context, held[[id_col, time_col]], quantiles=quantiles,
                                     n_samples=n_samples, random_state=0)
        scores = forecast_scores(held, forecast, id_col=id_col, time_col=time_col,
                                 targets=targets, quantiles=quantiles or ())
        counts = scores["n"].to_numpy(dtype=float)
        if metric == "rmse":  # pooled over targets: root of the mean squared error
            return -float(np.sqrt(np.sum(counts * scores["rmse"] ** 2) / counts.sum()))
        return -float(np.sum(counts * scores[metric]) / counts.sum())

    return scorer
