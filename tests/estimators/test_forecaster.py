"""LatentODEForecaster and RNNForecaster through the public API."""

import inspect
import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from latode.estimators import LatentODEForecaster, RNNForecaster
from latode.estimators._schedule import training_plan
from latode.exceptions import InvalidCheckpointError, NotFittedError, SolverError

DECAY = 0.7


def linear_ode_frame(n=32, k=10, seed=0):
    """Noise-free y' = -0.7 y, y0 ~ U(-2, 2), on one irregular time grid in [0, 2]."""
    rng = np.random.default_rng(seed)
    t = np.tile(np.sort(rng.uniform(0, 2, size=k)), (n, 1))
    y0 = rng.uniform(-2, 2, size=(n, 1))
    df = pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(n)], k),
                       "ds": t.ravel(), "y": (y0 * np.exp(-DECAY * t)).ravel()})
    return df, y0.ravel()


def small(cls=LatentODEForecaster, **kw):
    params = dict(max_epochs=3, batch_size=32, verbose=0, random_state=0, time_scale=1.0)
    if cls is LatentODEForecaster:
        params.update(latent_dim=2, hidden=(16,), encoder="rnn", encoder_hidden=16)
    else:
        params.update(hidden_dim=16)
    params.update(kw)
    return cls(**params)


@pytest.fixture(scope="module")
def linear_fit():
    df, y0 = linear_ode_frame()
    model = small(max_epochs=300, learning_rate=2e-2, patience=None,
                  validation_fraction=0.0).fit(df)
    return model, df, y0


def test_fitting_a_noise_free_linear_ode_recovers_its_forecast(linear_fit):
    model, df, y0 = linear_fit
    future = np.array([2.5, 3.0])
    fc = model.predict(df, timestamps=future, quantiles=None, n_samples=10)
    truth = (y0[:, None] * np.exp(-DECAY * future[None, :])).ravel()
    assert np.max(np.abs(fc["y"].to_numpy() - truth)) < 0.08


def test_predict_before_between_and_after_observations(linear_fit):
    model, df, y0 = linear_fit
    context = df[df.unique_id == "s3"]
    obs_t = context.ds.to_numpy()
    requested = np.array([obs_t[0] - 0.05, (obs_t[4] + obs_t[5]) / 2, obs_t[-1] + 0.5])
    fc = model.predict(context, timestamps=requested, quantiles=(0.1, 0.9), n_samples=50)
    assert list(fc.ds) == list(requested)
    assert (fc.unique_id == "s3").all()
    truth = y0[3] * np.exp(-DECAY * requested)
    error = np.abs(fc.y.to_numpy() - truth)  # y spans [-2, 2]
    # Between observations and after them the fit is close; two time units back from the
    # origin (before the first observation) this small model is at its weakest.
    assert error[1:].max() < 0.08 and error[0] < 0.3
    assert (fc["y_q0.1"] <= fc["y"]).all() and (fc["y"] <= fc["y_q0.9"]).all()


def test_output_columns_levels_and_types():
    df = pd.DataFrame({"sid": ["a"] * 4 + ["b"] * 3,
                       "when": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 05:00",
                                               "2024-01-02 00:00", "2024-01-03 00:00",
                                               "2024-01-01 02:00", "2024-01-01 09:00",
                                               "2024-01-02 12:00"]).tz_localize("UTC"),
                       "hr": [80, 82, np.nan, 90, 70, 71, 73.0], "spo2": [97, np.nan, 95, 96,
                                                                     99, 98, np.nan]})
    model = small(id_col="sid", time_col="when", time_scale="1D").fit(df)
    fc = model.predict(df, horizon=pd.Timedelta("12h"), freq="6h", quantiles=None,
                       level=(80,))
    assert list(fc.columns) == ["sid", "when", "hr", "hr-lo-80", "hr-hi-80", "spo2",
                                "spo2-lo-80", "spo2-hi-80"]
    assert fc.when.dtype == df.when.dtype
    last = df.groupby("sid").when.max()
    expected = [last["a"] + pd.Timedelta("6h"), last["a"] + pd.Timedelta("12h"),
                last["b"] + pd.Timedelta("6h"), last["b"] + pd.Timedelta("12h")]
    assert list(fc.when) == expected
    rows = pd.DataFrame({"sid": ["b", "a"], "when": [last["b"], last["a"]]})
    assert model.predict(df, timestamps=rows).shape[0] == 2


