"""PhysioNet protocol: the last value shrunk toward each variable's training mean.

A clinical reading is the patient's state plus noise that does not last, and the variables
scatter around a common range, so the best linear forecast from a last reading lies between
it and the variable's mean. This script fits, per variable, the least-squares weight of the
last value's distance from the training mean on the training records, read and forecast as
the test records are (hours 0-24 read, 24-48 forecast), and scores the shrunk forecast on the
test records. It is the linear forecast that ``LatentODEForecaster``'s ``mean_reversion``
generalises (there with a jump and a rate per channel, counted from each channel's last
reading, and each series' own movement added): its MSE sizes what that pull alone reaches.

``python benchmarks/physionet_shrink.py [--quick] [--physionet-records N]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pandas as pd
from _common import benchmark_args, print_table, stopwatch, write_results
from forecast import KEYS, Task, evaluate, last_value_forecast, physionet_task
from physionet import extrapolation_split


def shrink_weights(context: pd.DataFrame, target: pd.DataFrame, channels: Sequence[str],
                   mean: pd.Series) -> pd.Series:
    """Per channel, the least-squares weight ``w`` of ``last - mean`` for ``actual - mean``
    over the channel's observed target values (``last``: the series' last context value,
    ``mean`` where it has none); 1 for a channel without target values or spread."""
    last = last_value_forecast(context, target, channels, train_mean=mean)
    merged = target[[*KEYS, *channels]].merge(last, on=KEYS, suffixes=("", "__last"))
    weights = {}
    for c in channels:
        seen = merged[c].notna()
        x = merged.loc[seen, f"{c}__last"] - mean[c]
        y = merged.loc[seen, c] - mean[c]
        sxx = float((x * x).sum())
        weights[c] = float((x * y).sum()) / sxx if sxx > 0 else 1.0
    return pd.Series(weights)


def shrunk_forecast(context: pd.DataFrame, target: pd.DataFrame, channels: Sequence[str],
                    mean: pd.Series, weights: pd.Series) -> pd.DataFrame:
    """``mean + w * (last - mean)`` per channel at the target rows (``last`` as in
    :func:`shrink_weights`)."""
    forecast = last_value_forecast(context, target, channels, train_mean=mean)
    for c in channels:
        forecast[c] = mean[c] + weights[c] * (forecast[c] - mean[c])
    return forecast


def shrink_rows(task: Task) -> tuple[list[dict], pd.Series]:
    """The last value and the shrunk last value on ``task``'s test records, with weights
    fitted on its training records split at hour 24."""
    train_context, train_target = extrapolation_split(task.train)
    mean = task.train_mean
    weights = shrink_weights(train_context, train_target, task.channels, mean)
    ones = pd.Series(1.0, index=task.channels)
    rows = []
    for name, w in (("last value", ones), ("last value shrunk to the training mean", weights)):
        forecast = shrunk_forecast(task.context, task.target, task.channels, mean, w)
        scores = evaluate(task, forecast)
        rows.append({"model": name, "MSE": scores["MSE"], "MAE": scores["MAE"],
                     "MSE_by_channel": scores["MSE_by_channel"]})
    return rows, weights


def main(argv: list[str] | None = None) -> list[dict]:
    def extra(parser):
        parser.add_argument("--physionet-records", type=int, default=None,
                            help="records of set A to load (default all 4000; quick 100)")

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    records = args.physionet_records or (100 if args.quick else None)
    with stopwatch() as total:
        task = physionet_task(records=records)
        rows, weights = shrink_rows(task)
    print_table(rows, ["model", "MSE", "MAE"], title="PhysioNet protocol: the last value, "
                                                     "shrunk per variable")
    path = write_results("physionet_shrink", {
        "train_records": int(task.train[KEYS[0]].nunique()),
        "weights": weights.round(4).to_dict(), "results": rows, "total_s": total()},
        quick=args.quick)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
