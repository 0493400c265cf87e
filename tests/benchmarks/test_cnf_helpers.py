"""The statistics ``benchmarks/cnf.py`` reports beside its table, against references: the
mixture's parameter count against the BIC that scikit-learn computes from its own count,
the paired difference's standard error against scipy's paired t statistic, and a table row
of a tiny run against its own models."""

import numpy as np
import pytest
from cnf import QUICK, evaluate_set, mixture_parameters, paired_difference
from scipy import stats
from sklearn.mixture import GaussianMixture

from latode.datasets import make_toy2d


@pytest.mark.parametrize("k, d", [(1, 1), (3, 2), (4, 6)])
def test_mixture_parameters_matches_the_count_in_sklearns_bic(k, d):
    X = np.random.default_rng(k + d).normal(size=(400, d))
    gmm = GaussianMixture(k, covariance_type="full", random_state=0).fit(X)
    # bic = -2 log L + p log n, so p is what the BIC charges beyond the likelihood.
    p = (gmm.bic(X) + 2 * gmm.score(X) * len(X)) / np.log(len(X))
    assert mixture_parameters(gmm) == pytest.approx(p, abs=1e-6)


def test_paired_difference_is_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    b = a + rng.normal(0.1, 0.5, size=500)
    mean, se = paired_difference(a, b)
    assert mean == pytest.approx(np.mean(a - b))
    assert mean / se == pytest.approx(stats.ttest_rel(a, b).statistic)


def test_paired_difference_refuses_scores_that_would_broadcast():
    with pytest.raises(ValueError, match="one length"):
        paired_difference(np.zeros(5), np.zeros((5, 1)))


def test_table_row_pairs_each_model_with_its_own_scores():
    # Unequal train and test sizes: p / 2n must use the training points.
    X_train = make_toy2d("moons", 300, random_state=0)
    X_test = make_toy2d("moons", 120, random_state=1)
    row, models = evaluate_set("moons", X_train, X_test, QUICK)
    for key in ("planar", "gmm"):
        assert row[f"cnf_minus_{key}"] == pytest.approx(row["cnf"] - row[key])
        assert row[f"cnf_minus_{key}_se"] > 0
    assert row["gmm"] == pytest.approx(models["GMM"].score(X_test))
    assert row["gmm_params"] == mixture_parameters(models["GMM"])
    assert row["gmm_params_over_2n"] == pytest.approx(row["gmm_params"] / 600)
