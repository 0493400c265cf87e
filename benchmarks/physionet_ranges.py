"""PhysioNet protocol: how its MSE depends on the records its min-max scaling is fitted on.

The protocol of ``forecast.py`` (t-PatchGNN, GraFITi) divides each variable by its range,
maximum minus minimum over the training and validation records. Clinical variables have
rare extreme values, so a range fitted on more records is wider, and the same forecasts
score a lower MSE in its units. The published numbers fit their ranges on the 9,600 training
and validation records of sets A, B and C; ours fit them on set A's 3,198, three times
fewer. Sets B and C are not available offline, so this script measures the step one size
down: the baselines' MSE with ranges fitted on a third (and a half) of our records, against
all of them. The forecasts are the same in every row; only the units change.

``python benchmarks/physionet_ranges.py [--quick] [--physionet-records N] [--repeats R]``.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
from _common import benchmark_args, median, print_table, stopwatch, write_results
from forecast import KEYS, Task, baseline_forecasts, evaluate, physionet_task

#: Fractions of the training and validation records that the ranges are fitted on.
FRACTIONS = (1.0, 1 / 2, 1 / 3)


def range_scale(task: Task, ids: np.ndarray) -> pd.Series:
    """Each channel's range (maximum minus minimum) over the training rows of the series
    ``ids``, in the task's units; 1 where a channel is constant or unobserved there, as in
    the protocol's own scaling."""
    values = task.train.loc[task.train["unique_id"].isin(ids), task.channels]
    span = values.max() - values.min()
    return span.where(span > 0, 1.0).fillna(1.0)


def range_rows(task: Task, fractions=FRACTIONS, repeats: int = 5, seed: int = 0
               ) -> list[dict]:
    """The protocol MSE of each baseline with ranges fitted on ``fraction`` of the training
    records, ``repeats`` random draws of them per fraction below 1."""
    forecasts = baseline_forecasts(task)
    ids = task.train["unique_id"].unique()
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in fractions:
        for repeat in range(1 if fraction == 1.0 else repeats):
            subset = ids if fraction == 1.0 else rng.permutation(ids)[:round(fraction * len(ids))]
            scaled = replace(task, scale=range_scale(task, subset))
            for model, forecast in forecasts.items():
                rows.append({"fraction": round(fraction, 4), "records": len(subset),
                             "repeat": repeat, "model": model,
                             "MSE": evaluate(scaled, forecast)["MSE"]})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per fraction and model: the median MSE over draws and its ratio to the MSE with the
    ranges of all records (below 1: the same forecasts score lower with more records)."""
    frame = pd.DataFrame(rows)
    full = frame[frame["fraction"] == 1.0].set_index("model")["MSE"]
    out = []
    for (fraction, model), group in frame.groupby(["fraction", "model"], sort=False):
        mse = median(group["MSE"])
        ratios = full[model] / group["MSE"]
        out.append({"fraction": fraction, "records": int(group["records"].iloc[0]),
                    "model": model, "MSE (median)": mse,
                    "full / this (median)": median(ratios),
                    "full / this (range)": f"{ratios.min():.3f}-{ratios.max():.3f}"})
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    def extra(parser):
        parser.add_argument("--physionet-records", type=int, default=None,
                            help="records of set A to load (default all 4000; quick 100)")
        parser.add_argument("--repeats", type=int, default=5,
                            help="random draws of the records per fraction (default 5)")

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    records = args.physionet_records or (100 if args.quick else None)
    with stopwatch() as total:
        task = physionet_task(records=records)
        rows = range_rows(task, repeats=2 if args.quick else args.repeats)
        summary = summarize(rows)
    print_table(summary, list(summary[0]), title="PhysioNet protocol MSE against the records "
                                                 "its min-max ranges are fitted on")
    path = write_results("physionet_ranges", {
        "train_records": int(task.train[KEYS[0]].nunique()), "fractions": FRACTIONS,
        "summary": summary, "results": rows, "total_s": total()}, quick=args.quick)
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
