"""Scaling to many series: fit throughput and peak memory, and union-grid batches against
per-series solves.

Part 1 fits on synthetic frames of 1k, 10k and 100k irregular series (5-15 observations each,
random float times) and reports, per model and size, the training throughput (observations
per second of the epochs), the whole ``fit`` time (validation of the frame, packing, training)
and the peak resident memory *added* by ``fit`` beside the frame's own size and one batch's
tensors. Each measurement runs in a fresh process so peaks do not mix. ``data`` rows run only
the data layer (validation, packing, one epoch of union batches) to show it is not the
bottleneck and does no per-series Python work.

Part 2 takes one batch of 50 series and compares one ODE solve on the union of their
timestamps (what latode trains on) with 50 per-series solves: NFE and wall time of the
latent ODE's training loss, forward and backward.

To stay under ~10 minutes on two shared CPU cores, models are small (latent 4, widths 16),
fits run one epoch without validation, and the latent ODE stops at 10k series (an epoch of
100k series would take it 40-55 min here; its epoch cost is linear in the observations, see
the table); the full run took about 10 minutes here. Run ``python benchmarks/scale.py`` or
``--quick`` (< 60 s smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import benchmark_args, median, print_table, ratio, write_results

FULL = dict(fits=[("data", 1_000), ("data", 10_000), ("data", 100_000),
                  ("rnn", 1_000), ("rnn", 10_000), ("rnn", 100_000),
                  ("latent-ode", 1_000), ("latent-ode", 10_000)],
            union_repeats=3, solvers=("dopri5", "rk4"))
QUICK = dict(fits=[("data", 1_000), ("rnn", 1_000), ("latent-ode", 100)], union_repeats=1,
             solvers=("dopri5",))
BATCH_SIZE = 50
MODELS = {
    "rnn": ("RNNForecaster", dict(hidden_dim=16)),
    "latent-ode": ("LatentODEForecaster", dict(latent_dim=4, hidden=(16,), encoder="rnn",
                                                encoder_hidden=16)),
}
NOTE = ("Synthetic frames: series of 5-15 observations at uniform random float times, one "
        "channel. Small models (latent 4 / widths 16), batch_size 50, ONE epoch per fit, no "
        "validation split (validation_fraction=0), 1 torch thread, on a machine whose 2 CPU "
        "cores were shared with other jobs: absolute times are pessimistic, ratios and growth "
        "with size are what to read. The latent ODE stops at 10k series to keep the run under "
        "~10 minutes. Peak memory is resident memory sampled every 5 ms during fit minus the "
        "resident memory just before it (the frame already built).")


def make_frame(n_series: int, seed: int = 0) -> pd.DataFrame:
    """``n_series`` irregular series in long format: ``unique_id``, ``ds`` (float), ``y``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 16, size=n_series)
    ids = np.repeat(np.arange(n_series), lengths)
    times = rng.uniform(0.0, 10.0, size=len(ids))
    phase = rng.uniform(0.0, 2 * np.pi, size=n_series)[ids]
    values = np.sin(times + phase) + 0.1 * rng.normal(size=len(ids))
    return pd.DataFrame({"unique_id": ids, "ds": times, "y": values})