def test_sample_returns_long_frame_with_sample_id():
    df, _ = linear_ode_frame(n=6, k=5)
    model = small().fit(df)
    paths = model.sample(df, horizon=[0.5, 1.0], n_samples=7, random_state=1)
    assert list(paths.columns) == ["sample_id", "unique_id", "ds", "y"]
    assert len(paths) == 7 * 6 * 2 and set(paths.sample_id) == set(range(7))
    again = model.sample(df, horizon=[0.5, 1.0], n_samples=7, random_state=1)
    pd.testing.assert_frame_equal(paths, again)


def test_score_is_higher_on_the_training_law_than_on_shuffled_values(linear_fit):
    model, df, _ = linear_fit
    good = model.score(df)
    shuffled = df.assign(y=np.random.default_rng(0).permutation(df.y.to_numpy()))
    assert np.isfinite(good) and good > model.score(shuffled) + 1.0


def test_random_state_makes_fits_identical():
    df, _ = linear_ode_frame(n=8, k=6)
    a = small().fit(df)
    b = small().fit(df)
    strip = [{k: v for k, v in r.items() if k != "epoch_time"} for r in a.history_]
    assert strip == [{k: v for k, v in r.items() if k != "epoch_time"} for r in b.history_]
    pd.testing.assert_frame_equal(a.predict(df, horizon=[1.0]), b.predict(df, horizon=[1.0]))


def test_history_records_losses_and_nfe():
    df, _ = linear_ode_frame(n=10, k=6)
    model = small(validation_fraction=0.2).fit(df)
    record = model.history_[-1]
    for key in ("train_loss", "val_loss", "nfe_forward", "nfe_backward", "lr", "epoch_time"):
        assert key in record
    assert record["nfe_forward"] > 0
    assert model.n_epochs_ == 3 and 1 <= model.best_epoch_ <= 3


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_sklearn_contract(cls):
    est = small(cls)
    params = est.get_params()
    assert vars(est) == params  # __init__ stores its arguments and nothing else
    cloned = clone(est)
    assert cloned.get_params() == params and cloned is not est
    est.set_params(max_epochs=2)
    assert est.get_params()["max_epochs"] == 2
    df, _ = linear_ode_frame(n=6, k=5)
    assert est.fit(df) is est
    first = est.predict(df, horizon=[0.5])
    est.fit(df)  # refit starts from scratch: same seed, same result
    pd.testing.assert_frame_equal(first, est.predict(df, horizon=[0.5]))


SOLVER_PARAMETERS = {"solver", "rtol", "atol", "adjoint", "step_size", "max_num_steps"}


def test_the_rnn_baseline_takes_only_the_parameters_it_uses():
    # It solves no ODE: solver settings would be accepted and silently ignored, so they are
    # refused, by __init__ and set_params alike, and its constraints name only its params.
    params = RNNForecaster().get_params()
    assert SOLVER_PARAMETERS.isdisjoint(params)
    assert set(RNNForecaster._parameter_constraints) == set(params)
    assert SOLVER_PARAMETERS <= set(LatentODEForecaster().get_params())
    assert clone(small(RNNForecaster)).get_params() == small(RNNForecaster).get_params()
    for name in sorted(SOLVER_PARAMETERS):
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
            RNNForecaster(**{name: LatentODEForecaster().get_params()[name]})
    with pytest.raises(ValueError, match="Invalid parameter 'rtol'"):
        RNNForecaster().set_params(rtol=1e-3)
    # Every parameter it lists is read by its own or an inherited method (not only stored).
    source = "".join(inspect.getsource(c) for c in RNNForecaster.__mro__
                     if c.__module__.startswith("latode"))
    source = source.replace(inspect.getsource(RNNForecaster.__init__), "")
    unread = [name for name in params
              if not re.search(rf'self\.{name}\b|getattr\(self, "{name}"', source)]
    assert unread == []


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_save_load_and_pickle_round_trip(cls, tmp_path):
    df, _ = linear_ode_frame(n=6, k=5)
    model = small(cls).fit(df)
    expected = model.predict(df, horizon=[0.3, 0.9])
    loaded = cls.load(model.save(tmp_path / "model.pt"))
    pd.testing.assert_frame_equal(loaded.predict(df, horizon=[0.3, 0.9]), expected)
    unpickled = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(unpickled.predict(df, horizon=[0.3, 0.9]), expected)
    assert loaded.history_ == model.history_



