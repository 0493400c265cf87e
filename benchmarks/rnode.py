"""RNODE at FFJORD's training tolerance: NFE per training step of a CNF with and without the
kinetic-energy and Jacobian-Frobenius penalties (Finlay et al. 2020), trained at
rtol = atol = 1e-5, and the held-out log-likelihood of both.

``cnf.py`` trains at 1e-3, where a solver step already tolerates a rough field and the
penalties save fewer evaluations; FFJORD and RNODE train at 1e-5, and this script measures
that setting on the two sets where the unregularised flow works hardest (circles, two
spirals), with the architecture, data and schedule of ``cnf.py`` and 2500 steps.

Run ``python benchmarks/rnode.py --jobs 2`` (about 15 minutes on 2 CPU cores) or ``--quick``.
"""

from __future__ import annotations

import time

import torch
from _common import benchmark_args, map_jobs, print_table, write_results
from cnf import CNF_SETTINGS, cnf_run, make_toy, rnode_entry

SETS = ("circles", "2spirals")
FULL = dict(n_train=5_000, n_test=5_000, train_steps=2500, patience_steps=1000)
QUICK = dict(n_train=300, n_test=200, train_steps=2, patience_steps=None)
TOLERANCES = dict(rtol=1e-5, atol=1e-5)
WEIGHT = 0.03  # the smaller weight of cnf.py, chosen there on development circles


def run_set(task: tuple) -> dict:
    name, config, threads = task
    torch.set_num_threads(threads)
    X_train, X_test = make_toy(name, config["n_train"], 100), make_toy(name, config["n_test"], 200)
    _, plain = cnf_run(X_train, X_test, config, **TOLERANCES)
    _, reg = cnf_run(X_train, X_test, config, regularization=WEIGHT, **TOLERANCES)
    row = rnode_entry(name, WEIGHT, plain, reg)
    print_table([row], ["dataset", "nfe_step_plain", "nfe_step_rnode", "loglik_gap"])
    return row


def main() -> None:
    def extra(parser):
        parser.add_argument("--jobs", type=int, default=1, help="data sets fitted in parallel")

    args = benchmark_args(__doc__.splitlines()[0], extra=extra)
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    tasks = [(name, config, args.threads) for name in SETS]
    rows = map_jobs(run_set, tasks, args.jobs)
    print_table(rows, ["dataset", "weight", "nfe_step_plain", "nfe_step_rnode",
                       "nfe_step_ratio", "nfe_eval_ratio", "loglik_plain", "loglik_rnode",
                       "loglik_gap", "target_met"],
                title="RNODE trained at rtol = atol = 1e-5: NFE per training step (forward "
                      "solve), at evaluation, and held-out log-likelihood")
    payload = {
        "settings": {**config, "cnf": {**CNF_SETTINGS, **TOLERANCES}, "weight": WEIGHT},
        "rnode": rows,
        "targets": {"rnode_2x_fewer_nfe_within_0.05_nats": all(r["target_met"] for r in rows)},
        "total_s": time.perf_counter() - started,
    }
    path = write_results(__file__, payload, quick=args.quick)
    print(f"wrote {path} in {payload['total_s']:.0f} s")


if __name__ == "__main__":
    main()
