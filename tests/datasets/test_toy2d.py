"""make_toy2d and toy2d_log_density: the density is normalised and is the sampler's.

Each density is checked against its own sampler by independent means: its integral over a
grid is 1, its grid moments equal the moments of many draws, and a histogram of draws
matches it cell by cell.
"""

import numpy as np
import pytest

from latode.datasets import TOY2D_NAMES, make_toy2d, toy2d_log_density

# Cell midpoints of [-6, 6]^2 in steps of 1/16: the checkerboard's squares (side 2) are
# unions of whole cells; over the whole plane the midpoint rule's error for a Gaussian blur
# of s.d. >= 0.1 is ~exp(-2π² (0.1 / STEP)^2) ~ 1e-22, and over a cell that cuts through a
# blur about (STEP / 0.1)^2 / 24 < 2% at worst, averaging out over the 8 x 8 cells binned below.
STEP = 1 / 16
EDGES = np.arange(-6, 6 + STEP / 2, STEP)
MIDS = (EDGES[:-1] + EDGES[1:]) / 2
GRID = np.stack(np.meshgrid(MIDS, MIDS, indexing="ij"), -1).reshape(-1, 2)


@pytest.fixture(scope="module", params=TOY2D_NAMES)
def density_on_grid(request):
    name = request.param
    return name, np.exp(toy2d_log_density(name, GRID))


def test_density_integrates_to_one(density_on_grid):
    _, p = density_on_grid
    assert p.sum() * STEP**2 == pytest.approx(1.0, abs=2e-3)


def test_density_moments_match_the_samplers(density_on_grid):
    name, p = density_on_grid
    X = make_toy2d(name, 100_000, random_state=0)
    weights = p * STEP**2
    mean = weights @ GRID
    second = (weights[:, None] * GRID).T @ GRID
    # 100k draws: the sample mean's standard error is below 0.01 for every set here.
    np.testing.assert_allclose(X.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(X.T @ X / len(X), second, atol=0.1, rtol=0.02)


def test_histogram_of_draws_matches_the_density(density_on_grid):
    name, p = density_on_grid
    X = make_toy2d(name, 400_000, random_state=1)
    # Bins 1/2 wide (8 x 8 grid cells): fine enough to see the blur around the curves.
    coarse = EDGES[::8]
    counts, _, _ = np.histogram2d(X[:, 0], X[:, 1], bins=[coarse, coarse])
    mass = p.reshape(24, 8, 24, 8).sum((1, 3)) * STEP**2
    expected = mass * len(X)
    busy = expected > 20
    assert busy.sum() >= 30
    # Pearson's statistic over the busy cells is ~ chi-square with k degrees of freedom (mean
    # k, s.d. sqrt(2k)); a density off by a tenth of the noise's width exceeds this bound.
    k = busy.sum()
    pearson = ((counts[busy] - expected[busy]) ** 2 / expected[busy]).sum()
    assert pearson < k + 6 * np.sqrt(2 * k), (pearson, k)


def test_mean_log_density_of_draws_is_the_negative_entropy_and_beats_a_gaussian():
    # The true density scores draws no worse than the Gaussian fitted to them (Gibbs).
    for name in TOY2D_NAMES:
        X = make_toy2d(name, 4000, random_state=2)
        true = toy2d_log_density(name, X).mean()
        mean, cov = X.mean(0), np.cov(X.T)
        d = X - mean
        gauss = -0.5 * (np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d).mean()
                        + np.log(np.linalg.det(2 * np.pi * cov)))
        assert true > gauss + 0.1, name


def test_samples_are_seeded_and_the_checkerboard_is_exact():
    for name in TOY2D_NAMES:
        a, b = make_toy2d(name, 50, random_state=5), make_toy2d(name, 50, random_state=5)
        assert a.shape == (50, 2) and np.array_equal(a, b)
    assert make_toy2d("2spirals", 7, random_state=0).shape == (7, 2)
    X = make_toy2d("checkerboard", 1000, random_state=0)
    assert np.all(toy2d_log_density("checkerboard", X) == -np.log(32))
    outside = np.array([[0.5, 2.5], [5.0, 0.0]])  # a white square; off the board
    assert np.all(np.isneginf(toy2d_log_density("checkerboard", outside)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown toy density 'swissroll'"):
        make_toy2d("swissroll", 10)
    with pytest.raises(ValueError, match="n_samples"):
        make_toy2d("moons", 1)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        toy2d_log_density("moons", np.zeros((3, 3)))