@pytest.mark.parametrize("name, before, default", [("slope_points", 0, 4),
                                                   ("horizon_noise", False, True),
                                                   ("free_bits", 0.0, 0.5),
                                                   ("mean_reversion", False, True)])
def test_a_file_saved_before_a_parameter_existed_loads_as_the_model_it_was(tmp_path, name,
                                                                           before, default):
    # Files written before the parameter existed hold a model fitted without it.
    df, _ = linear_ode_frame(n=6, k=5)
    model = small(**{name: before}).fit(df)
    path = model.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    del payload["params"][name]
    torch.save(payload, path)
    loaded = LatentODEForecaster.load(path)
    assert getattr(loaded, name) == before
    pd.testing.assert_frame_equal(loaded.predict(df, horizon=[0.5]),
                                  model.predict(df, horizon=[0.5]))
    assert getattr(LatentODEForecaster(), name) == default


@pytest.mark.parametrize("bad", [1, -2, 2.0, True])
def test_slope_points_is_zero_or_an_int_of_at_least_two(bad):
    df, _ = linear_ode_frame(n=6, k=5)
    with pytest.raises((TypeError, ValueError), match=r"'slope_points' parameter .* 0, or an "
                                                      r"int >= 2"):
        small(slope_points=bad).fit(df)


def test_load_refuses_files_that_are_not_latode_models(tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    with pytest.raises(InvalidCheckpointError, match="not a latode LatentODEForecaster"):
        LatentODEForecaster.load(bogus)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(InvalidCheckpointError):
        LatentODEForecaster.load(text)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"latode_kind": "LatentODEForecaster", "x": Evil()}, handle)
    with pytest.raises(InvalidCheckpointError):
        LatentODEForecaster.load(evil)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InvalidCheckpointError, match=r"empty \(0 bytes\)"):
        LatentODEForecaster.load(empty)
    cut = tmp_path / "cut.pt"  # a file cut off inside torch's archive
    torch.save({"latode_kind": "LatentODEForecaster", "w": torch.zeros(1000)}, cut)
    cut.write_bytes(cut.read_bytes()[:100])
    with pytest.raises(InvalidCheckpointError, match="could not be read as one"):
        LatentODEForecaster.load(cut)


def test_an_empty_checkpoint_is_refused_by_name_on_resume(tmp_path):
    df, _ = linear_ode_frame(n=8, k=6)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(InvalidCheckpointError, match="empty"):
        small(validation_fraction=0.0).fit(df, checkpoint_dir=tmp_path)


