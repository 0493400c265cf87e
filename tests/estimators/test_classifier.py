"""ODENetClassifier and ResNetClassifier through the public API."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import (
    check_methods_sample_order_invariance,
    check_methods_subset_invariance,
    parametrize_with_checks,
)

from latode.estimators.classifier import ODENetClassifier, ResNetClassifier
from latode.exceptions import NotFittedError

# Small nets and a larger, constant learning rate keep scikit-learn's ~50 checks per
# estimator fast; check_classifiers_train still has to reach 83% training accuracy on blobs.
CHECKED = [
    ODENetClassifier(width=8, max_epochs=10, learning_rate=1e-2, lr_decay=1.0, verbose=0),
    ResNetClassifier(width=8, n_blocks=2, max_epochs=10, learning_rate=1e-2, verbose=0),
]

ADAPTIVE_BATCH = (
    "An adaptive solver (the default bosh3) picks one step size for the whole batch from "
    "the error norm over all its rows, so a row's probabilities move by ~1e-6 with its batch "
    "mates, above the check's rtol=1e-7. A fixed-step solver passes this check "
    "(test_fixed_step_predictions_do_not_depend_on_batch_mates)."
)
EXPECTED_FAILURES = {
    "check_methods_subset_invariance": ADAPTIVE_BATCH,
    "check_methods_sample_order_invariance": ADAPTIVE_BATCH,
    "check_dict_unchanged": (
        "By design predict/predict_proba record the solver's function evaluations in nfe_ "
        "(the test-time accuracy/compute knob); nothing else changes "
        "(test_predict_changes_only_nfe)."
    ),
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES if isinstance(estimator, ODENetClassifier) else {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_fixed_step_predictions_do_not_depend_on_batch_mates():
    est = ODENetClassifier(width=8, max_epochs=3, solver="rk4", step_size=0.25, verbose=0)
    check_methods_subset_invariance("ODENetClassifier", est)
    check_methods_sample_order_invariance("ODENetClassifier", est)


def blobs(n=120, seed=0):
    X, y = make_blobs(n_samples=n, centers=3, n_features=4, random_state=seed)
    return X, y


def test_predict_changes_only_nfe():
    X, y = blobs()
    clf = ODENetClassifier(width=8, max_epochs=2, verbose=0, random_state=0).fit(X, y)
    assert not hasattr(clf, "nfe_")  # set by prediction, not by fit
    before = dict(vars(clf))
    clf.predict(X)
    after = dict(vars(clf))
    assert after.pop("nfe_") > 0
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] or after[k] == before[k] for k in before
               if not isinstance(before[k], np.ndarray))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, train_size=600, test_size=300, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def digits_odenet(digits):
    X_train, _, y_train, _ = digits
    return ODENetClassifier(input_shape=(1, 8, 8), width=32, batch_size=32, max_epochs=4,
                            learning_rate=3e-3, lr_decay=1.0, validation_fraction=0.1,
                            verbose=0, random_state=0).fit(X_train, y_train)


def test_odenet_learns_digits_images(digits, digits_odenet):
    _, X_test, _, y_test = digits
    assert digits_odenet.score(X_test, y_test) > 0.85  # 10 classes: chance is 0.1
    record = digits_odenet.history_[-1]
    for key in ("train_loss", "val_loss", "val_accuracy", "nfe_forward", "nfe_backward"):
        assert key in record
    assert record["nfe_forward"] > 0


def test_resnet_learns_digits_images(digits):
    X_train, X_test, y_train, y_test = digits
    clf = ResNetClassifier(input_shape=(1, 8, 8), width=32, n_blocks=2, batch_size=32,
                           max_epochs=4, learning_rate=3e-3, verbose=0,
                           random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.85


def test_looser_rtol_at_test_time_takes_fewer_evaluations(digits, digits_odenet):
    _, X_test, _, y_test = digits
    clf = copy.deepcopy(digits_odenet)  # the fixture is shared: leave its rtol alone
    tight = clf.set_params(rtol=1e-5, atol=1e-6).predict_proba(X_test)
    nfe_tight = clf.nfe_
    loose = clf.set_params(rtol=1e-1, atol=1e-2).predict_proba(X_test)
    assert clf.nfe_ < nfe_tight
    assert np.abs(loose - tight).max() < 0.2  # cheaper, not arbitrary
    assert clf.score(X_test, y_test) > 0.8


def test_string_and_non_contiguous_labels():
    X, y = blobs()
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    clf = ODENetClassifier(width=8, max_epochs=15, learning_rate=1e-2, lr_decay=1.0,
                           verbose=0, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert set(clf.predict(X)) <= set(clf.classes_)
    assert clf.score(X, names) > 0.9
    ints = np.array([-5, 10, 1000])[y]
    res = ResNetClassifier(width=8, n_blocks=2, max_epochs=15, learning_rate=1e-2, verbose=0,
                           random_state=0).fit(X, ints)
    np.testing.assert_array_equal(res.classes_, [-5, 10, 1000])
    proba = res.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(res.classes_[proba.argmax(1)], res.predict(X))


def test_feature_names_are_recorded_and_checked():
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = ResNetClassifier(width=8, n_blocks=1, max_epochs=2, verbose=0).fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"] and clf.n_features_in_ == 4
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame.rename(columns={"a": "z"}))


@pytest.mark.parametrize("cls", [ODENetClassifier, ResNetClassifier])
def test_random_state_makes_fits_identical(cls):
    X, y = blobs()
    a = cls(width=8, max_epochs=3, verbose=0, random_state=3).fit(X, y)
    b = cls(width=8, max_epochs=3, verbose=0, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("cls", [ODENetClassifier, ResNetClassifier])
def test_save_load_and_pickle_give_identical_predictions(cls, tmp_path):
    X, y = blobs()
    labels = np.array(["a", "b", "c"])[y]
    clf = cls(input_shape=(1, 2, 2), width=8, max_epochs=2, verbose=0,
              random_state=0).fit(X, labels)
    expected = clf.predict_proba(X)
    loaded = cls.load(clf.save(tmp_path / "clf.pt"))
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.history_ == clf.history_ and loaded.n_parameters_ == clf.n_parameters_
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(unpickled.predict_proba(X), expected)


def test_defaults_fit_small_tables_with_a_rate_that_decays_over_the_run():
    # 150 rows, batches of 128: two steps per epoch, so 40 steps over the default 20 epochs.
    X, y = blobs(n=150, seed=1)
    clf = ODENetClassifier(verbose=0, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    assert clf.module_.stem.out_features == 256  # width="auto" on tabular rows
    rates = [r["lr"] for r in clf.history_]
    assert len(rates) == 20 and "val_loss" not in clf.history_[-1]  # every row trains
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] == pytest.approx(clf.learning_rate / 30, rel=1e-4)
    halved = ODENetClassifier(max_epochs=10, verbose=0, random_state=0).fit(X, y)
    assert halved.history_[-1]["lr"] == pytest.approx(clf.learning_rate / 30, rel=1e-4)


def test_bad_lr_decay_is_named():
    X, y = blobs()
    with pytest.raises(ValueError, match="'lr_decay'"):
        ODENetClassifier(lr_decay="fast", verbose=0).fit(X, y)


def test_early_stopping_on_the_validation_split():
    X, y = blobs(n=200)
    clf = ResNetClassifier(width=8, n_blocks=1, max_epochs=200, learning_rate=5e-2,
                           patience=2, validation_fraction=0.2, verbose=0,
                           random_state=0).fit(X, y)
    assert clf.n_epochs_ < 200
    assert clf.n_epochs_ - clf.best_epoch_ == 2  # stopped `patience` epochs after the best
    assert all("val_loss" in record for record in clf.history_)


def test_adjoint_and_rk_net_variants_fit():
    X, y = blobs()
    for params in (dict(adjoint=True), dict(solver="rk4", step_size=0.25)):
        clf = ODENetClassifier(width=8, max_epochs=10, learning_rate=1e-2, lr_decay=1.0,
                               verbose=0, random_state=0, **params).fit(X, y)
        assert clf.score(X, y) > 0.9 and clf.history_[-1]["nfe_backward"] >= 0


def test_bad_input_raises_errors_naming_the_problem():
    X, y = blobs()
    with pytest.raises(ValueError, match=r"input_shape=\(1, 8, 8\) describes 64 .* 4 columns"):
        ODENetClassifier(input_shape=(1, 8, 8), verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="too small for downsample=3"):
        ODENetClassifier(input_shape=(1, 2, 2), downsample=3, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="input_shape"):
        ODENetClassifier(input_shape=(1, -2, 2), verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="'rtol' parameter of ODENetClassifier"):
        ODENetClassifier(rtol=-1.0, verbose=0).fit(X, y)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ResNetClassifier(verbose=0).fit(bad, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ResNetClassifier(verbose=0).fit(X, np.zeros(len(X)))
    with pytest.raises(NotFittedError):
        ODENetClassifier().predict(X)
    clf = ResNetClassifier(width=8, n_blocks=1, max_epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict(X[:, :3])
