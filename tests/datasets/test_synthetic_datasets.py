"""make_spirals and make_periodic: shapes, seeds, geometry and noise against the formulas."""

import numpy as np
import pandas as pd
import pytest

from latode.data.validation import validate_long_frame
from latode.datasets import make_periodic, make_spirals


def _sorted(frame: pd.DataFrame) -> bool:
    keys = frame[["unique_id", "ds"]]
    return keys.equals(keys.sort_values(["unique_id", "ds"], kind="stable"))


# ---------------------------------------------------------------- spirals
@pytest.fixture(scope="module")
def spirals():
    return make_spirals(n_spirals=200, n_observed=50, n_extrapolate=20, random_state=3)


def test_spirals_shapes_and_frames(spirals):
    assert spirals.observed.shape == (200 * 50, 4)
    assert spirals.future.shape == (200 * 20, 4)
    assert spirals.truth.shape == (200 * 120, 4)
    for frame in (spirals.observed, spirals.future, spirals.truth):
        assert list(frame.columns) == ["unique_id", "ds", "x", "y"]
        assert frame["ds"].dtype == np.float64
        assert _sorted(frame)
        assert validate_long_frame(frame).target_cols == ("x", "y")
    assert spirals.direction.index.equals(pd.Index(np.arange(200), name="unique_id"))


def test_spirals_sampling_is_irregular_and_inside_the_window(spirals):
    obs, fut = spirals.observed, spirals.future
    dt = 6 * np.pi / 999
    assert obs.groupby("unique_id")["ds"].min().ge(0).all()
    assert obs["ds"].max() <= 99 * dt + 1e-12
    gaps = obs.groupby("unique_id")["ds"].diff().dropna()
    assert gaps.min() >= dt - 1e-12 and gaps.max() > 2 * dt  # distinct points, uneven gaps
    # The future continues on the dense grid right after the window.
    first_future = fut.groupby("unique_id")["ds"].min()
    np.testing.assert_allclose(first_future, 100 * dt)
    np.testing.assert_allclose(fut.groupby("unique_id")["ds"].diff().dropna(), dt)


def test_spirals_share_one_exact_time_grid(spirals):
    # Every window's k-th point is at k * dt exactly (not t[start + k] - t[start], which
    # rounds differently per start), so union batches have no near-duplicate times.
    dt = 6 * np.pi / 999
    assert spirals.truth["ds"].nunique() == 120
    np.testing.assert_array_equal(np.sort(spirals.truth["ds"].unique()), np.arange(120) * dt)
    assert set(spirals.observed["ds"]) <= set(spirals.truth["ds"])
    assert set(spirals.future["ds"]) == set(np.arange(100, 120) * dt)


def test_spirals_direction_matches_geometry(spirals):
    # Independent check from the paper's formulas: around its centre, a counter-clockwise
    # spiral has r = b * angle, a clockwise one r = 50 b / angle (angles mod 2 pi).
    truth = spirals.truth.join(spirals.direction, on="unique_id")
    ccw = truth["direction"].to_numpy() == 1
    centre = np.where(ccw, 5.0, -5.0)
    dx, dy = truth["x"].to_numpy() - centre, truth["y"].to_numpy()
    r, angle = np.hypot(dx, dy), np.arctan2(dy, dx)
    implied = np.where(ccw, r / 0.3, 50 * 0.3 / r)
    mismatch = np.angle(np.exp(1j * (implied - angle)))
    np.testing.assert_allclose(mismatch, 0, atol=1e-9)
    # The angle turns the way the label says.
    turn = truth.assign(a=angle).groupby("unique_id")["a"].apply(
        lambda a: np.sign(np.diff(np.unwrap(a.to_numpy())).mean())
    )
    assert (turn == spirals.direction).all()
    assert 60 < (spirals.direction == 1).sum() < 140


def test_spirals_noise_level(spirals):
    keys = ["unique_id", "ds"]
    matched = spirals.observed.merge(spirals.truth, on=keys, suffixes=("", "_true"))
    assert len(matched) == len(spirals.observed)  # observed times lie on the dense grid
    residual = matched[["x", "y"]].to_numpy() - matched[["x_true", "y_true"]].to_numpy()
    assert abs(residual.std() - 0.3) < 0.01 and abs(residual.mean()) < 0.01
    clean = make_spirals(n_spirals=5, n_observed=30, noise_std=0.0, random_state=3)
    exact = clean.observed.merge(clean.truth, on=keys, suffixes=("", "_true"))
    np.testing.assert_array_equal(exact["x"], exact["x_true"])