@pytest.fixture(scope="module")
def fitted_small():
    df, _ = linear_ode_frame(n=6, k=5)
    return small().fit(df), df


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(timestamps=pd.DataFrame({"unique_id": ["zz"], "ds": [3.0]})), ValueError,
         ["'zz'", "context_df"]),
        (dict(timestamps=pd.to_datetime(["2024-01-01"])), TypeError, ["timestamps", "float"]),
        (dict(timestamps=["soon"]), TypeError, ["timestamps"]),
        (dict(horizon=[-1.0]), ValueError, ["horizon", "positive"]),
        (dict(horizon=[pd.Timedelta("1h")]), TypeError, ["horizon", "numbers"]),
        (dict(horizon=1.0), ValueError, ["freq"]),
        (dict(), ValueError, ["timestamps=", "horizon="]),
        (dict(timestamps=[1.0], horizon=[1.0]), ValueError, ["exactly one"]),
        (dict(horizon=[1.0], quantiles=(0.5, 1.5)), ValueError, ["quantiles", "(0, 1)"]),
        (dict(horizon=[1.0], level=(120,)), ValueError, ["level"]),
        (dict(horizon=[1.0], n_samples=0), ValueError, ["n_samples"]),
    ],
    ids=["unknown-series", "wrong-time-type", "string-times", "negative-horizon",
         "horizon-type", "horizon-without-freq", "no-target", "both-targets",
         "bad-quantile", "bad-level", "bad-n-samples"],
)
def test_bad_predict_arguments(fitted_small, kwargs, error, words):
    model, df = fitted_small
    with pytest.raises(error) as info:
        model.predict(df, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_context_is_reported_as_context_df(fitted_small):
    model, df = fitted_small
    with pytest.raises(ValueError, match="context_df has no column 'ds'"):
        model.predict(df.rename(columns={"ds": "t"}), horizon=[1.0])


def test_not_fitted():
    df, _ = linear_ode_frame(n=4, k=4)
    for method in ("predict", "sample"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(LatentODEForecaster(), method)(df, horizon=[1.0])
    with pytest.raises(NotFittedError):
        LatentODEForecaster().score(df)


@pytest.mark.parametrize("param, value, error", [
    ("latent_dim", 0, ValueError), ("encoder", "lstm", ValueError), ("rtol", 2.0, ValueError),
    ("solver", "rk45", ValueError), ("max_epochs", 1.5, TypeError), ("device", 3, TypeError),
])
def test_bad_hyperparameters_are_named(param, value, error):
    df, _ = linear_ode_frame(n=4, k=4)
    with pytest.raises(error, match=f"'{param}' parameter of LatentODEForecaster"):
        small(**{param: value}).fit(df)


def test_kl_warmup_ramps_the_kl_weight_per_step_and_resumes_on_the_ramp(tmp_path):
    # 8 series in batches of 4: two optimisation steps an epoch. With kl_warmup=4 the
    # weights are 1/4, 2/4 | 3/4, 1 | 1, 1: the epoch records hold their means.
    df, _ = linear_ode_frame(n=8, k=6)
    # A constant rate: the stand-in for the kill below ends the fit after one epoch, and an
    # "auto" decay would fit its schedule to that one epoch.
    kw = dict(batch_size=4, validation_fraction=0.0, kl_warmup=4, patience=None, lr_decay=1.0)
    straight = small(**kw).fit(df)
    assert [r["kl_weight"] for r in straight.history_] == pytest.approx([0.375, 0.875, 1.0])
    # A fit that ends inside the warm-up (no epoch on the full bound to compare) keeps its
    # last weights and says so.
    assert small(**{**kw, "kl_warmup": 100}).fit(df).best_epoch_ == 3
    assert "kl_weight" in small(batch_size=4, validation_fraction=0.0).fit(df).history_[0]
    # Killed after one epoch and resumed, the fit continues the ramp where it stopped.
    small(**{**kw, "max_epochs": 1}).fit(df, checkpoint_dir=tmp_path)
    resumed = small(**kw).fit(df, checkpoint_dir=tmp_path)
    strip = [{k: v for k, v in r.items() if k != "epoch_time"} for r in straight.history_]
    assert [{k: v for k, v in r.items() if k != "epoch_time"}
            for r in resumed.history_] == strip


def test_learning_rate_decay_reaches_the_trainer():
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(batch_size=4, validation_fraction=0.0, learning_rate=0.01, lr_decay=0.5,
                  min_learning_rate=0.002).fit(df)
    assert [r["lr"] for r in model.history_] == pytest.approx([0.0025, 0.002, 0.002])


def test_auto_learning_rate_decay_ends_at_a_tenth_of_the_rate_on_the_last_planned_step():
    # 8 series in batches of 4: two steps an epoch, so five epochs are ten steps.
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(batch_size=4, validation_fraction=0.0, learning_rate=0.01,
                  max_epochs=5).fit(df)
    assert model.lr_decay == "auto"
    rates = [r["lr"] for r in model.history_]
    assert rates[-1] == pytest.approx(0.001)
    assert rates == pytest.approx([0.01 * 0.1 ** (2 * (e + 1) / 10) for e in range(5)])
    constant = small(batch_size=4, validation_fraction=0.0, learning_rate=0.01, max_epochs=5,
                     lr_decay=1.0).fit(df)
    assert [r["lr"] for r in constant.history_] == pytest.approx([0.01] * 5)
    with pytest.raises(ValueError, match="'lr_decay' parameter"):
        small(lr_decay="fast").fit(df)


def test_auto_epochs_cap_stops_the_fit_without_hurrying_the_auto_decay():
    # 8 series in one batch of 8: one step an epoch, so the "auto" plan is 2000 epochs; a
    # cap of 3 ends the fit after three steps of that plan's decay, not of a 3-epoch one.
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(validation_fraction=0.0, learning_rate=0.01, max_epochs="auto",
                  batch_size="auto", patience=None)
    model._most_epochs = 3
    model.fit(df)
    rates = [r["lr"] for r in model.history_]
    assert rates == pytest.approx([0.01 * 0.1 ** ((e + 1) / 2000) for e in range(3)])
    plan = training_plan(8, "auto", "auto", None, most_epochs=3)
    assert (plan.max_epochs, plan.decay_epochs) == (3, 2000)


@pytest.mark.parametrize("cls, most", [(LatentODEForecaster, 225), (RNNForecaster, 300)])
def test_auto_epochs_stop_at_the_estimators_own_cap(cls, most):
    # 32 training series (batches of 8, four steps an epoch): 2000 steps would be 500
    # epochs, so the cap decides. The latent ODE, whose rate decays over its plan, stops
    # at 225.
    model = small(cls, max_epochs="auto", batch_size="auto", patience="auto")
    plan = training_plan(32, "auto", "auto", "auto", most_epochs=model._most_epochs)
    assert (plan.max_epochs, plan.batch_size) == (most, 8)


def test_extrapolate_objective_reads_a_drawn_prefix_in_training_and_a_fixed_spread_in_validation():
    from latode.data import IrregularFrameConverter

    n, k = 64, 11
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(n), k),
                       "ds": np.tile(np.arange(k, dtype=float), n), "y": 1.0})
    batch = IrregularFrameConverter(time_scale=None).fit_pack(df).union_batch()
    position = torch.arange(k).expand(n, k)  # the grid is the k shared times, in order

    def read(training, **kw):
        return LatentODEForecaster(**kw)._read_rows(batch, training).bool()

    assert read(True, objective="reconstruct").all()
    assert torch.equal(read(True, objective="extrapolate", context_fraction=0.5), position <= 5)
    # A range: validation spreads its cutoffs over the range, the same rows every epoch ...
    ranged = dict(objective="extrapolate", context_fraction=(0.2, 0.8))
    validation = read(False, **ranged)
    assert torch.equal(validation, read(False, **ranged))
    # Cutoffs 2 to 8 in the span 0-10: 3 to 8 rows read (9 only at exactly 0.8), each for
    # about a sixth of the series.
    counts = torch.bincount(validation.sum(-1), minlength=k + 1)
    assert counts[:3].sum() == 0 and counts[9:].sum() == 0
    assert (counts[3:9] >= 8).all()
    # ... training draws a cutoff per series inside the range, anew each batch.
    torch.manual_seed(0)
    first, second = read(True, **ranged), read(True, **ranged)
    lengths = first.sum(-1)
    assert lengths.min() >= 3 and lengths.max() <= 9 and len(set(lengths.tolist())) > 3
    assert not torch.equal(first, second)


