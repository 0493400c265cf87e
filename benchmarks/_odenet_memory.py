"""Memory of one ODE-Net training step against the number of solver steps (for ``odenet.py``).

Chen et al. (2018) claim that the adjoint method trains with memory constant in the number of
solver steps, where backpropagating through the solver's operations grows linearly. Three
series, each a training step (forward, cross-entropy, backward) of the digits ODE-Net with a
fixed-step RK4 solve of ``n_steps`` steps on ``[0, 1]``:

* ``latode`` adjoint — the network as the estimators build it: :class:`~latode.nn.odenet.
  ODEBlock`, i.e. :class:`CountedDynamics` and :func:`odeint_checked`;
* ``torchdiffeq`` adjoint — the same dynamics network solved with plain
  ``torchdiffeq.odeint_adjoint(..., options={"step_size": ...})``, no latode wrapper: the
  reference that says what our wrappers add per step;
* ``latode`` direct — backpropagation through the solver (``adjoint=False``).

Every probe runs in a fresh process (``python benchmarks/_odenet_memory.py SOLVE BACKPROP
N_STEPS BATCH WIDTH`` prints one JSON line) with glibc's allocator told to give large blocks
back at once (``MALLOC_MMAP_THRESHOLD_``, one arena), and reads the kernel's resident-set
counters of ``/proc/self/status``. Three numbers per probe:

* ``step_peak_mb`` — the whole step's peak resident memory: the high-water mark ``VmHWM``
  during the step minus ``VmRSS`` just after the imports, before the model and the data were
  built. It counts the model, the batch, the activations, the adjoint's state and whatever
  the first (warm-up) step loaded: oneDNN kernels, allocator arenas. This is the definition
  of the developers' guide ("54→57 MB from 10 to 1000 RK4 steps"); the imports themselves
  (torch, about 360 MB here) are left out because they do not depend on the model at all.
* ``step_increment_mb`` — ``VmHWM`` during the step minus ``VmRSS`` just before it (the
  high-water mark is reset there through ``/proc/self/clear_refs``): what this step adds on
  top of a process that has already trained one (smaller) step. The most sensitive number.
* ``saved_for_backward_mb`` — bytes autograd saves for the backward pass (exact, counted by
  ``saved_tensors_hooks``; with the adjoint only the stem and head save anything).

The machine is shared, so every cell is the median of ``repeats`` fresh processes, and a
series is "flat" when the medians across step counts differ by at most 10%
(``max / min - 1 <= 0.10``).

What we found (``benchmarks/results/odenet.json``, width 32). torchdiffeq's fixed-grid loop
``for t0, t1 in zip(grid[:-1], grid[1:])`` unbinds its time-grid tensor into ``2 * n_steps``
0-d tensors that live for the whole solve: the ``torchdiffeq`` series grows by 1.5-1.6 MB from
10 to 1000 steps, at batch 16 and 128 alike. latode hands torchdiffeq the same grid as a lazy
sequence (``latode._numerics.solve._LazyTimeGrid``, bit-identical solutions), and its series
grows by 0.3-0.5 MB. What is left is CPython's free lists: each evaluation of the adjoint's
augmented dynamics creates and frees a few tuples, and the tuple free lists fill up to their
cap (2000 per size), reached after 2000 evaluations (500 RK4 steps); ``gc.collect()`` empties
them and finds no garbage. Probed apart at batch 16, the increment is 2.8, 3.0 and 3.1 MB at
500, 1000 and 3000 steps. Neither is a tensor stored per step: the bytes saved for backward
are exactly constant.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import median

SERIES_KEYS = ("solve", "backprop", "batch")
MEASURES = ("step_peak_mb", "step_increment_mb", "saved_for_backward_mb")
FLAT_TOLERANCE = 0.10


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _torchdiffeq_block(dynamics, adjoint: bool):
    """An ODE block that calls torchdiffeq directly: no CountedDynamics, no odeint_checked."""
    import torch
    from torch import nn
    from torchdiffeq import odeint, odeint_adjoint

    class TorchdiffeqBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.dynamics = dynamics
            self.n_steps = 1

        def forward(self, h):
            t = torch.tensor([0.0, 1.0], dtype=h.dtype)
            solve = odeint_adjoint if adjoint else odeint
            return solve(self.dynamics, h, t, method="rk4",
                         options={"step_size": 1.0 / self.n_steps})[-1]

    return TorchdiffeqBlock()


def probe(solve: str, backprop: str, n_steps: int, batch: int, width: int) -> dict:
    """One training step in this (fresh) process; returns its memory (see the module doc)."""
    import torch
    import torch.nn.functional as F

    from latode._numerics import SolverOptions, count_nfe, reset_nfe
    from latode.nn.odenet import build_classifier_net

    adjoint = backprop == "adjoint"

    def set_steps(steps: int) -> None:
        if solve == "latode":
            net.set_solver(SolverOptions(method="rk4", step_size=1.0 / steps,
                                         adjoint=adjoint))
        else:
            net.body.n_steps = steps

    def step(xb, yb):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()

    gc.collect()
    rss_start = _status_kib("VmRSS")  # after the imports, before the model and the data
    torch.manual_seed(0)
    net = build_classifier_net(64, 10, input_shape=(1, 8, 8), width=width, downsample=1)
    if solve == "torchdiffeq":
        net.body = _torchdiffeq_block(net.body.func.func, adjoint)
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    set_steps(1)
    step(x[:2], y[:2])  # load kernels on a tiny batch: the high-water mark stays low
    set_steps(n_steps)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    rss_before = _status_kib("VmRSS")
    reset_nfe(net)
    start = time.perf_counter()
    step(x, y)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    nfe = count_nfe(net) if solve == "latode" else None  # before the forward pass below
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return dict(solve=solve, backprop=backprop, batch=batch, n_steps=n_steps,
                step_peak_mb=(peak - rss_start) / 1024,
                step_increment_mb=(peak - rss_before) / 1024,
                process_peak_mb=peak / 1024, saved_for_backward_mb=saved / 2**20,
                nfe=nfe, step_s=seconds)


def series_name(row: dict) -> str:
    """``"latode_adjoint_batch128"`` and the like."""
    return f"{row['solve']}_{row['backprop']}_batch{row['batch']}"


def run_probes(config: dict) -> list[dict]:
    """Every (series, step count) cell ``config["repeats"]`` times, each in a fresh process.

    The repeat loop is the outer one, so that a burst of load on the shared machine falls on
    every cell alike rather than on one series.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="1",
               # Large blocks straight from mmap: freed tensors leave the resident set at
               # once, so the peak is the step's and not the allocator's cache.
               MALLOC_MMAP_THRESHOLD_="65536")
    rows = []
    for repeat in range(config["repeats"]):
        for solve, backprop, batch in config["series"]:
            for n_steps in config["steps"]:
                command = [sys.executable, str(Path(__file__).resolve()), solve, backprop,
                           str(n_steps), str(batch), str(config["width"])]
                out = subprocess.run(command, env=env, capture_output=True, text=True,
                                     check=True)
                rows.append(dict(json.loads(out.stdout.strip().splitlines()[-1]),
                                 repeat=repeat))
                print(f"  memory {series_name(rows[-1])} steps={n_steps} repeat {repeat}: "
                      f"step peak {rows[-1]['step_peak_mb']:.2f} MB, increment "
                      f"{rows[-1]['step_increment_mb']:.2f} MB in {rows[-1]['step_s']:.0f} s",
                      flush=True)
    return rows