# ------------------------------------------------------------------ memory
def resident_mb() -> float:
    """This process's resident memory (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """``with PeakMemory() as peak: ...`` samples resident memory every 5 ms; then
    ``peak.added_mb`` is the peak minus the memory at entry."""

    def __enter__(self):
        self.start = self.peak = resident_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_mb())

    @property
    def added_mb(self) -> float:
        return self.peak - self.start


# ------------------------------------------------------------------ part 1 (child process)
def measure_fit(model: str, n_series: int) -> dict:
    """Fit ``model`` (or run the data layer) on ``n_series`` series; one result row."""
    import latode
    from latode.data import IrregularFrameConverter

    warm_up(model)
    df = make_frame(n_series)
    n_obs = int(df["y"].notna().sum())
    row = {"model": model, "n_series": n_series, "n_obs": n_obs,
           "frame_mb": df.memory_usage(deep=True).sum() / 2**20}
    if model == "data":
        with PeakMemory() as peak:
            start = time.perf_counter()
            packed = IrregularFrameConverter().fit_pack(df)
            pack_s = time.perf_counter() - start
            order = np.random.default_rng(0).permutation(packed.n_series)
            biggest = 0
            for batch in packed.union_batches(order, BATCH_SIZE):
                biggest = max(biggest, batch_mb(batch))
            total_s = time.perf_counter() - start
        row.update(pack_s=pack_s, epoch_s=total_s - pack_s, fit_s=total_s,
                   obs_per_s=n_obs / (total_s - pack_s), batch_mb=biggest)
    else:
        name, params = MODELS[model]
        estimator = getattr(latode, name)(max_epochs=1, batch_size=BATCH_SIZE,
                                          validation_fraction=0.0, patience=None,
                                          random_state=0, verbose=0, **params)
        with PeakMemory() as peak:
            start = time.perf_counter()
            estimator.fit(df)
            fit_s = time.perf_counter() - start
        epoch_s = sum(r["epoch_time"] for r in estimator.history_)
        packed = estimator.converter_.pack(df)
        order = np.random.default_rng(0).permutation(packed.n_series)[:20 * BATCH_SIZE]
        row.update(pack_s=fit_s - epoch_s, epoch_s=epoch_s, fit_s=fit_s,
                   obs_per_s=n_obs / epoch_s,
                   batch_mb=max(batch_mb(b) for b in packed.union_batches(order, BATCH_SIZE)),
                   nfe_forward=estimator.history_[-1].get("nfe_forward"))
    row.update(peak_added_mb=peak.added_mb,
               peak_over_frame=ratio(peak.added_mb, row["frame_mb"]))
    return row


def warm_up(model: str) -> None:
    """A tiny fit first, so lazy imports and first-call setup fall outside the measurement."""
    import latode
    from latode.data import IrregularFrameConverter

    small = make_frame(20, seed=2)
    if model == "data":
        IrregularFrameConverter().fit_pack(small).union_batch()
        return
    name, params = MODELS[model]
    getattr(latode, name)(max_epochs=1, batch_size=10, verbose=0, random_state=0,
                          **params).fit(small)


def batch_mb(batch) -> float:
    """Megabytes of a union batch's tensors."""
    tensors = (batch.times, batch.values, batch.mask, batch.present)
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def run_child(model: str, n_series: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", f"{model}:{n_series}",
               "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model} on {n_series} series failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ part 2
def union_against_per_series(solver: str, repeats: int) -> list[dict]:
    """NFE and time of the latent ODE's training loss (forward + backward) on one batch of
    50 series: one solve on the union of their times against 50 solves on each series' own
    times. Same weights, same data; batches are built before the clock starts."""
    import torch

    from latode import LatentODEForecaster
    from latode._numerics import count_nfe, reset_nfe
    from latode.data import IrregularFrameConverter

    converter = IrregularFrameConverter()
    packed = converter.fit_pack(make_frame(BATCH_SIZE, seed=1))
    estimator = LatentODEForecaster(solver=solver, random_state=0, verbose=0,
                                    **MODELS["latent-ode"][1])
    estimator.converter_ = converter  # the module's shapes follow the fitted frame's roles
    torch.manual_seed(0)
    module = estimator._build_module(packed.n_channels)
    layouts = {"union grid (1 solve)": [packed.union_batch(np.arange(packed.n_series))],
               "per series (50 solves)": [packed.union_batch(np.array([i]))
                                          for i in range(packed.n_series)]}
    rows = []
    for layout, batches in layouts.items():
        times, nfe_forward, nfe_backward = [], 0, 0
        for _ in range(repeats):
            nfe_forward = nfe_backward = 0
            start = time.perf_counter()
            for batch in batches:
                reset_nfe(module)
                loss, _ = estimator._batch_loss(module, batch, step=0)
                forward = count_nfe(module)
                loss.backward()
                nfe_forward += forward
                nfe_backward += count_nfe(module) - forward
            times.append(time.perf_counter() - start)
            module.zero_grad(set_to_none=True)
        rows.append({"solver": solver, "layout": layout, "n_series": packed.n_series,
                     "grid_points": sum(len(b.times) for b in batches),
                     "nfe_forward": nfe_forward, "nfe_backward": nfe_backward,
                     "time_s": median(times), "times_s": times})
    union, single = rows
    single["time_ratio_vs_union"] = ratio(single["time_s"], union["time_s"])
    single["nfe_ratio_vs_union"] = ratio(single["nfe_forward"], union["nfe_forward"])
    return rows


# ------------------------------------------------------------------ main
def main() -> None:
    def extra(parser):
        parser.add_argument("--child", help=argparse.SUPPRESS)  # MODEL:N_SERIES, internal

    args = benchmark_args(__doc__.splitlines()[0], extra=extra)
    if args.child:  # one measurement in this fresh process; JSON on the last line
        model, n_series = args.child.split(":")
        print(json.dumps(measure_fit(model, int(n_series))))
        return
    setup = QUICK if args.quick else FULL
    started = time.perf_counter()
    fits = []
    for model, n_series in setup["fits"]:
        fits.append(run_child(model, n_series, args.threads))
        print(f"  {model} on {n_series} series: {fits[-1]['fit_s']:.1f} s", flush=True)
    print_table(fits, ["model", "n_series", "n_obs", "obs_per_s", "epoch_s", "pack_s",
                       "fit_s", "frame_mb", "batch_mb", "peak_added_mb", "peak_over_frame"],
                title="fit throughput (one epoch) and peak memory added by fit")
    union = []
    for solver in setup["solvers"]:
        union += union_against_per_series(solver, setup["union_repeats"])
    # nfe_backward is 0: with adjoint=False the backward pass differentiates through the
    # solver's operations and never calls the dynamics again.
    print_table(union, ["solver", "layout", "grid_points", "nfe_forward", "time_s", "time_ratio_vs_union", "nfe_ratio_vs_union"],
                title="latent ODE loss, forward + backward, on 50 series")
    total_s = time.perf_counter() - started
    path = write_results(__file__, {"note": NOTE, "run_s": total_s, "fits": fits,
                                    "union_vs_per_series": union}, quick=args.quick)
    print(f"wrote {path} ({total_s / 60:.1f} min)")


if __name__ == "__main__":
    main()