def test_a_fixed_observation_std_stays_fixed_through_fit_and_save(tmp_path):
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(observation_std=0.2, validation_fraction=0.0).fit(df)
    torch.testing.assert_close(model.module_.observation_log_std().exp(),
                               torch.tensor([0.2]))
    model.save(tmp_path / "m.pt")
    loaded = LatentODEForecaster.load(tmp_path / "m.pt")
    assert loaded.observation_std == 0.2
    pd.testing.assert_frame_equal(loaded.predict(df, horizon=[0.5], n_samples=2),
                                  model.predict(df, horizon=[0.5], n_samples=2))
    with pytest.raises(ValueError, match="'observation_std' parameter"):
        small(observation_std=0.0).fit(df)


def staggered_frame():
    """Series that start at different times, on interleaved irregular times."""
    rng = np.random.default_rng(3)
    frames = []
    for i, start in enumerate([0.0, 0.7, 2.3, 5.1]):
        t = start + np.sort(rng.uniform(0, 2, size=6))
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": t, "y": np.sin(t)}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("encoder, encoder_solver, options", [
    ("rnn", "euler", {}), ("ode-rnn", "euler", {}), ("ode-rnn", "rk4", {}),
    ("ode-rnn", "dopri5", {}), ("rnn", "euler", {"level": "mean", "clock": True}),
    ("rnn", "euler", {"level": None, "objective": "reconstruct"})])
