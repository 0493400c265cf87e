"""CNFDensityEstimator and PlanarFlowDensityEstimator through their public API."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from latode.estimators.density import CNFDensityEstimator, PlanarFlowDensityEstimator

# Small settings so scikit-learn's ~40 checks (each fits several times) run in seconds; the
# fixed-step solver also makes every row's density independent of the batch it is solved in.
SMALL_CNF = dict(hidden=(8,), solver="rk4", step_size=0.5, max_epochs=3, batch_size=64,
                 device="cpu", verbose=0)
SMALL_PLANAR = dict(n_layers=4, max_epochs=3, batch_size=64, device="cpu", verbose=0)


@parametrize_with_checks([CNFDensityEstimator(**SMALL_CNF),
                          PlanarFlowDensityEstimator(**SMALL_PLANAR)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


MEAN = np.array([3.0, -1.0])
COV = np.array([[2.0, 1.2], [1.2, 1.5]])


def gaussian_data(n, seed):
    return np.random.default_rng(seed).multivariate_normal(MEAN, COV, size=n)


def gaussian_log_density(X):
    diff = X - MEAN
    _, logdet = np.linalg.slogdet(COV)
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(COV), diff)
    return -0.5 * (maha + logdet + 2 * np.log(2 * np.pi))


@pytest.fixture(scope="module")
def fitted_cnf():
    # Standardisation already matches the means and variances; the correlation (0.69) and
    # the density's shape are what the flow has to learn.
    X = gaussian_data(1000, seed=0)
    # 100 steps: the last weights, not an average that still remembers the first ones.
    cnf = CNFDensityEstimator(hidden=(16,), rtol=1e-4, atol=1e-4, max_epochs=20,
                              batch_size=200, learning_rate=1e-2, validation_fraction=0.0,
                              ema_decay=None, random_state=0, device="cpu").fit(X)
    return cnf, X


def test_samples_match_the_data_mean_and_covariance(fitted_cnf):
    cnf, X = fitted_cnf
    draws = cnf.sample(3000, random_state=1)
    assert draws.shape == (3000, 2)
    np.testing.assert_allclose(draws.mean(0), X.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(draws.T), np.cov(X.T), atol=0.15)
    corr = np.corrcoef(draws.T)[0, 1]  # 0 before training
    assert corr == pytest.approx(np.corrcoef(X.T)[0, 1], abs=0.05)


def test_density_is_close_to_the_true_one_in_the_users_units(fitted_cnf):
    cnf, _ = fitted_cnf
    X_test = gaussian_data(1000, seed=1)
    held_out = cnf.score_samples(X_test)
    truth = gaussian_log_density(X_test)
    assert held_out.mean() == pytest.approx(truth.mean(), abs=0.03)
    assert np.corrcoef(held_out, truth)[0, 1] > 0.98
    assert cnf.score(X_test) == pytest.approx(held_out.sum())


def test_sampling_is_reproducible(fitted_cnf):
    cnf, _ = fitted_cnf
    np.testing.assert_array_equal(cnf.sample(5, random_state=7), cnf.sample(5, random_state=7))
    assert not np.array_equal(cnf.sample(5, random_state=7), cnf.sample(5, random_state=8))
    with pytest.raises(ValueError, match="n_samples"):
        cnf.sample(0)


def test_density_follows_the_units_of_the_data():
    # Rescaling the data by c changes its log-density by -d log c, and nothing else.
    X = gaussian_data(200, seed=2)
    params = dict(SMALL_CNF, max_epochs=2, random_state=0)
    base = CNFDensityEstimator(**params).fit(X)
    scaled = CNFDensityEstimator(**params).fit(10.0 * X + 5.0)
    np.testing.assert_allclose(scaled.score_samples(10.0 * X + 5.0),
                               base.score_samples(X) - 2 * np.log(10.0), atol=1e-4)


def test_trace_choice_training_noise_and_exact_evaluation():
    X = np.random.default_rng(3).normal(size=(120, 6))
    params = dict(SMALL_CNF, max_epochs=1, random_state=0)
    assert CNFDensityEstimator(**params).fit(X[:, :2]).trace_ == "exact"
    cnf = CNFDensityEstimator(**params).fit(X)
    assert cnf.trace_ == "hutchinson"
    # Evaluation uses the exact trace: no estimator noise from one call to the next.
    np.testing.assert_array_equal(cnf.score_samples(X[:10]), cnf.score_samples(X[:10]))
    gaussian = CNFDensityEstimator(**params, trace="hutchinson", noise="gaussian").fit(X[:, :2])
    assert np.isfinite(gaussian.score_samples(X[:5, :2])).all()


def test_rnode_regularisers_under_the_adjoint_are_recorded():
    X = gaussian_data(100, seed=4)
    # Hutchinson under the adjoint: the backward solve reuses the forward solve's noise
    # (gradients checked against backpropagation in tests/nn/test_cnf.py).
    cnf = CNFDensityEstimator(hidden=(8,), max_epochs=2, batch_size=50, adjoint=True,
                              trace="hutchinson", regularization={"kinetic": 0.1,
                                                                  "frobenius": 0.05},
                              time_dependent=False, rtol=1e-3, atol=1e-3, random_state=0,
                              device="cpu").fit(X)
    record = cnf.history_[-1]
    assert record["kinetic"] > 0 and record["frobenius"] > 0
    assert record["nfe_backward"] > 0  # the adjoint solves backwards, counted
    assert record["train_loss"] > record["nll"]  # the penalties are in the loss


@pytest.mark.parametrize(
    "params, match",
    [({"trace": "approx"}, "'trace'"), ({"regularization": {"kinetc": 1.0}}, "'regularization'"),
     ({"regularization": {"kinetic": -1.0}}, "'regularization'"),
     ({"regularization": -0.5}, "'regularization'"), ({"hidden": (0,)}, "'hidden'"),
     ({"noise": "uniform"}, "'noise'"), ({"integration_time": 0.0}, "'integration_time'"),
     ({"eval_rtol": 0.0}, "'eval_rtol'"), ({"eval_atol": "tight"}, "'eval_atol'")],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CNFDensityEstimator(**params).fit(np.zeros((10, 2)))


def test_save_and_load_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(gaussian_data(80, seed=5), columns=["a", "b"])
    for estimator in (CNFDensityEstimator(**SMALL_CNF, random_state=0),
                      PlanarFlowDensityEstimator(**SMALL_PLANAR, random_state=0)):
        estimator.fit(frame)
        loaded = type(estimator).load(estimator.save(tmp_path / "model.pt"))
        np.testing.assert_array_equal(loaded.score_samples(frame), estimator.score_samples(frame))
        np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b"])
        assert loaded.n_epochs_ == estimator.n_epochs_


def test_planar_flow_learns_the_correlation():
    X = gaussian_data(600, seed=0)
    flow = PlanarFlowDensityEstimator(n_layers=16, max_epochs=40, batch_size=150,
                                      learning_rate=1e-2, random_state=0, device="cpu").fit(X)
    draws = flow.sample(3000, random_state=0)
    assert np.corrcoef(draws.T)[0, 1] == pytest.approx(np.corrcoef(X.T)[0, 1], abs=0.1)
    held_out = flow.score_samples(gaussian_data(1000, seed=1))
    assert held_out.mean() == pytest.approx(gaussian_log_density(gaussian_data(1000, 1)).mean(),
                                            abs=0.1)


@pytest.mark.parametrize("estimator", [CNFDensityEstimator(**SMALL_CNF),
                                       PlanarFlowDensityEstimator(**SMALL_PLANAR)],
                         ids=["cnf", "planar"])
def test_learning_rate_decays_per_step_to_its_floor(estimator):
    # 128 rows, 10% held out, batches of 64: two steps per epoch, so 0.1 -> 0.025 -> 0.02.
    X = gaussian_data(128, seed=3)
    estimator.set_params(learning_rate=0.1, lr_decay=0.5, min_learning_rate=0.02,
                         random_state=0).fit(X)
    assert [r["lr"] for r in estimator.history_] == pytest.approx([0.025, 0.02, 0.02])


def test_auto_budget_is_in_steps_whatever_the_row_count(monkeypatch):
    import latode.estimators._flows as flows

    monkeypatch.setattr(flows, "AUTO_TRAIN_STEPS", 40)
    params = dict(SMALL_CNF, max_epochs="auto", lr_decay="auto", learning_rate=0.05,
                  random_state=0)
    for n_rows, epochs in ((128, 4), (1100, 3)):
        # 128 rows, 10% held out, batches of 64: 2 steps a pass, so 5 passes make an epoch
        # of AUTO_EPOCH_STEPS = 10 steps and 40 steps 4 epochs. 1100 rows: 16 steps a pass,
        # one pass an epoch, 3 epochs (48 steps).
        cnf = CNFDensityEstimator(**params).fit(gaussian_data(n_rows, seed=5))
        assert cnf.n_epochs_ == epochs
        assert cnf.history_[-1]["lr"] == pytest.approx(0.05 * flows.AUTO_FINAL_LR_FRACTION,
                                                       rel=1e-4)


@pytest.mark.parametrize("params", [{"lr_decay": 0.0}, {"lr_decay": 1.5},
                                    {"min_learning_rate": -1.0}])
def test_bad_schedule_is_named(params):
    name = next(iter(params))
    for estimator in (CNFDensityEstimator(**params), PlanarFlowDensityEstimator(**params)):
        with pytest.raises(ValueError, match=f"'{name}'"):
            estimator.fit(np.zeros((10, 2)))


def test_planar_flow_takes_the_auto_schedule_down_to_a_tenth_over_its_epochs():
    X = np.random.default_rng(0).normal(size=(128, 2))
    flow = PlanarFlowDensityEstimator(**{**SMALL_PLANAR, "max_epochs": 4, "patience": None},
                                      lr_decay="auto", validation_fraction=0.0,
                                      random_state=0).fit(X)
    rates = [r["lr"] for r in flow.history_]
    assert rates[-1] == pytest.approx(0.1 * flow.learning_rate)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_evaluation_tolerances_set_the_reported_densities_and_samples():
    X = gaussian_data(400, seed=4)
    cnf = CNFDensityEstimator(hidden=(16,), rtol=1e-2, atol=1e-2, eval_rtol=1e-7,
                              eval_atol=1e-7, max_epochs=8, batch_size=100, learning_rate=2e-2,
                              random_state=0, device="cpu").fit(X)
    tight, tight_draws = cnf.score_samples(X), cnf.sample(50, random_state=1)
    # The same weights solved with the training tolerances as the evaluation ones: the
    # reported densities come from the tight solve, which the loose one visibly misses.
    cnf.set_params(eval_rtol=None, eval_atol=None)
    loose, loose_draws = cnf.score_samples(X), cnf.sample(50, random_state=1)
    cnf.set_params(rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(cnf.score_samples(X), tight, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cnf.sample(50, random_state=1), tight_draws, rtol=0, atol=1e-5)
    assert np.abs(loose - tight).max() > 1e-4
    assert np.abs(loose_draws - tight_draws).max() > 1e-4
