"""latode.metrics against independent computations: scikit-learn's metrics, brute-force
sums, the closed-form CRPS of a Gaussian and a numerical integral."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from sklearn.metrics import mean_absolute_error, mean_pinball_loss, root_mean_squared_error

from latode.metrics import (
    QUANTILE_GRID,
    coverage,
    crps_from_quantiles,
    crps_from_samples,
    forecast_scores,
    holdout_split,
    mae,
    pinball_loss,
    rmse,
)

rng = np.random.default_rng(0)
Y = rng.normal(size=200)
P = Y + rng.normal(scale=0.5, size=200)


def gaussian_crps(mu, sigma, y):
    """Gneiting & Raftery (2007): sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_mae_and_rmse_match_scikit_learn():
    assert mae(Y, P) == pytest.approx(mean_absolute_error(Y, P), rel=1e-12)
    assert rmse(Y, P) == pytest.approx(root_mean_squared_error(Y, P), rel=1e-12)


def test_unobserved_truth_is_ignored_but_a_missing_prediction_is_not_hidden():
    y = Y.copy()
    y[::4] = np.nan
    keep = ~np.isnan(y)
    assert mae(y, P) == pytest.approx(mean_absolute_error(y[keep], P[keep]))
    assert rmse(y, P) == pytest.approx(root_mean_squared_error(y[keep], P[keep]))
    assert np.isnan(mae([np.nan], [1.0]))
    assert np.isnan(mae([1.0], [np.nan]))


@pytest.mark.parametrize("q", [0.05, 0.5, 0.9])
def test_pinball_loss_matches_scikit_learn(q):
    assert pinball_loss(Y, P, q) == pytest.approx(mean_pinball_loss(Y, P, alpha=q), rel=1e-12)


def test_pinball_loss_rejects_quantiles_outside_zero_one():
    with pytest.raises(ValueError, match="quantile"):
        pinball_loss(Y, P, 1.5)


def test_sample_crps_equals_the_brute_force_pairwise_formula():
    samples = rng.normal(size=(30, 7))
    y = rng.normal(size=7)
    brute = np.mean([
        np.mean(np.abs(samples[:, i] - y[i]))
        - 0.5 * np.mean(np.abs(samples[:, i][:, None] - samples[:, i][None, :]))
        for i in range(7)])
    assert crps_from_samples(y, samples) == pytest.approx(brute, rel=1e-12)


def test_sample_crps_converges_to_the_gaussian_closed_form():
    y = np.array([-1.0, 0.3, 2.5])
    samples = np.random.default_rng(1).normal(0.5, 1.5, size=(40000, 3))
    assert crps_from_samples(y, samples) == pytest.approx(
        np.mean(gaussian_crps(0.5, 1.5, y)), rel=0.02)


def test_quantile_crps_approximates_the_gaussian_closed_form_and_the_integral():
    y = np.array([-1.0, 0.3, 2.5])
    qs = np.array(QUANTILE_GRID)
    preds = np.tile(stats.norm.ppf(qs, 0.5, 1.5), (3, 1))
    exact = np.mean(gaussian_crps(0.5, 1.5, y))
    assert crps_from_quantiles(y, preds, qs) == pytest.approx(exact, rel=0.02)
    # The definition, integrated numerically: CRPS = ∫ (F(x) - 1{x >= y})² dx.
    integral = np.mean([
        integrate.quad(lambda x: stats.norm.cdf(x, 0.5, 1.5) ** 2, -np.inf, v)[0]
        + integrate.quad(lambda x: (1 - stats.norm.cdf(x, 0.5, 1.5)) ** 2, v, np.inf)[0]
        for v in y])
    assert integral == pytest.approx(exact, rel=1e-6)


def test_coverage_counts_observed_values_inside_the_band():
    lo, hi = P - 0.5, P + 0.5
    expected = sum(lo[i] <= Y[i] <= hi[i] for i in range(len(Y))) / len(Y)
    assert coverage(Y, lo, hi) == pytest.approx(expected)


def test_holdout_split_keeps_the_last_times_of_each_series():
    df = pd.DataFrame({"id": ["a"] * 5 + ["b"] * 10 + ["c"],
                       "t": list(range(5)) + list(range(10)) + [0], "y": np.arange(16.0)})
    context, holdout = holdout_split(df, "id", "t", 0.3)
    assert holdout.groupby("id").t.apply(list).to_dict() == {"a": [4], "b": [7, 8, 9]}
    assert set(context.id) == {"a", "b"}  # "c" has a single time: in neither part
    assert len(context) + len(holdout) == 15
    for sid in ("a", "b"):
        assert context[context.id == sid].t.max() < holdout[holdout.id == sid].t.min()


def test_forecast_scores_match_the_metrics_on_the_merged_rows():
    actual = pd.DataFrame({"id": [1, 1, 2], "t": [1.0, 2.0, 1.0], "y": [1.0, 2.0, np.nan]})
    forecast = pd.DataFrame({"id": [2, 1, 1], "t": [1.0, 2.0, 1.0], "y": [0.0, 2.5, 1.5],
                             "y_q0.25": [0.0, 2.0, 1.0], "y_q0.75": [0.0, 3.0, 2.0],
                             "y-lo-50": [0.0, 2.0, 1.2], "y-hi-50": [0.0, 3.0, 2.0]})
    scores = forecast_scores(actual, forecast, id_col="id", time_col="t", targets=["y"],
                             quantiles=[0.25, 0.75], level=[50])
    row = scores.loc["y"]
    assert row["n"] == 2 and row["mae"] == pytest.approx(0.5)
    assert row["rmse"] == pytest.approx(0.5)
    assert row["crps"] == pytest.approx(crps_from_quantiles(
        [1.0, 2.0], [[1.0, 2.0], [2.0, 3.0]], [0.25, 0.75]))
    assert row["coverage_50"] == pytest.approx(0.5)  # 1.0 is below 1.2; 2.0 is inside
    with pytest.raises(ValueError, match="no 'y' value"):
        forecast_scores(actual, forecast.iloc[:2], id_col="id", time_col="t", targets=["y"])