def test_a_series_forecast_depends_only_on_its_own_rows(encoder, encoder_solver, options):
    # Alone or in one batch with the others, a series gets the same q(z) and the same
    # forecast (up to the adaptive solver's shared step control, tight here).
    df = staggered_frame()
    model = small(encoder=encoder, encoder_solver=encoder_solver, rtol=1e-7,
                  atol=1e-9, **options).fit(df)
    module, packed = model.module_, model.converter_.pack(df)

    def forecast(batch, k, times):
        """q(z) of the batch's k-th series and the mean decoded from its mean at ``times``."""
        context = module.encode(batch.times, batch.values, batch.mask)
        grid = torch.as_tensor(times - batch.origins[k], dtype=torch.float32)
        return (context.mu[k], context.logvar[k],
                module.decode(context.mu[None], context, grid)[0, k])

    last = packed.times[packed.indptr[1:] - 1]
    with torch.no_grad():
        for k in range(packed.n_series):
            times = last[k] + np.array([0.1, 0.5, 1.0])
            together = forecast(packed.union_batch(), k, times)
            alone = forecast(packed.union_batch(np.array([k])), 0, times)
            for a, b in zip(together, alone):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_predict_and_sample_give_a_series_the_same_numbers_alone_or_among_others(cls):
    # Each series' Monte Carlo draws come from its own generator (seed and id), so its
    # quantiles and trajectories do not depend on the other series, their order or batch_size.
    df = staggered_frame()
    # Tight tolerances for the latent ODE's shared step control; the GRU solves nothing.
    tight = dict(rtol=1e-7, atol=1e-9) if cls is LatentODEForecaster else {}
    model = small(cls, **tight).fit(df)
    kwargs = dict(horizon=[0.5, 1.0], level=(80,), n_samples=20)
    together = model.predict(df, **kwargs)
    paths = model.sample(df, horizon=[0.5], n_samples=5, random_state=1)
    model.set_params(batch_size=1)
    reversed_df = df.iloc[::-1]
    for sid in ("s1", "s3"):
        alone = model.predict(df[df["unique_id"] == sid], **kwargs)
        mine = together[together["unique_id"] == sid].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, mine, rtol=1e-4)
        backwards = model.sample(reversed_df, horizon=[0.5], n_samples=5, random_state=1)
        pd.testing.assert_frame_equal(
            backwards[backwards["unique_id"] == sid].reset_index(drop=True),
            paths[paths["unique_id"] == sid].reset_index(drop=True), rtol=1e-4)


# ------------------------------------------------------------------ time and id types
def datetime_frame(unit="ns", n=4, k=6):
    """Hourly-ish irregular series on datetimes stored at ``unit`` resolution."""
    rng = np.random.default_rng(1)
    hours = np.sort([rng.choice(48, size=k, replace=False) for _ in range(n)], axis=1)
    ds = pd.Timestamp("2024-03-01") + pd.to_timedelta(hours.ravel(), unit="h")
    return pd.DataFrame({"unique_id": np.repeat(np.arange(n), k),
                         "ds": pd.Series(ds).astype(f"datetime64[{unit}]"),
                         "y": np.cos(hours / 10).ravel()})


def test_a_model_with_a_timedelta_time_scale_saves_and_loads(tmp_path):
    df = datetime_frame()
    model = small(time_scale=pd.Timedelta("1D")).fit(df)
    loaded = LatentODEForecaster.load(model.save(tmp_path / "m.pt"))
    assert pd.Timedelta(loaded.time_scale) == pd.Timedelta("1D")
    pd.testing.assert_frame_equal(loaded.predict(df, horizon=["6h"]),
                                  model.predict(df, horizon=["6h"]))


@pytest.mark.parametrize("call", [
    lambda m, df: m.predict(df, horizon=[1, 2]),
    lambda m, df: m.predict(df, horizon=3, freq=1),
    lambda m, df: m.predict(df, horizon="3h", freq=1.5),
    lambda m, df: m.predict(df, horizon=[np.float64(2.0)]),
])
def test_datetime_models_refuse_plain_numbers_as_durations(call):
    # pd.Timedelta(1) is one nanosecond: a number must not pass for a duration.
    df = datetime_frame()
    model = small(time_scale="1D").fit(df)
    with pytest.raises(TypeError, match=r"(horizon|freq) must be durations"):
        call(model, df)
    assert len(model.predict(df, horizon=[pd.Timedelta("1h"), np.timedelta64(2, "h")])) == 8


def test_time_scale_of_the_wrong_kind_is_named():
    with pytest.raises(TypeError, match=r"time_scale='1h' is not a number.*'ds' holds numbers"):
        small(time_scale="1h").fit(linear_ode_frame()[0])
    with pytest.raises(TypeError, match=r"time_scale=24 is a plain number.*'6h'"):
        small(time_scale=24).fit(datetime_frame())


def test_forecast_times_between_integer_timestamps_keep_their_fractions():
    df, _ = linear_ode_frame(n=4, k=6)
    df["ds"] = (df["ds"] * 10).round().astype("int64")
    model = small().fit(df)
    last = df.groupby("unique_id")["ds"].max()
    fc = model.predict(df, horizon=2, freq=0.5)
    assert fc["ds"].dtype == np.float64
    expected = np.concatenate([v + np.array([0.5, 1.0, 1.5, 2.0]) for v in last.to_numpy()])
    np.testing.assert_array_equal(fc["ds"].to_numpy(), expected)
    # Whole offsets still come back as the column's integers.
    assert model.predict(df, horizon=[1, 2])["ds"].dtype == np.int64
    nullable = df.astype({"ds": "Int64"})
    assert model.predict(nullable, horizon=[0.5])["ds"].tolist() == (last + 0.5).tolist()


