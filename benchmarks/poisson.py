"""The Poisson-process option of LatentODEForecaster: does it learn *when* events happen?

Two measurements, printed as tables and written to ``benchmarks/results/poisson.json``:

1. **Simulated periodic processes with a known intensity.** Each series has events from an
   inhomogeneous Poisson process with λ_i(t) = r (1 + a sin(ω t + φ_i)) on [0, T], with a
   per-series phase φ_i, drawn exactly by thinning; at each event a noisy value
   y = sin(ω t + φ_i) + ε is observed, so both the timing and the values carry the phase.
   Held-out series show the model their first half; the intensity it predicts on a dense
   grid over the whole window is compared with the truth (relative L2 error, median over
   series), on the context half and the forecast half apart, against two baselines:
   the homogeneous rate (pooled maximum likelihood on the training series) and a
   histogram of each series' own context events (bins of width 1, continued as the
   series' context mean rate in the forecast half). The value forecast (RMSE at the
   held-out events of the second half) is reported with the process on and off.
2. **Coal-mining disasters** (``boot::coal``, 191 dated explosions, 1851-1962, the classic
   inhomogeneous Poisson example): a pure point process (no values) fitted on the events
   before 1940 as one series; held-out log-likelihood of the events of 1940-1962
   (Σ log λ(t_i) - ∫ λ, from the posterior-mean intensity, integral by Simpson's rule on
   a dense grid) per event, against the homogeneous rate fitted on 1851-1940. The fitted
   intensity is plotted to ``benchmarks/results/poisson-coal.png``.

Run ``python benchmarks/poisson.py`` (a few minutes on 2 CPU cores) or ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _common import RESULTS_DIR, benchmark_args, median, print_table, stopwatch, write_results

from latode import LatentODEForecaster
from latode.datasets import load_coal

RATE, AMPLITUDE, OMEGA, LENGTH, NOISE = 3.0, 0.8, 1.0, 10.0, 0.1


def true_intensity(t: np.ndarray, phase: float) -> np.ndarray:
    return RATE * (1 + AMPLITUDE * np.sin(OMEGA * t + phase))


def simulate(n_series: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Events by thinning a homogeneous process of rate r (1 + a), with a value at each."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, n_series)
    rows = []
    bound = RATE * (1 + AMPLITUDE)
    for i, phase in enumerate(phases):
        candidates = np.sort(rng.uniform(0, LENGTH, rng.poisson(bound * LENGTH)))
        keep = rng.uniform(0, bound, len(candidates)) < true_intensity(candidates, phase)
        for t in candidates[keep]:
            rows.append((i, t, np.sin(OMEGA * t + phase) + NOISE * rng.normal()))
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"]), phases


def relative_l2(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def histogram_rate(events: np.ndarray, grid: np.ndarray, half: float) -> np.ndarray:
    """Counts per unit-width bin on [0, half); the context mean rate after it."""
    edges = np.arange(0.0, half + 1e-9, 1.0)
    counts, _ = np.histogram(events, bins=edges)
    inside = np.clip(np.searchsorted(edges, grid, side="right") - 1, 0, len(counts) - 1)
    return np.where(grid < half, counts[inside] / np.diff(edges)[inside],
                    len(events) / half)


def periodic(config: dict) -> tuple[list[dict], list[dict]]:
    train, _ = simulate(config["n_train"], seed=0)
    test, phases = simulate(config["n_test"], seed=1)
    half = LENGTH / 2
    context = test[test["ds"] < half]
    future = test[test["ds"] >= half]
    grid = np.linspace(0.05, LENGTH, 200)
    pooled = len(train) / (config["n_train"] * LENGTH)
    models, fits = {}, []
    for point_process in (True, False):
        name = "latent_ode+pp" if point_process else "latent_ode"
        model = LatentODEForecaster(point_process=point_process, **config["model"])
        with stopwatch() as elapsed:
            model.fit(train)
        models[name] = model
        forecast = model.predict(context, timestamps=future[["unique_id", "ds"]],
                                 quantiles=None, n_samples=config["n_samples"])
        merged = future.merge(forecast, on=["unique_id", "ds"], suffixes=("", "_hat"))
        rmse = float(np.sqrt(np.mean((merged["y"] - merged["y_hat"]) ** 2)))
        fits.append(dict(model=name, fit_s=elapsed(), epochs=model.n_epochs_,
                         value_forecast_rmse=rmse))
    # Intensity on the dense grid for every held-out series.
    targets = pd.DataFrame({"unique_id": np.repeat(np.arange(config["n_test"]), len(grid)),
                            "ds": np.tile(grid, config["n_test"])})
    predicted = models["latent_ode+pp"].predict_intensity(
        context, timestamps=targets, quantiles=None, n_samples=config["n_samples"])
    errors: dict[str, dict[str, list[float]]] = {}
    for i, phase in enumerate(phases):
        truth = true_intensity(grid, phase)
        own = context.loc[context["unique_id"] == i, "ds"].to_numpy()
        estimates = {
            "latent_ode+pp": predicted.loc[predicted["unique_id"] == i, "intensity"].to_numpy(),
            "homogeneous rate": np.full_like(grid, pooled),
            "histogram (own context)": histogram_rate(own, grid, half),
        }
        for name, estimate in estimates.items():
            for part, where in (("context", grid < half), ("forecast", grid >= half)):
                errors.setdefault(name, {}).setdefault(part, []).append(
                    relative_l2(estimate[where], truth[where]))
    rows = [dict(model=name, rel_l2_context=median(parts["context"]),
                 rel_l2_forecast=median(parts["forecast"])) for name, parts in errors.items()]
    return rows, fits


def coal(config: dict, plot: bool) -> dict:
    frame = load_coal()
    split = 1940.0
    train = frame[frame["ds"] < split]
    held = frame[frame["ds"] >= split]
    end = float(frame["ds"].max())
    model = LatentODEForecaster(point_process=True, event_col="events", target_cols=[],
                                validation_fraction=0.0, **config["coal_model"])
    with stopwatch() as elapsed:
        model.fit(train[["unique_id", "ds", "events"]])
    grid = np.linspace(split, end, 401)
    rate = model.predict_intensity(train, timestamps=list(grid), n_samples=config["n_samples"])
    at_events = model.predict_intensity(train, timestamps=list(held["ds"]), quantiles=None,
                                        n_samples=config["n_samples"])["intensity"].to_numpy()
    values = rate["intensity"].to_numpy()
    h = grid[1] - grid[0]
    integral = h / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum()
                        + 2 * values[2:-1:2].sum())
    counts = held["events"].to_numpy()
    n_held = counts.sum()
    latent = (np.sum(counts * np.log(at_events)) - integral) / n_held
    homogeneous = train["events"].sum() / (split - frame["ds"].min())
    flat = (n_held * np.log(homogeneous) - homogeneous * (end - split)) / n_held
    result = dict(train_events=int(train["events"].sum()), held_out_events=int(n_held),
                  fit_s=elapsed(), epochs=model.n_epochs_,
                  held_out_loglik_per_event_latent_ode=float(latent),
                  held_out_loglik_per_event_homogeneous=float(flat),
                  homogeneous_rate_per_year=float(homogeneous),
                  expected_held_out_events_latent_ode=float(integral))
    if plot:
        plot_coal(model, frame, train, split, RESULTS_DIR / "poisson-coal.png", config)
    return result


def plot_coal(model, frame, train, split, path: Path, config: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(frame["ds"].min(), frame["ds"].max(), 300)
    rate = model.predict_intensity(train, timestamps=list(grid), n_samples=config["n_samples"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.fill_between(grid, rate["intensity_q0.1"], rate["intensity_q0.9"], alpha=0.3,
                    label="80% band (posterior)")
    ax.plot(grid, rate["intensity"], label="latent ODE intensity")
    homogeneous = train["events"].sum() / (split - frame["ds"].min())
    ax.axhline(homogeneous, color="grey", ls="--", label="homogeneous rate (1851-1940)")
    ax.plot(frame["ds"], np.zeros(len(frame)) - 0.1, "|", color="k", ms=10, label="disasters")
    ax.axvline(split, color="k", lw=0.8)
    ax.set_xlabel("year")
    ax.set_ylabel("disasters per year")
    ax.set_title("Coal-mining disasters: fitted before 1940, held out after")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = benchmark_args(__doc__.splitlines()[0], argv)
    model = dict(latent_dim=4, hidden=(32,), encoder="rnn", encoder_hidden=32, batch_size=50,
                 max_epochs=60, learning_rate=0.01, patience=10, validation_fraction=0.1,
                 random_state=0, verbose=0)
    coal_model = dict(latent_dim=4, hidden=(32,), encoder="rnn", encoder_hidden=16,
                      max_epochs=300, learning_rate=0.01, patience=None, random_state=0,
                      verbose=0)
    config = dict(n_train=400, n_test=100, n_samples=50, model=model, coal_model=coal_model)
    if args.quick:
        config.update(n_train=40, n_test=10, n_samples=10,
                      model=dict(model, max_epochs=3), coal_model=dict(coal_model, max_epochs=5))
    rows, fits = periodic(config)
    print_table(rows, title="Held-out intensity, relative L2 error (median over series): "
                            "context half and forecast half")
    print_table(fits, title="Value forecast at held-out future events, process on and off")
    coal_result = coal(config, plot=not args.quick)
    print_table([coal_result], title="Coal-mining disasters, held out 1940-1962")
    payload = dict(
        config=config,
        simulation=dict(rate=RATE, amplitude=AMPLITUDE, omega=OMEGA, length=LENGTH,
                        noise=NOISE),
        note="one fit per model (n=1); intensities are posterior means over n_samples draws "
             "of z0 given each held-out series' first half",
        intensity=rows, value_forecast=fits, coal=coal_result)
    path = write_results(__file__, payload, quick=args.quick)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
