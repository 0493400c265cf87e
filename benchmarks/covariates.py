"""Covariates: what known future doses and static features add to a latent ODE forecast.

Two tasks, every model in the same run beside the last value carried forward, a straight
line through each series' last four points and ``RNNForecaster()``:

* ``dosing`` — :func:`latode.datasets.make_dosing` (subjects on repeated oral doses, a
  one-compartment model with first-order absorption, subject-specific volume and
  elimination; 100 subjects, 96 h each). 80/20 split of subjects; each test subject is read
  up to hour 72 and its measured concentrations in hours 72-96 are forecast, scored against
  the noise-free truth (RMSE, MAE, in mg/L). The latent ODE runs without covariates, with the
  doses as ``impulse_covariates`` (the future ones in ``future_df``), and with the subject's
  weight as ``static_df`` too. A what-if: each test subject's future doses doubled and
  removed. The simulator's rise from the doses doubles exactly; the table reports the
  model's (``rise ratio``, the least-squares slope of the doubled rise on the base rise) and
  how well the model's rise follows the simulator's (``rise RMSE``).
* ``physionet`` — the PhysioNet 2012 task of ``forecast.py`` (set A, minute resolution, read
  hours 0-24, forecast 24-48, MSE per variable then averaged), ``LatentODEForecaster()``
  without and with the static descriptors (age, gender, height, ICU type as a category,
  weight) as ``static_df``.

``python benchmarks/covariates.py [--quick] [--tasks dosing,physionet]
[--physionet-records N]``.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from _common import benchmark_args, print_table, stopwatch, write_results
from forecast import (
    KEYS,
    PHYSIONET,
    Task,
    baseline_rows,
    evaluate,
    physionet_task,
)

from latode import LatentODEForecaster, RNNForecaster
from latode.datasets import PHYSIONET2012_DESCRIPTORS, load_physionet2012, make_dosing

CUT, END = 72.0, 96.0


def dosing_split(n_series: int, seed: int = 0):
    """The dosing data, its training frame, test contexts (up to :data:`CUT`), the target
    rows (measurements after it) and the test subjects' future doses."""
    data = make_dosing(n_series=n_series, hours=END, random_state=seed)
    frame = data.frame
    ids = np.random.default_rng(seed).permutation(n_series)
    test_ids = set(ids[: n_series // 5].tolist())
    test = frame[frame["unique_id"].isin(test_ids)]
    train = frame[~frame["unique_id"].isin(test_ids)].reset_index(drop=True)
    context = test[test["ds"] <= CUT].reset_index(drop=True)
    later = test[test["ds"] > CUT]
    target = later[later["conc"].notna()][KEYS].reset_index(drop=True)
    doses = later[later["dose"].notna()][["unique_id", "ds", "dose"]]
    return data, train, context, target, doses


def future_frame(doses: pd.DataFrame, ids, factor: float) -> pd.DataFrame:
    """``doses`` times ``factor``, closed by a row of 0 at :data:`END` for every series (no
    dose after the window)."""
    closing = pd.DataFrame({"unique_id": list(ids), "ds": END, "dose": 0.0})
    future = pd.concat([doses.assign(dose=doses["dose"] * factor), closing])
    return future.drop_duplicates(KEYS).sort_values(KEYS, ignore_index=True)


def truth_under(data, context: pd.DataFrame, target: pd.DataFrame, doses: pd.DataFrame,
                factor: float) -> np.ndarray:
    """The simulator's concentrations at ``target`` with the context's doses and the future
    ``doses`` times ``factor``."""
    values = []
    for uid, rows in target.groupby("unique_id", sort=False):
        past = context[(context["unique_id"] == uid) & context["dose"].notna()]
        ahead = doses[doses["unique_id"] == uid].assign(
            dose=lambda d: d["dose"] * factor)
        given = pd.concat([past[["ds", "dose"]], ahead[["ds", "dose"]]])
        values.append(data.truth(uid, rows["ds"].to_numpy(), doses=given))
    return np.concatenate(values)


def dosing_rows(quick: bool) -> tuple[list[dict], dict]:
    data, train, context, target, doses = dosing_split(20 if quick else 100)
    truth = truth_under(data, context, target, doses, 1.0)
    scored = target.assign(conc=truth)
    task = Task("dosing", train[train["conc"].notna()].drop(columns="dose"),
                context[context["conc"].notna()].drop(columns="dose"), scored, ["conc"],
                pd.Series(1.0, index=["conc"]))
    rows = baseline_rows(task)
    short = {"max_epochs": 2} if quick else {}
    ids = target["unique_id"].unique()
    plain = {"target_cols": ["conc"]}
    roles = {"impulse_covariates": "dose"}
    configs = {
        "RNNForecaster()": (RNNForecaster, {}, False, False),
        "RNNForecaster(impulse_covariates='dose') + static_df":
            (RNNForecaster, roles, True, True),
        "LatentODEForecaster()": (LatentODEForecaster, {}, False, False),
        "LatentODEForecaster(impulse_covariates='dose')":
            (LatentODEForecaster, roles, True, False),
        "LatentODEForecaster(impulse_covariates='dose') + static_df":
            (LatentODEForecaster, roles, True, True),
    }
    what_if = {}
    for name, (cls, kwargs, dosed, static) in configs.items():
        model = cls(random_state=0, verbose=0, **plain, **kwargs, **short)
        fit_frame = train if dosed else task.train
        with stopwatch() as fit_s:
            model.fit(fit_frame, **({"static_df": data.static} if static else {}))
        extra = {"static_df": data.static} if static else {}

        def forecast(factor: float, model=model, dosed=dosed, extra=extra) -> pd.DataFrame:
            if not dosed:
                return model.predict(task.context, timestamps=target, quantiles=None,
                                     n_samples=100, **extra)
            return model.predict(context, timestamps=target, quantiles=None, n_samples=100,
                                 future_df=future_frame(doses, ids, factor), **extra)

        base = forecast(1.0)
        rows.append({"task": "dosing", "model": name, **evaluate(task, base),
                     "fit_s": fit_s(), "epochs": model.n_epochs_})
        if dosed:
            none, double = forecast(0.0)["conc"].to_numpy(), forecast(2.0)["conc"].to_numpy()
            rise, rise2 = base["conc"].to_numpy() - none, double - none
            true_rise = truth - truth_under(data, context, target, doses, 0.0)
            rows[-1]["rise ratio"] = float(rise2 @ rise / (rise @ rise))
            rows[-1]["rise RMSE"] = float(np.sqrt(np.mean((rise - true_rise) ** 2)))
            what_if[name] = {"simulator rise (mean)": float(true_rise.mean()),
                             "model rise (mean)": float(rise.mean())}
        print(f"  dosing {name}: RMSE {rows[-1]['RMSE']:.3f}, fit {fit_s():.0f} s", flush=True)
    info = {"train_series": int(train["unique_id"].nunique()),
            "test_series": int(len(ids)), "target_values": int(len(target)),
            "what_if": what_if}
    return rows, info


def physionet_rows(quick: bool, records: int | None) -> tuple[list[dict], dict]:
    records = records or (100 if quick else None)
    task = physionet_task(records=records)
    _, static = load_physionet2012(PHYSIONET, max_records=records)
    static = static[list(PHYSIONET2012_DESCRIPTORS)].astype({"ICUType": str})
    rows = baseline_rows(task)
    short = {"max_epochs": 2} if quick else {}
    for name, extra in (("LatentODEForecaster()", {}),
                        ("LatentODEForecaster() + static_df", {"static_df": static})):
        model = LatentODEForecaster(random_state=0, verbose=0, **short)
        with stopwatch() as fit_s:
            model.fit(task.train, **extra)
        forecast = model.predict(task.context, timestamps=task.target[KEYS], quantiles=None,
                                 n_samples=100, **extra)
        rows.append({"task": "physionet", "model": name, **evaluate(task, forecast),
                     "fit_s": fit_s(), "epochs": model.n_epochs_})
        print(f"  physionet {name}: MSE {rows[-1]['MSE']:.3e}, fit {fit_s():.0f} s",
              flush=True)
    info = {"train_series": int(task.train["unique_id"].nunique()),
            "test_series": int(task.context["unique_id"].nunique()),
            "static_columns": list(static.columns)}
    return rows, info


def main(argv: list[str] | None = None) -> list[dict]:
    def extra(parser):
        parser.add_argument("--tasks", default="dosing,physionet",
                            help="comma-separated, from dosing,physionet")
        parser.add_argument("--physionet-records", type=int, default=None,
                            help="records of set A (default all 4000; quick 100)")

    args = benchmark_args(__doc__.splitlines()[0], argv, extra)
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    rows, tasks = [], {}
    with stopwatch() as total:
        for name in names:
            if name == "dosing":
                part, tasks[name] = dosing_rows(args.quick)
            elif name == "physionet":
                part, tasks[name] = physionet_rows(args.quick, args.physionet_records)
            else:
                raise ValueError(f"Unknown task {name!r}; choose from dosing, physionet.")
            rows += part
    print_table(rows, ["task", "model", "RMSE", "MAE", "MSE", "rise ratio", "rise RMSE",
                       "fit_s", "epochs"],
                title="Forecasts with and without covariates (dosing: mg/L against the "
                      "truth; PhysioNet: min-max units)")
    path = write_results("covariates", {"tasks": tasks, "results": rows, "total_s": total(),
                                        "physionet_records": args.physionet_records},
                         quick=args.quick)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