def test_float32_time_columns_come_back_as_float32():
    df, _ = linear_ode_frame(n=4, k=6)
    model = small().fit(df.astype({"ds": "float32"}))
    for horizon in ([0.1], [1.0]):
        assert model.predict(df.astype({"ds": "float32"}), horizon=horizon)["ds"].dtype \
            == np.float32


def test_forecast_times_finer_than_the_datetime_unit_are_not_rounded():
    df = datetime_frame(unit="s")
    model = small(time_scale="1h").fit(df)
    fc = model.predict(df, horizon=["100ms", "200ms"])
    assert fc.groupby("unique_id")["ds"].nunique().eq(2).all()
    assert model.predict(df, horizon=["1s"])["ds"].dtype == "datetime64[s]"


def test_output_ids_keep_the_types_the_context_gives_them():
    df, _ = linear_ode_frame(n=4, k=6)
    df["unique_id"] = df["unique_id"].str[1:].astype("int64")  # a model fitted on int ids
    model = small().fit(df)
    for ids in (df["unique_id"] + 0.5, "p" + df["unique_id"].astype(str), df["unique_id"]):
        context = df.assign(unique_id=ids)
        out = model.predict(context, horizon=[0.5])["unique_id"]
        assert out.tolist() == list(pd.unique(ids))
    assert out.dtype == np.int64


def test_a_context_that_never_observes_one_channel_is_forecast_and_scored():
    df, _ = linear_ode_frame(n=8, k=6)
    df["y2"] = -df["y"]
    model = small().fit(df)
    context = df.assign(y2=np.where(df["unique_id"] == "s0", np.nan, df["y2"]))
    only_s0 = context[context["unique_id"] == "s0"]
    fc = model.predict(only_s0, horizon=[0.5])
    assert np.isfinite(fc[["y", "y2"]].to_numpy()).all()
    assert np.isfinite(model.score(only_s0))
    # Fitting still needs every channel: nothing could be learned about one never seen.
    with pytest.raises(ValueError, match=r"\['y2'\] of df have no observed value"):
        small().fit(df.assign(y2=np.nan))


def test_integer_column_names_fit_and_forecast():
    df, _ = linear_ode_frame(n=4, k=6)
    df = df.rename(columns={"y": 0})
    fc = small().fit(df).predict(df, horizon=[0.5])
    assert 0 in fc.columns and "0_q0.5" in fc.columns


def test_a_far_off_time_with_a_fixed_step_solver_is_a_solver_error():
    df, _ = linear_ode_frame(n=4, k=6)
    model = small(solver="rk4", step_size=0.1).fit(df)
    assert len(model.predict(df, timestamps=[50.0, 90.0, 120.0])) == 12
    model.set_params(step_size=0.01)
    with pytest.raises(SolverError, match=r"needs 5e\+07 steps, over the 1e\+07"):
        model.predict(df, timestamps=[5e5])
    # Farther than any solve may reach: refused before the grid is considered.
    with pytest.raises(ValueError, match="cannot forecast that far"):
        model.predict(df, timestamps=[1e12])


def test_auto_training_plan_follows_the_number_of_series():
    # 20 series, 4 held out: batches of 8 (two steps an epoch), patience of 100 epochs; an
    # explicit setting wins.
    df = staggered_frame()
    frames = [df.assign(unique_id=df.unique_id + f"-{k}") for k in range(5)]
    many = pd.concat(frames, ignore_index=True)
    auto = small(max_epochs="auto", batch_size="auto", patience="auto", max_num_steps=500)
    plan = training_plan(16, "auto", "auto", "auto")
    assert (plan.batch_size, plan.patience) == (8, 100)
    auto.set_params(max_epochs=3).fit(many)
    assert auto.n_epochs_ == 3
    assert auto.history_[0]["lr"] > 0
    with pytest.raises(ValueError, match="'batch_size' parameter .* one of 'auto'"):
        small(batch_size="big").fit(many)


