"""SeriesKFold and make_forecast_scorer: model selection that keeps series whole."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

from latode import RNNForecaster
from latode.metrics import QUANTILE_GRID, forecast_scores, holdout_split
from latode.model_selection import SeriesKFold, make_forecast_scorer


def frame(n_series=10, n_times=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"s{i}" for i in range(n_series)], n_times)
    times = np.sort(rng.uniform(0, 10, size=(n_series, n_times)), axis=1).ravel()
    return pd.DataFrame({"unique_id": ids, "ds": times,
                         "y": np.sin(times) + 0.1 * rng.normal(size=len(ids))})


def test_every_series_stays_whole_in_one_fold():
    df = frame().sample(frac=1.0, random_state=0)  # rows of a series scattered
    seen = []
    for train, test in SeriesKFold(3).split(df):
        train_ids, test_ids = set(df.unique_id.iloc[train]), set(df.unique_id.iloc[test])
        assert not train_ids & test_ids
        assert len(train) + len(test) == len(df)
        seen.extend(test_ids)
    assert sorted(seen) == sorted(df.unique_id.unique())  # each series tested once


def test_split_errors_name_the_fix():
    with pytest.raises(ValueError, match="id_col="):
        next(SeriesKFold(2).split(frame().rename(columns={"unique_id": "sid"})))
    with pytest.raises(ValueError, match="at least 5 series; the frame has 2"):
        next(SeriesKFold(5).split(frame(n_series=2)))


@pytest.mark.parametrize("metric", ["mae", "rmse", "crps"])
def test_scorer_is_minus_the_error_of_forecasting_each_series_last_observations(metric):
    df = frame()
    model = RNNForecaster(hidden_dim=4, max_epochs=2, verbose=0, random_state=0).fit(df)
    score = make_forecast_scorer(metric, holdout=0.3)(model, df)
    context, held = holdout_split(df, "unique_id", "ds", 0.3)
    quantiles = QUANTILE_GRID if metric == "crps" else None
    forecast = model.predict(context, held[["unique_id", "ds"]], quantiles=quantiles,
                             n_samples=50, random_state=0)
    expected = forecast_scores(held, forecast, id_col="unique_id", time_col="ds",
                               targets=["y"], quantiles=quantiles or ())[metric].iloc[0]
    assert score == pytest.approx(-expected)


def test_grid_search_with_whole_series_and_a_forecast_scorer():
    df = frame(n_series=12)
    search = GridSearchCV(RNNForecaster(max_epochs=2, verbose=0, random_state=0),
                          {"hidden_dim": [2, 8]}, cv=SeriesKFold(3),
                          scoring=make_forecast_scorer("mae")).fit(df)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores < 0).all()
    assert search.best_params_["hidden_dim"] in (2, 8)


def test_scorer_arguments_are_checked():
    with pytest.raises(ValueError, match="metric='mape'"):
        make_forecast_scorer("mape")
    with pytest.raises(ValueError, match="holdout"):
        make_forecast_scorer("mae", holdout=1.5)
