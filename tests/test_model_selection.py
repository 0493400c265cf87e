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


def test_cutoff_folds_train_before_and_test_after_each_cutoff_in_a_grid_search():
    """CutoffSplit with make_forecast_scorer(horizon=): each fold's model never saw its test
    window, and the scorer forecasts exactly the window's rows from the rows before it."""
    from latode.model_selection import CutoffSplit

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(6), 10),
                       "ds": np.tile(np.arange(10.0), 6), "y": rng.normal(size=60)})
    folds = list(CutoffSplit(3, horizon=2.0).split(df))
    assert [float(df.ds.iloc[train].max()) for train, _ in folds] == [3.0, 5.0, 7.0]
    for train, test in folds:
        cutoff = df.ds.iloc[train].max()
        assert df.ds.iloc[test].max() == cutoff + 2.0
    search = GridSearchCV(RNNForecaster(max_epochs=1, verbose=0, random_state=0),
                          {"hidden_dim": [4, 8]}, cv=CutoffSplit(2, horizon=2.0),
                          scoring=make_forecast_scorer("mae", horizon=2.0)).fit(df)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    with pytest.raises(ValueError, match="reaches back before the frame's first time"):
        list(CutoffSplit(6, horizon=2.0).split(df))
    with pytest.raises(TypeError, match="is a plain number, but the times are datetimes"):
        list(CutoffSplit(2, horizon=2.0).split(df.assign(ds=pd.to_timedelta(df.ds, "D"))))


def test_cross_validation_scores_match_the_metrics_per_target_and_per_series():
    from latode.metrics import cross_validation_scores

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(4), 8),
                       "ds": np.tile(np.arange(8.0), 4), "y": rng.normal(size=32)})
    cv = RNNForecaster(max_epochs=1, verbose=0, random_state=0).cross_validation(
        df, horizon=2.0, n_windows=2, level=(80,))
    overall = cross_validation_scores(cv)
    errors = cv["y"] - cv["y_actual"]
    assert overall.loc["y", "n"] == len(cv)
    assert overall.loc["y", "mae"] == pytest.approx(errors.abs().mean())
    assert overall.loc["y", "rmse"] == pytest.approx(np.sqrt((errors ** 2).mean()))
    inside = (cv["y_actual"] >= cv["y-lo-80"]) & (cv["y_actual"] <= cv["y-hi-80"])
    assert overall.loc["y", "coverage_80"] == pytest.approx(inside.mean())
    assert "crps" in overall.columns
    per_series = cross_validation_scores(cv, per_series=True)
    assert per_series.loc[(2, "y"), "mae"] == pytest.approx(
        errors[cv["unique_id"] == 2].abs().mean())