@pytest.mark.parametrize("cls", [LatentODEForecaster, RNNForecaster])
def test_weight_average_is_on_by_default_and_can_be_turned_off(cls):
    df, _ = linear_ode_frame(n=8, k=6)
    assert cls().ema_decay == 0.99
    averaged = small(cls, max_epochs=2, validation_fraction=0.0).fit(df)
    last = small(cls, max_epochs=2, validation_fraction=0.0, ema_decay=None).fit(df)
    # Same seed, same steps: only the weights they end with differ.
    assert averaged.history_[0]["train_loss"] == last.history_[0]["train_loss"]
    assert not torch.equal(next(averaged.module_.parameters()),
                           next(last.module_.parameters()))
    with pytest.raises(ValueError, match="'ema_decay' parameter"):
        small(cls, ema_decay=1.0).fit(df)


def test_an_rnn_baseline_saved_with_its_old_solver_parameters_still_loads(tmp_path):
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(RNNForecaster, validation_fraction=0.0).fit(df)
    model.save(tmp_path / "new.pt")
    payload = torch.load(tmp_path / "new.pt", weights_only=True)
    # Files written before RNNForecaster dropped the solver parameters it ignored.
    payload["params"].update(solver="dopri5", rtol=1e-3, atol=1e-4, adjoint=False,
                             step_size=None, max_num_steps=2000)
    torch.save(payload, tmp_path / "old.pt")
    loaded = RNNForecaster.load(tmp_path / "old.pt")
    assert "rtol" not in loaded.get_params()
    pd.testing.assert_frame_equal(loaded.predict(df, horizon=[0.5]), model.predict(df, horizon=[0.5]))


def test_draws_beyond_the_memory_budget_are_refused_before_any_solve(fitted_small):
    model, df = fitted_small
    with pytest.raises(ValueError, match=r"n_samples=1000000000 .* GiB, over the 2 GiB"):
        model.predict(df, horizon=[1.0], n_samples=10**9)
    with pytest.raises(ValueError, match="fewer n_samples"):
        model.sample(df, horizon=[1.0], n_samples=10**9)


@pytest.mark.parametrize("name", ["horizon_noise", "mean_reversion"])
def test_switches_of_the_model_are_bools(name):
    df, _ = linear_ode_frame(n=6, k=5)
    with pytest.raises((TypeError, ValueError), match=f"'{name}' parameter"):
        small(**{name: "yes"}).fit(df)


def test_the_noise_drawn_around_a_forecast_grows_with_its_horizon_as_the_model_says():
    # sample(noise=True) adds observation noise to the same trajectories noise=False draws;
    # its spread at each horizon is the module's std there, times the channel's scale.
    df, _ = linear_ode_frame(n=8, k=6)
    model = small(horizon_noise=True).fit(df)
    module = model.module_
    with torch.no_grad():
        module.log_std.fill_(math.log(0.05))
        module.log_diffusion.fill_(math.log(0.5))
    last = df.groupby("unique_id").ds.max()
    horizons = np.array([0.1, 1.0, 4.0])
    kw = dict(horizon=list(horizons), n_samples=4000, random_state=3)
    noisy = model.sample(df, **kw)
    clean = model.sample(df, noise=False, **kw)
    noise = noisy.y - clean.y
    spread = noise.groupby([noisy.unique_id, noisy.ds]).std()
    gap = spread.index.get_level_values("ds") - last.loc[spread.index.get_level_values(
        "unique_id")].to_numpy()
    scale = model.converter_.scaler_.std[0]  # time_scale=1.0: model time is ds
    expected = scale * np.sqrt(0.05 ** 2 + 0.5 ** 2 * gap)
    np.testing.assert_allclose(spread.to_numpy(), expected, rtol=0.06)
    assert np.allclose(np.sort(np.unique(np.round(gap, 9))), horizons)


@pytest.mark.parametrize("bad", [-0.1, "0.5"])
def test_free_bits_is_a_non_negative_number(bad):
    df, _ = linear_ode_frame(n=6, k=5)
    with pytest.raises((TypeError, ValueError), match="'free_bits' parameter"):
        small(free_bits=bad).fit(df)


def test_free_bits_change_training_but_not_the_score_of_a_fitted_model():
    df, _ = linear_ode_frame(n=12, k=6)
    plain = small(free_bits=0.0).fit(df)
    relaxed = small(free_bits=1.0).fit(df)
    assert not torch.equal(plain.module_.encoder.head[0].weight,
                           relaxed.module_.encoder.head[0].weight)
    score = relaxed.score(df)
    relaxed.set_params(free_bits=0.0)  # score reads the full bound whatever the setting
    assert relaxed.score(df) == score
