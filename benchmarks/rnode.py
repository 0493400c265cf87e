"""RNODE at FFJORD's training tolerance: NFE per training step of a CNF with and without the
kinetic-energy and Jacobian-Frobenius penalties (Finlay et al. 2020), trained at
rtol = atol = 1e-5, and the held-out log-likelihood of both.

FFJORD and RNODE train at 1e-5. ``cnf.py`` trains at 1e-3, where a solver step already
tolerates a rough field: there (earlier runs, weights 0.03 and 0.1) the penalties cut NFE at
evaluation 2.5-3.3x but per training step only 1.3-1.7x, the fixed cost of a few dopri5 steps
dominating. This script uses the architecture, data and step budget of ``cnf.py`` (5000
steps), on the two sets where the unregularised flow works hardest (circles, two spirals),
with one weight per set (kinetic = Frobenius) chosen on development draws (seeds 1 and 2,
2500 steps): circles 0.1 (2.7x fewer NFE per step at 0.015 nats; 0.3 gave no fewer NFE and
lost 0.09), two spirals 0.02 (2.4x at 0.035 nats; 0.01 gave 1.6x at 0.019).

NFE per training step counts the forward solve (backprop through the solver adds no
evaluations) averaged over every step of the fit, so the cheap first steps of a flow that
starts as the identity count too; the last epoch's mean is reported beside it. Neither fit
stops early, so both means cover the same steps. The unregularised flow's NFE climbs for the
first ~1300 steps and then stays (development runs), so the whole fit's mean depends on the
budget: an earlier run of 2500 steps on these test draws gave circles 1.9x (2.6x over its
last epoch).

Run ``python benchmarks/rnode.py --jobs 2`` (44 minutes on 2 CPU cores; each fit is its
own job) or ``--quick``.
"""

from __future__ import annotations

import time

import torch
from _common import benchmark_args, map_jobs, print_table, ratio, write_results
from cnf import CNF_SETTINGS, cnf_run
from cnf import FULL as CNF_FULL

from latode.datasets import make_toy2d

#: The RNODE weight (kinetic = Frobenius) of each set, chosen on development draws.
WEIGHTS = {"circles": 0.1, "2spirals": 0.02}
SETS = tuple(WEIGHTS)
# No early stopping: both flows run the whole step budget (keeping their best-validation
# weights), so their NFE per step are means over the same training steps. With early stopping
# a flow stopped sooner averages over cheaper, earlier steps (circles' plain flow stopped at
# 352 of 556 epochs in an earlier run).
FULL = {**{key: CNF_FULL[key] for key in ("n_train", "n_test", "train_steps")},
        "patience_steps": None}
QUICK = dict(n_train=300, n_test=200, train_steps=2, patience_steps=None)
TOLERANCES = dict(rtol=1e-5, atol=1e-5)


def rnode_entry(name: str, weight: float, plain: dict, reg: dict) -> dict:
    """One row from the ``cnf_run`` results without and with the penalties; the target is 2x
    fewer NFE per training step at a held-out log-likelihood within 0.05 nats."""
    entry = {
        "dataset": name, "weight": weight, "nfe_step_plain": plain["nfe_per_step"],
        "nfe_step_rnode": reg["nfe_per_step"],
        "nfe_step_ratio": ratio(plain["nfe_per_step"], reg["nfe_per_step"]),
        "nfe_last_epoch_ratio": ratio(plain["nfe_per_step_last_epoch"],
                                      reg["nfe_per_step_last_epoch"]),
        "nfe_eval_plain": plain["nfe_eval"], "nfe_eval_rnode": reg["nfe_eval"],
        "nfe_eval_ratio": ratio(plain["nfe_eval"], reg["nfe_eval"]),
        "loglik_plain": plain["log_lik"], "loglik_rnode": reg["log_lik"],
        "loglik_gap": plain["log_lik"] - reg["log_lik"],
        "epochs_plain": plain["epochs"], "epochs_rnode": reg["epochs"],
        "fit_s_plain": plain["fit_s"], "fit_s_rnode": reg["fit_s"],
    }
    entry["target_met"] = bool(entry["nfe_step_ratio"] >= 2 and entry["loglik_gap"] <= 0.05)
    return entry


def fit_one(task: tuple) -> dict:
    """One fit (a worker): the set's flow without (``weight`` None) or with the penalties."""
    name, weight, config, threads = task
    torch.set_num_threads(threads)
    X_train = make_toy2d(name, config["n_train"], random_state=100)
    X_test = make_toy2d(name, config["n_test"], random_state=200)
    return cnf_run(X_train, X_test, config, regularization=weight, **TOLERANCES)[1]


def main() -> None:
    def extra(parser):
        parser.add_argument("--jobs", type=int, default=1, help="fits run in parallel processes")

    args = benchmark_args(__doc__.splitlines()[0], extra=extra)
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    # Unregularised fits first: they take longest, so the workers finish together.
    tasks = ([(name, None, config, args.threads) for name in SETS]
             + [(name, WEIGHTS[name], config, args.threads) for name in SETS])
    fits = dict(zip([task[:2] for task in tasks], map_jobs(fit_one, tasks, args.jobs)))
    rows = [rnode_entry(name, WEIGHTS[name], fits[name, None], fits[name, WEIGHTS[name]])
            for name in SETS]
    print_table(rows, ["dataset", "weight", "nfe_step_plain", "nfe_step_rnode",
                       "nfe_step_ratio", "nfe_last_epoch_ratio", "nfe_eval_ratio",
                       "loglik_plain", "loglik_rnode", "loglik_gap", "target_met"],
                title="RNODE trained at rtol = atol = 1e-5: NFE per training step (forward "
                      "solve; mean over the fit and over its last epoch), at evaluation, and "
                      "held-out log-likelihood")
    payload = {
        "settings": {**config, "cnf": {**CNF_SETTINGS, **TOLERANCES}, "weights": WEIGHTS,
                     "note": "weights chosen on development draws (seeds 1 and 2), not on "
                             "these test draws"},
        "rnode": rows,
        "targets": {
            "rnode_2x_fewer_nfe_within_0.05_nats": all(r["target_met"] for r in rows),
        },
        "total_s": time.perf_counter() - started,
    }
    path = write_results(__file__, payload, quick=args.quick)
    print(f"wrote {path} in {payload['total_s']:.0f} s")


if __name__ == "__main__":
    main()