def summarize(rows: list[dict]) -> tuple[list[dict], dict]:
    """Medians per cell, and per series and measure the verdict "flat within 10%"."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((series_name(row), row["n_steps"]), []).append(row)
    summary = [dict(series=name, n_steps=n_steps, repeats=len(mine),
                    **{m: median(r[m] for r in mine) for m in MEASURES},
                    step_peak_min_mb=min(r["step_peak_mb"] for r in mine),
                    step_peak_max_mb=max(r["step_peak_mb"] for r in mine),
                    step_s=median(r["step_s"] for r in mine))
               for (name, n_steps), mine in cells.items()]
    verdict: dict[str, dict] = {}
    for name in dict.fromkeys(row["series"] for row in summary):
        mine = sorted((r for r in summary if r["series"] == name), key=lambda r: r["n_steps"])
        verdict[name] = {"n_steps": [r["n_steps"] for r in mine]}
        for measure in MEASURES:
            medians = [r[measure] for r in mine]
            spread = max(medians) / min(medians) - 1.0 if min(medians) > 0 else float("inf")
            verdict[name][measure] = dict(
                medians=medians, growth_mb=medians[-1] - medians[0], spread=spread,
                flat_within_10pct=bool(spread <= FLAT_TOLERANCE))
    return summary, verdict


def verdict_rows(verdict: dict) -> list[dict]:
    """One printable row per series and measure."""
    return [dict(series=name, measure=measure,
                 **{f"{n}_steps": v for n, v in zip(per["n_steps"], per[measure]["medians"])},
                 growth_mb=per[measure]["growth_mb"], spread=per[measure]["spread"],
                 flat_within_10pct=per[measure]["flat_within_10pct"])
            for name, per in verdict.items() for measure in MEASURES]


if __name__ == "__main__":
    # `make bench` skips files starting with "_"; run with arguments, this is one probe.
    if len(sys.argv) == 6:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
        solve, backprop, *numbers = sys.argv[1:]
        print(json.dumps(probe(solve, backprop, *map(int, numbers))))
    else:
        sys.exit("usage: _odenet_memory.py {latode,torchdiffeq} {adjoint,direct} "
                 "N_STEPS BATCH WIDTH")
