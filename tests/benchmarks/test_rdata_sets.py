"""The summary of ``benchmarks/rdata_sets.py`` against hand-counted answers (no data set is
read and no model is fitted)."""

import math

import pytest
from rdata_sets import GRU, LATENT, SETS, summarise


def rows(task, seed, last, line, gru, latent, fit=(1.0, 3.0)):
    maes = {"last value": last, "straight line (last 4)": line, GRU: gru, LATENT: latent}
    fits = {GRU: fit[0], LATENT: fit[1]}
    return [{"task": task, "seed": seed, "model": m, "MAE": v, "fit_s": fits.get(m, 0.0)}
            for m, v in maes.items()]


def test_counts_ratios_and_fit_times_per_set_and_overall():
    results = (rows("a", 0, 1.0, 2.0, 0.8, 0.5)              # lowest of all four
               + rows("a", 1, 1.0, 2.0, 0.4, 0.8)            # below the baselines only
               + rows("b", 0, 0.5, 2.0, 0.6, 1.0, (2.0, 10.0)))  # behind the last value
    summary = summarise(results)
    a, b, overall = summary["sets"]["a"], summary["sets"]["b"], summary["overall"]
    assert (a["tasks"], a["lowest"], a["below_baselines"]) == (2, 1, 2)
    assert (b["tasks"], b["lowest"], b["below_baselines"]) == (1, 0, 0)
    assert (overall["tasks"], overall["lowest"], overall["below_baselines"]) == (3, 1, 2)
    # a: 0.5 / 0.8 and 0.8 / 0.4; b: 1.0 / 0.5.
    assert a["mae_vs_best_other"] == pytest.approx(math.sqrt(0.625 * 2.0))
    assert overall["mae_vs_best_other"] == pytest.approx((0.625 * 2.0 * 2.0) ** (1 / 3))
    assert a["fit_ratio"] == 3.0 and b["fit_ratio"] == 5.0 and overall["fit_ratio"] == 3.0


def test_the_table_tasks_are_among_the_sets():
    assert {"milk", "spruce", "sitka"} <= set(SETS)
    assert all(len(spec) == 5 for spec in SETS.values())
