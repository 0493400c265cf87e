"""The main job: forecast real irregular clinical series with a latent ODE.

Data: the Mayo Clinic PBC follow-up study (R's ``survival::pbcseq``, installed offline with
``pip install 'latode[data]'``): 312 patients, 1-16 lab visits each at irregular days, with
missing lab values. Each test patient's last visit is held out and forecast from the visits
before it; the latent ODE is compared with the GRU-Δt baseline and with carrying the last
observation forward.

Run ``make demo`` (or ``python examples/demo.py``; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from latode import LatentODEForecaster, RNNForecaster
from latode.datasets import load_pbcseq

LABS = ["bili", "albumin", "protime", "platelet", "ast", "alk.phos"]
#: Labs that load_pbcseq(log_labs=True) returns on the log scale.
LOGGED = {"bili", "protime", "ast", "alk.phos"}


def split_patients(df: pd.DataFrame, test_fraction: float, seed: int):
    ids = df.unique_id.unique()
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, size=int(len(ids) * test_fraction), replace=False)
    test = df[df.unique_id.isin(test_ids)]
    counts = test.groupby("unique_id").size()
    test = test[test.unique_id.isin(counts.index[counts >= 3])]
    last = test.groupby("unique_id").ds.transform("max") == test.ds
    return df[~df.unique_id.isin(test_ids)], test[~last], test[last]


def errors(target: pd.DataFrame, forecast: pd.DataFrame, scale: pd.Series) -> dict:
    """MAE and RMSE over observed held-out values, each lab in units of its training s.d."""
    merged = target.merge(forecast, on=["unique_id", "ds"], suffixes=("", "_hat"))
    diffs = [((merged[c + "_hat"] - merged[c]) / scale[c]).dropna() for c in LABS]
    d = pd.concat(diffs).to_numpy()
    return {"MAE": float(np.abs(d).mean()), "RMSE": float(np.sqrt((d**2).mean())),
            "values": int(d.size)}


def last_observation_forecast(context: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    carried = context.sort_values("ds").groupby("unique_id")[LABS].last()
    return target[["unique_id", "ds"]].join(carried, on="unique_id")


def plot_patient(model, context, target, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pid = context.groupby("unique_id").size().idxmax()
    ctx, tgt = context[context.unique_id == pid], target[target.unique_id == pid]
    end = tgt.ds.max() + pd.Timedelta("365D")
    grid = pd.timedelta_range(pd.Timedelta(0), end, periods=80)
    fc = model.predict(ctx, timestamps=grid, quantiles=None, level=(80,), n_samples=200)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, lab in zip(axes, ["bili", "albumin", "protime"]):
        years = fc.ds.dt.days / 365.25
        ax.fill_between(years, fc[f"{lab}-lo-80"], fc[f"{lab}-hi-80"], alpha=0.25,
                        label="80% band")
        ax.plot(years, fc[lab], label="latent ODE mean")
        ax.scatter(ctx.ds.dt.days / 365.25, ctx[lab], color="k", s=14, label="observed")
        ax.scatter(tgt.ds.dt.days / 365.25, tgt[lab], color="r", marker="x", s=40,
                   label="held out")
        ax.set_title(f"patient {pid}: {'log ' if lab in LOGGED else ''}{lab}")
        ax.set_xlabel("years since enrolment")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--out", default="demo_output", help="folder for the plot")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of both models (default: chosen from the data)")
    args = parser.parse_args(argv)
    epochs = args.epochs or 2

    labs, _ = load_pbcseq(log_labs=True)
    labs = labs[["unique_id", "ds", *LABS]].dropna(subset=LABS, how="all")
    if args.quick:
        labs = labs[labs.unique_id <= 60]
    train, context, target = split_patients(labs, test_fraction=0.2, seed=0)
    scale = train[LABS].std()
    print(f"PBC follow-up: {train.unique_id.nunique()} training patients, "
          f"{context.unique_id.nunique()} test patients (last visit held out), "
          f"{int(train[LABS].notna().sum().sum())} training lab values, "
          f"{train[LABS].isna().to_numpy().mean():.0%} missing.")

    # Both estimators at their defaults: training length, batch size and the forecasting
    # objective adapt to the data (see the estimators' docstrings).
    common = dict(random_state=0, verbose=0 if args.quick else 1)
    if args.epochs or args.quick:
        common["max_epochs"] = epochs
    models = {
        "latent ODE": LatentODEForecaster(**common),
        "RNN baseline (GRU-Δt)": RNNForecaster(**common),
    }
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - start
        forecast = model.predict(context, timestamps=target[["unique_id", "ds"]],
                                 quantiles=None, n_samples=50)
        rows.append({"model": name, **errors(target, forecast, scale),
                     "fit s": round(seconds, 1), "epochs": model.n_epochs_})
    rows.append({"model": "last observation carried forward",
                 **errors(target, last_observation_forecast(context, target), scale),
                 "fit s": 0.0, "epochs": 0})
    table = pd.DataFrame(rows).set_index("model")
    print("\nHeld-out last visit, error in training standard deviations:")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))

    path = Path(args.out) / "pbc_forecast.png"
    plot_patient(models["latent ODE"], context, target, path)
    print(f"\nForecast plot (observations, mean, 80% band): {path.resolve()}")


if __name__ == "__main__":
    main()