def test_spirals_seed_reproduces():
    a = make_spirals(n_spirals=10, n_observed=30, n_extrapolate=5, random_state=7)
    b = make_spirals(n_spirals=10, n_observed=30, n_extrapolate=5, random_state=7)
    c = make_spirals(n_spirals=10, n_observed=30, n_extrapolate=5, random_state=8)
    pd.testing.assert_frame_equal(a.observed, b.observed)
    pd.testing.assert_frame_equal(a.future, b.future)
    pd.testing.assert_series_equal(a.direction, b.direction)
    assert not a.observed.equals(c.observed)
    gen = make_spirals(n_spirals=3, random_state=np.random.default_rng(1))
    assert len(gen.observed) == 300


def test_spirals_full_window_and_no_future():
    data = make_spirals(n_spirals=3, n_observed=100, n_extrapolate=0, random_state=0)
    np.testing.assert_allclose(data.observed["ds"], data.truth["ds"])
    assert data.future.empty and list(data.future.columns) == ["unique_id", "ds", "x", "y"]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n_observed": 101}, ValueError, "n_observed"),
        ({"n_spirals": 0}, ValueError, "n_spirals"),
        ({"n_spirals": 2.5}, TypeError, "n_spirals"),
        ({"noise_std": -1.0}, ValueError, "noise_std"),
        ({"n_dense": 250}, ValueError, "n_dense"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_spirals_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        make_spirals(**kwargs)


# ---------------------------------------------------------------- periodic
def test_periodic_shapes_and_truth_formula():
    data = make_periodic(n_series=50, n_points=100, n_observed=30, n_extrapolate=20,
                         random_state=1)
    assert data.observed.shape == (50 * 30, 3) and data.future.shape == (50 * 20, 3)
    assert data.truth.shape == (50 * 120, 3)
    for frame in (data.observed, data.future, data.truth):
        assert list(frame.columns) == ["unique_id", "ds", "y"] and _sorted(frame)
    p = data.truth.join(data.params, on="unique_id")
    expected = p["amplitude"] * np.sin(2 * np.pi * p["frequency"] * p["ds"] + p["phase"])
    np.testing.assert_allclose(data.truth["y"], expected + p["offset"], rtol=0, atol=1e-12)
    # Rubanova et al.'s ranges: f in [0.4, 0.8], amplitude 1, phase 0, offset ~ 1 + N(0, .1).
    assert data.params["frequency"].between(0.4, 0.8).all()
    assert (data.params["amplitude"] == 1).all() and (data.params["phase"] == 0).all()
    assert abs(data.params["offset"].mean() - 1) < 0.05


def test_periodic_grid_window_and_noise():
    data = make_periodic(n_series=200, n_points=100, n_observed=50, noise_std=0.05,
                         n_extrapolate=10, random_state=2)
    grid = np.unique(data.truth["ds"])
    assert len(grid) == 110 and grid[0] == 0.0  # one grid shared by every series
    assert data.observed["ds"].isin(grid[:100]).all() and data.observed["ds"].max() <= 5.0
    assert data.future["ds"].min() > 5.0 and data.future["ds"].max() <= 5.5
    # Series keep different random subsets of the grid.
    subsets = data.observed.groupby("unique_id")["ds"].apply(tuple)
    assert subsets.nunique() == 200
    matched = data.observed.merge(data.truth, on=["unique_id", "ds"], suffixes=("", "_true"))
    residual = matched["y"] - matched["y_true"]
    assert abs(residual.std() - 0.05) < 0.003 and abs(residual.mean()) < 0.003


def test_periodic_seed_reproduces_and_options():
    a = make_periodic(n_series=5, n_points=20, n_observed=5, random_state=4)
    b = make_periodic(n_series=5, n_points=20, n_observed=5, random_state=4)
    pd.testing.assert_frame_equal(a.observed, b.observed)
    pd.testing.assert_frame_equal(a.params, b.params)
    wide = make_periodic(n_series=30, amplitude_range=(0.5, 2.0), phase_range=(0, 6.28))
    assert wide.params["amplitude"].between(0.5, 2.0).all()
    assert wide.params["phase"].std() > 1.0
    with pytest.raises(ValueError, match="n_observed"):
        make_periodic(n_points=10, n_observed=11)
    with pytest.raises(ValueError, match="freq_range"):
        make_periodic(freq_range=(0.8, 0.4))
    with pytest.raises(TypeError, match="amplitude_range"):
        make_periodic(amplitude_range=1.0)
