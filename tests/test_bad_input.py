"""Every public entry point, every kind of bad argument: one table, one test.

Each row of :data:`CASES` names an entry point (estimator and method), the argument that is
bad and how, the exception expected and a pattern the message must contain: the argument's
name (and, where it helps, what to do). A bad argument must never reach torch or the solver
(no torch traceback, no silent NaN), so a failing row is fixed in the library's validation
gate, not here.

Models are fitted once per module, tiny and for one epoch: the file runs in seconds.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from latode.estimators import LatentODEForecaster, RNNForecaster
from latode.estimators.classifier import ODENetClassifier, ResNetClassifier
from latode.estimators.density import CNFDensityEstimator, PlanarFlowDensityEstimator
from latode.exceptions import NotFittedError


@dataclass(frozen=True)
class Case:
    """One bad call: ``call(model, data)`` must raise ``error`` matching ``match``."""

    model: str  # key of the fitted (or unfitted) model in the ``models`` fixture
    method: str  # the entry point
    argument: str  # the bad argument
    bad: str  # what is wrong with it
    call: Callable[[Any, SimpleNamespace], Any]
    error: type[Exception]
    match: str  # regex searched in the message; it names the argument

    @property
    def id(self) -> str:
        return f"{self.model}.{self.method}-{self.argument}-{self.bad}"


# ------------------------------------------------------------------ data and models
def forecast_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 2, size=(4, 5)), axis=1)
    return pd.DataFrame({"unique_id": np.repeat(["a", "b", "c", "d"], 5), "ds": t.ravel(),
                         "y": np.sin(t + np.arange(4)[:, None]).ravel()})


def labelled_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 15)
    return rng.normal(size=(30, 4)) + 2.0 * y[:, None], y


def density_rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(40, 2))


TINY = dict(max_epochs=1, verbose=0, random_state=0)
FORECASTERS = {
    "LatentODE": lambda: LatentODEForecaster(latent_dim=2, hidden=(8,), encoder="rnn",
                                             encoder_hidden=8, time_scale=1.0, **TINY),
    "RNN": lambda: RNNForecaster(hidden_dim=8, time_scale=1.0, **TINY),
}
CLASSIFIERS = {
    "ODENet": lambda: ODENetClassifier(width=4, **TINY),
    "ResNet": lambda: ResNetClassifier(width=4, n_blocks=1, **TINY),
}
DENSITIES = {
    "CNF": lambda: CNFDensityEstimator(hidden=(4,), rtol=1e-3, atol=1e-3, device="cpu",
                                       **TINY),
    "Planar": lambda: PlanarFlowDensityEstimator(n_layers=2, device="cpu", **TINY),
}


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    X, y = labelled_rows()
    return SimpleNamespace(df=forecast_frame(), X=X, y=y, D=density_rows())


@pytest.fixture(scope="module")
def models(data) -> dict[str, Any]:
    fitted: dict[str, Any] = {}
    for name, make in FORECASTERS.items():
        fitted[name] = make().fit(data.df)
        fitted[f"unfitted {name}"] = make()
    fitted["LatentODE+pp"] = FORECASTERS["LatentODE"]().set_params(
        point_process=True).fit(data.df)
    for name, make in CLASSIFIERS.items():
        fitted[name] = make().fit(data.X, data.y)
        fitted[f"unfitted {name}"] = make()
    for name, make in DENSITIES.items():
        fitted[name] = make().fit(data.D)
        fitted[f"unfitted {name}"] = make()
    return fitted


# ------------------------------------------------------------------ helpers for rows
def with_nan(values: np.ndarray, row: int = 3, col: int = 1, fill: float = np.nan):
    """A float copy of ``values`` with ``fill`` at ``[row, col]``."""
    bad = np.array(values, dtype=float)
    bad[row, col] = fill
    return bad


def changed(df: pd.DataFrame, **changes) -> pd.DataFrame:
    """A copy of ``df`` with columns replaced (``changes``; a callable is applied to the
    frame) or dropped (value ``None``)."""
    out = df.copy()
    for column, value in changes.items():
        if value is None:
            out = out.drop(columns=column)
        else:
            out[column] = value(out) if callable(value) else value
    return out


def nan_first(column: str, fill: object = np.nan):
    """A change for :func:`changed`: ``column`` with ``fill`` in its first row."""
    def change(df):
        values = df[column].astype(object if isinstance(fill, str) or fill is None
                                   else df[column].dtype).to_numpy(copy=True)
        values[0] = fill
        return values
    return change


# ------------------------------------------------------------------ the table
def forecaster_cases(m: str) -> list[Case]:
    """Bad arguments of ``predict``, ``sample`` and ``score`` of forecaster ``m``."""
    V, T = ValueError, TypeError

    def predict(**kw):
        return lambda model, d: model.predict(d.df, **kw)

    def predict_on(change, **kw):
        return lambda model, d: model.predict(change(d.df), **{"horizon": [0.5], **kw})

    def sample(**kw):
        return lambda model, d: model.sample(d.df, **kw)

    def score_on(change, **kw):
        return lambda model, d: model.score(change(d.df), **kw)

    unseen = pd.DataFrame({"unique_id": ["zz"], "ds": [3.0]})
    rows = [
        # --- context_df: the gate of every frame (latode.data.validation)
        ("predict", "context_df", "ndarray", predict_on(lambda df: df.to_numpy()), T,
         r"context_df must be a pandas DataFrame"),
        ("predict", "context_df", "empty", predict_on(lambda df: df.iloc[:0]), V,
         r"context_df is empty"),
        ("predict", "context_df", "no-value-column", predict_on(lambda df: changed(df, y=None)),
         V, r"context_df has no value column.*'y'"),
        ("predict", "context_df", "no-time-column", predict_on(lambda df: changed(df, ds=None)),
         V, r"context_df has no column 'ds'"),
        ("predict", "context_df", "no-id-column",
         predict_on(lambda df: changed(df, unique_id=None)), V,
         r"context_df has no column 'unique_id'"),
        ("predict", "context_df", "nan-ids",
         predict_on(lambda df: changed(df, unique_id=nan_first("unique_id", None))), V,
         r"'unique_id' of context_df has 1 missing series ids"),
        ("predict", "context_df", "nan-times", predict_on(lambda df: changed(df, ds=nan_first("ds"))),
         V, r"'ds' of context_df has 1 NaN"),
        ("predict", "context_df", "string-times",
         predict_on(lambda df: changed(df, ds=lambda f: f.ds.astype(str))), T,
         r"'ds' of context_df .*pd\.to_datetime"),
        ("predict", "context_df", "datetime-times",
         predict_on(lambda df: changed(df, ds=pd.to_datetime(df.ds, unit="D"))), T,
         r"'ds' of context_df holds datetime values but the model was fitted on float times"),
        ("predict", "context_df", "string-values",
         predict_on(lambda df: changed(df, y=lambda f: f.y.astype(str))), T,
         r"'y' of context_df has non-numeric"),
        ("predict", "context_df", "infinite-values",
         predict_on(lambda df: changed(df, y=nan_first("y", np.inf))), V,
         r"'y' of context_df has 1 infinite"),
        ("predict", "context_df", "values-beyond-float32",
         predict_on(lambda df: changed(df, y=nan_first("y", 1e39))), V,
         r"'y' of context_df has 1 values beyond .*float32"),
        ("predict", "context_df", "series-never-observed",
         predict_on(lambda df: changed(df, y=lambda f: f.y.where(f.unique_id != "a"))), V,
         r"series of context_df have no observed value.*'a'"),
        ("predict", "context_df", "duplicate-rows",
         predict_on(lambda df: pd.concat([df, df.iloc[:1]])), V,
         r"context_df has 1 duplicate"),
        # --- timestamps (latode.data.targets)
        ("predict", "timestamps", "unseen-series", predict(timestamps=unseen), V,
         r"'zz' in timestamps has no observations in context_df"),
        ("predict", "timestamps", "datetimes", predict(timestamps=pd.to_datetime(["2024-01-01"])),
         T, r"'timestamps' holds datetime .*float"),
        ("predict", "timestamps", "strings", predict(timestamps=["soon"]), T,
         r"timestamps must be float values.*got 'soon'"),
        ("predict", "timestamps", "a-string", predict(timestamps="soon"), T,
         r"timestamps must be a DataFrame"),
        ("predict", "timestamps", "a-number", predict(timestamps=3.0), T,
         r"timestamps must be a DataFrame"),
        ("predict", "timestamps", "empty", predict(timestamps=[]), V, r"timestamps is empty"),
        ("predict", "timestamps", "nan", predict(timestamps=[1.0, np.nan]), V,
         r"timestamps contains missing"),
        ("predict", "timestamps", "infinite", predict(timestamps=[1.0, np.inf]), V,
         r"timestamps.*infinite"),
        ("predict", "timestamps", "frame-without-time",
         predict(timestamps=pd.DataFrame({"unique_id": ["a"]})), V,
         r"timestamps has no column 'ds'"),
        ("predict", "timestamps", "frame-with-nan-ids",
         predict(timestamps=pd.DataFrame({"unique_id": ["a", None], "ds": [3.0, 4.0]})), V,
         r"'unique_id' of timestamps has 1 missing"),
        ("predict", "timestamps", "and-horizon", predict(timestamps=[1.0], horizon=[1.0]), V,
         r"exactly one of timestamps= .* or horizon="),
        ("predict", "timestamps", "nor-horizon", predict(), V,
         r"exactly one of timestamps= .* or horizon="),
        # --- horizon and freq
        ("predict", "horizon", "negative", predict(horizon=[-1.0]), V, r"horizon must be positive"),
        ("predict", "horizon", "zero", predict(horizon=[0.0, 1.0]), V, r"horizon must be positive"),
        ("predict", "horizon", "nan", predict(horizon=[np.nan]), V, r"horizon must be"),
        ("predict", "horizon", "infinite", predict(horizon=[np.inf]), V, r"horizon must be"),
        ("predict", "horizon", "empty", predict(horizon=[]), V, r"horizon is empty"),
        ("predict", "horizon", "duration", predict(horizon=[pd.Timedelta("1h")]), T,
         r"horizon must be numbers"),
        ("predict", "horizon", "string", predict(horizon="1h", freq=0.5), T,
         r"horizon must be numbers"),
        ("predict", "horizon", "string-without-freq", predict(horizon="1h"), V,
         r"single horizon needs freq="),
        ("predict", "horizon", "bool", predict(horizon=[True]), T, r"horizon must be numbers"),
        ("predict", "horizon", "single-without-freq", predict(horizon=1.0), V, r"freq="),
        ("predict", "horizon", "list-with-freq", predict(horizon=[1.0, 2.0], freq=0.5), V,
         r"With freq=, horizon must be a single"),
        ("predict", "freq", "list", predict(horizon=2.0, freq=[0.5, 1.0]), V,
         r"With freq=, freq must be a single"),
        ("predict", "freq", "negative", predict(horizon=1.0, freq=-0.5), V,
         r"freq must be positive"),
        ("predict", "freq", "longer-than-horizon", predict(horizon=1.0, freq=2.0), V,
         r"horizon is shorter than freq"),
        ("predict", "freq", "tiny", predict(horizon=1.0, freq=1e-300), V,
         r"horizon / freq asks for .* forecast times .* larger freq="),
        ("predict", "freq", "string", predict(horizon=1.0, freq="6h"), T, r"freq must be numbers"),
        # --- quantiles, level, n_samples, random_state
        ("predict", "quantiles", "above-one", predict(horizon=[1.0], quantiles=(0.5, 1.5)), V,
         r"quantiles must lie in \(0, 1\)"),
        ("predict", "quantiles", "zero", predict(horizon=[1.0], quantiles=[0.0]), V,
         r"quantiles must lie in \(0, 1\)"),
        ("predict", "quantiles", "nan", predict(horizon=[1.0], quantiles=[np.nan]), V,
         r"quantiles must lie in \(0, 1\)"),
        ("predict", "quantiles", "string", predict(horizon=[1.0], quantiles=["median"]), T,
         r"quantiles must be numbers"),
        ("predict", "quantiles", "bool", predict(horizon=[1.0], quantiles=True), T,
         r"quantiles must be numbers"),
        ("predict", "level", "above-100", predict(horizon=[1.0], level=(120,)), V,
         r"level must lie in \(0, 100\)"),
        ("predict", "level", "zero", predict(horizon=[1.0], level=0), V,
         r"level must lie in \(0, 100\)"),
        ("predict", "level", "fraction-string", predict(horizon=[1.0], level=["80%"]), T,
         r"level must be numbers"),
        ("predict", "n_samples", "zero", predict(horizon=[1.0], n_samples=0), V,
         r"n_samples must be a positive"),
        ("predict", "n_samples", "negative", predict(horizon=[1.0], n_samples=-3), V,
         r"n_samples must be a positive"),
        ("predict", "n_samples", "bool", predict(horizon=[1.0], n_samples=True), T,
         r"n_samples must be a positive int"),
        ("predict", "n_samples", "float", predict(horizon=[1.0], n_samples=2.5), T,
         r"n_samples must be a positive int"),
        ("predict", "random_state", "string", predict(horizon=[1.0], random_state="seed"), T,
         r"random_state must be None or an int"),
        ("predict", "random_state", "negative", predict(horizon=[1.0], random_state=-1), V,
         r"random_state must be None or an int"),
        ("predict", "batch_size", "set-after-fit",
         lambda model, d: copy.deepcopy(model).set_params(batch_size=0).predict(d.df,
                                                                                horizon=[1.0]),
         V, r"'batch_size' parameter of \w+Forecaster must be"),
        # --- sample
        ("sample", "n_samples", "zero", sample(horizon=[1.0], n_samples=0), V,
         r"n_samples must be a positive"),
        ("sample", "n_samples", "bool", sample(horizon=[1.0], n_samples=False), T,
         r"n_samples must be a positive int"),
        ("sample", "horizon", "negative", sample(horizon=[-1.0]), V, r"horizon must be positive"),
        ("sample", "timestamps", "unseen-series", sample(timestamps=unseen), V,
         r"'zz' in timestamps"),
        ("sample", "noise", "string", sample(horizon=[1.0], noise="no"), T, r"noise must be"),
        ("sample", "context_df", "nan-ids",
         lambda model, d: model.sample(changed(d.df, unique_id=nan_first("unique_id", None)),
                                       horizon=[1.0]), V, r"'unique_id' of context_df"),
        # --- score
        ("score", "df", "ndarray", score_on(lambda df: df.to_numpy()), T,
         r"df must be a pandas DataFrame"),
        ("score", "df", "no-value-column", score_on(lambda df: changed(df, y=None)), V,
         r"df has no value column.*'y'"),
        ("score", "df", "infinite-values", score_on(lambda df: changed(df, y=nan_first("y", np.inf))),
         V, r"'y' of df has 1 infinite"),
        ("score", "df", "string-times", score_on(lambda df: changed(df, ds=lambda f: f.ds.astype(str))),
         T, r"'ds' of df"),
        ("score", "n_samples", "zero", score_on(lambda df: df, n_samples=0), V,
         r"n_samples must be a positive"),
        ("score", "n_samples", "float", score_on(lambda df: df, n_samples=1.5), T,
         r"n_samples must be a positive int"),
        ("score", "random_state", "string", score_on(lambda df: df, random_state="x"), T,
         r"random_state must be None or an int"),
        # --- fit (frames are checked by the same gate; see also tests/data)
        ("fit", "df", "ndarray", lambda model, d: clone(model).fit(d.df.to_numpy()), T,
         r"df must be a pandas DataFrame"),
        ("fit", "df", "nan-ids",
         lambda model, d: clone(model).fit(changed(d.df, unique_id=nan_first("unique_id", None))),
         V, r"'unique_id' of df has 1 missing"),
        ("fit", "df", "object-values",
         lambda model, d: clone(model).set_params(target_cols=["y"]).fit(
             changed(d.df, y=lambda f: f.y.astype(object).where(f.index > 0, "x"))),
         T, r"'y' of df has non-numeric"),
        ("fit", "max_epochs", "zero",
         lambda model, d: clone(model).set_params(max_epochs=0).fit(d.df), V,
         r"'max_epochs' parameter of \w+Forecaster must be one of 'auto' or an int in \[1, inf\)"),
        # --- not fitted
        ("predict", "self", "not-fitted", predict(horizon=[1.0]), NotFittedError, r"not fitted"),
        ("sample", "self", "not-fitted", sample(horizon=[1.0]), NotFittedError, r"not fitted"),
        ("score", "self", "not-fitted", score_on(lambda df: df), NotFittedError, r"not fitted"),
    ]
    if "rtol" in FORECASTERS[m]().get_params():  # forecasters that solve an ODE
        rows.append(("predict", "rtol", "set-after-fit",
                     lambda model, d: copy.deepcopy(model).set_params(rtol=-1.0).predict(
                         d.df, horizon=[1.0]),
                     V, r"'rtol' parameter of \w+Forecaster must be"))
    cases = []
    for method, argument, bad, call, error, match in rows:
        model = f"unfitted {m}" if bad == "not-fitted" else m
        cases.append(Case(model, method, argument, bad, call, error, match))
    return cases


def point_process_cases() -> list[Case]:
    """Bad arguments of the point-process entry points of a LatentODEForecaster fitted with
    ``point_process=True`` (model ``"LatentODE+pp"``) and of one fitted without it."""
    V, T = ValueError, TypeError

    def intensity(**kw):
        return lambda model, d: model.predict_intensity(d.df, **{"horizon": [0.5], **kw})

    def events(**kw):
        return lambda model, d: model.sample_events(d.df, **{"horizon": 1.0, **kw})

    unseen = pd.DataFrame({"unique_id": ["zz"], "ds": [3.0]})
    rows = [
        ("predict_intensity", "context_df", "ndarray",
         lambda model, d: model.predict_intensity(d.df.to_numpy(), horizon=[0.5]), T,
         r"context_df must be a pandas DataFrame"),
        ("predict_intensity", "timestamps", "unseen-series", intensity(horizon=None,
                                                                       timestamps=unseen),
         V, r"zz"),
        ("predict_intensity", "horizon", "negative", intensity(horizon=[-1.0]), V,
         r"horizon"),
        ("predict_intensity", "horizon", "string", intensity(horizon=["soon"]), T, r"horizon"),
        ("predict_intensity", "quantiles", "above-one", intensity(quantiles=[1.5]), V,
         r"quantiles"),
        ("predict_intensity", "level", "above-100", intensity(level=[120]), V, r"level"),
        ("predict_intensity", "n_samples", "zero", intensity(n_samples=0), V, r"n_samples"),
        ("predict_intensity", "n_samples", "bool", intensity(n_samples=True), T, r"n_samples"),
        ("predict_intensity", "per", "negative", intensity(per=-1.0), V, r"per"),
        ("predict_intensity", "per", "duration-for-numeric-times", intensity(per="1D"), V,
         r"per"),
        ("sample_events", "horizon", "negative", events(horizon=-1.0), V, r"horizon"),
        ("sample_events", "horizon", "missing", events(horizon=None), V, r"horizon"),
        ("sample_events", "n_samples", "zero", events(n_samples=0), V, r"n_samples"),
        ("sample_events", "max_tries", "zero", events(max_tries=0), V, r"max_tries"),
        ("sample_events", "max_tries", "float", events(max_tries=2.5), T, r"max_tries"),
        ("score_components", "n_samples", "float",
         lambda model, d: model.score_components(d.df, n_samples=2.5), T, r"n_samples"),
        ("fit", "event_col", "float-markers",
         lambda model, d: clone(model).set_params(event_col="e").fit(d.df.assign(e=1.0)), T,
         r"'e'.*boolean"),
        ("fit", "event_col", "no-events",
         lambda model, d: clone(model).set_params(event_col="e").fit(d.df.assign(e=False)), V,
         r"event_col|'e'"),
    ]
    cases = [Case("LatentODE+pp", *row) for row in rows]
    cases += [Case("LatentODE", method, "self", "no-point-process", call, V,
                   r"point_process=True")
              for method, call in (("predict_intensity", intensity()),
                                   ("sample_events", events()),
                                   ("score_components",
                                    lambda model, d: model.score_components(d.df)))]
    return cases


PREDICT_INTENSITY_CASES: list[Case] = point_process_cases()


def classifier_cases(m: str) -> list[Case]:
    """Bad arguments of ``fit``, ``predict``, ``predict_proba`` and ``score``."""
    V, T = ValueError, TypeError
    unfitted = f"unfitted {m}"

    def fit(X=None, y=None, **params):
        def call(model, d):
            model = clone(model).set_params(**params)
            return model.fit(d.X if X is None else X(d), d.y if y is None else y(d))
        return call

    rows = [
        (unfitted, "fit", "X", "nan", fit(X=lambda d: with_nan(d.X)), V, r"Input X contains NaN"),
        (unfitted, "fit", "X", "infinite", fit(X=lambda d: with_nan(d.X, fill=np.inf)), V,
         r"Input X contains infinity"),
        (unfitted, "fit", "X", "one-dimensional", fit(X=lambda d: d.X[:, 0]), V,
         r"X .*Expected 2D array"),
        (unfitted, "fit", "X", "strings", fit(X=lambda d: np.full(d.X.shape, "a")), V,
         r"X .*could not convert string"),
        (unfitted, "fit", "X", "empty", fit(X=lambda d: d.X[:0], y=lambda d: d.y[:0]), V,
         r"X .*0 sample"),
        (unfitted, "fit", "y", "shorter-than-X", fit(y=lambda d: d.y[:-1]), V,
         r"X has 30 rows but y has 29"),
        (unfitted, "fit", "y", "nan", fit(y=lambda d: with_nan(d.y[:, None], 0, 0)[:, 0]), V,
         r"y .*(NaN|Unknown label)"),
        (unfitted, "fit", "y", "continuous", fit(y=lambda d: d.X[:, 0]), V,
         r"y .*Unknown label type"),
        (unfitted, "fit", "y", "one-class", fit(y=lambda d: np.zeros(len(d.y))), V,
         r"at least 2 classes in y"),
        (unfitted, "fit", "y", "two-dimensional", fit(y=lambda d: np.c_[d.y, d.y]), V,
         r"y should be a 1d array"),
        (unfitted, "fit", "input_shape", "wrong-size", fit(input_shape=(1, 3, 3)), V,
         r"input_shape=\(1, 3, 3\) describes 9 values per row, but X has 4 columns"),
        (unfitted, "fit", "input_shape", "negative", fit(input_shape=(1, -2, 2)), V,
         r"'input_shape' parameter"),
        (unfitted, "fit", "input_shape", "string", fit(input_shape="1x2x2"), T,
         r"'input_shape' parameter"),
        (unfitted, "predict", "self", "not-fitted", lambda model, d: model.predict(d.X),
         NotFittedError, r"not fitted"),
    ]
    for method in ("predict", "predict_proba"):
        def call(how, method=method):
            return lambda model, d: getattr(model, method)(how(d))
        rows += [
            (m, method, "X", "nan", call(lambda d: with_nan(d.X)), V, r"Input X contains NaN"),
            (m, method, "X", "infinite", call(lambda d: with_nan(d.X, fill=-np.inf)), V,
             r"Input X contains infinity"),
            (m, method, "X", "too-few-features", call(lambda d: d.X[:, :3]), V,
             r"X has 3 features, but \w+ is expecting 4"),
            (m, method, "X", "one-dimensional", call(lambda d: d.X[0]), V,
             r"X .*Expected 2D array"),
            (m, method, "X", "strings", call(lambda d: np.full(d.X.shape, "a")), V,
             r"X .*could not convert string"),
            (m, method, "X", "none", call(lambda d: None), (T, V), r"X "),
        ]
    rows += [
        (m, "score", "X", "nan", lambda model, d: model.score(with_nan(d.X), d.y), V,
         r"Input X contains NaN"),
        (m, "score", "y", "shorter-than-X", lambda model, d: model.score(d.X, d.y[:-1]), V,
         r"X has 30 rows but y has 29"),
    ]
    return [Case(model, method, argument, bad, call, error, match)
            for model, method, argument, bad, call, error, match in rows]


def density_cases(m: str) -> list[Case]:
    """Bad arguments of ``fit``, ``score_samples``, ``score`` and ``sample``."""
    V, T = ValueError, TypeError
    unfitted = f"unfitted {m}"

    def fit(how):
        return lambda model, d: clone(model).fit(how(d))

    def score_samples(how):
        return lambda model, d: model.score_samples(how(d))

    def sample(n, **kw):
        return lambda model, d: model.sample(n, **kw)

    rows = [
        (unfitted, "fit", "X", "nan", fit(lambda d: with_nan(d.D)), V, r"Input X contains NaN"),
        (unfitted, "fit", "X", "infinite", fit(lambda d: with_nan(d.D, fill=np.inf)), V,
         r"Input X contains infinity"),
        (unfitted, "fit", "X", "one-dimensional", fit(lambda d: d.D[:, 0]), V,
         r"X .*Expected 2D array"),
        (unfitted, "fit", "X", "strings", fit(lambda d: np.full(d.D.shape, "a")), V,
         r"X .*could not convert string"),
        (unfitted, "fit", "X", "overflowing", fit(lambda d: d.D * 1e306), V,
         r"X .*too large"),
        (m, "score_samples", "X", "nan", score_samples(lambda d: with_nan(d.D)), V,
         r"Input X contains NaN"),
        (m, "score_samples", "X", "infinite", score_samples(lambda d: with_nan(d.D, fill=np.inf)),
         V, r"Input X contains infinity"),
        (m, "score_samples", "X", "too-many-features", score_samples(lambda d: np.c_[d.D, d.D]),
         V, r"X has 4 features, but \w+ is expecting 2"),
        (m, "score_samples", "X", "one-dimensional", score_samples(lambda d: d.D[0]), V,
         r"X .*Expected 2D array"),
        (m, "score", "X", "nan", lambda model, d: model.score(with_nan(d.D)), V,
         r"Input X contains NaN"),
        (m, "sample", "n_samples", "zero", sample(0), V, r"n_samples must be a positive"),
        (m, "sample", "n_samples", "negative", sample(-1), V, r"n_samples must be a positive"),
        (m, "sample", "n_samples", "float", sample(1.5), T, r"n_samples must be a positive int"),
        (m, "sample", "n_samples", "bool", sample(True), T, r"n_samples must be a positive int"),
        (m, "sample", "random_state", "string", sample(2, random_state="x"), T,
         r"random_state must be None or an int"),
        (unfitted, "sample", "self", "not-fitted", sample(2), NotFittedError, r"not fitted"),
        (unfitted, "score_samples", "self", "not-fitted", score_samples(lambda d: d.D),
         NotFittedError, r"not fitted"),
    ]
    return [Case(model, method, argument, bad, call, error, match)
            for model, method, argument, bad, call, error, match in rows]


def save_cases() -> list[Case]:
    """``save`` after ``set_params`` changed the architecture of the fitted network: ``load``
    could not rebuild it, so ``save`` (and ``log_model``, which saves) refuses."""
    changes = {"LatentODE": {"hidden": (16,)}, "RNN": {"hidden_dim": 16},
               "ODENet": {"width": 8}, "ResNet": {"n_blocks": 2}, "CNF": {"hidden": (8,)},
               "Planar": {"n_layers": 3}}

    def save_after(change):
        path = Path(tempfile.gettempdir()) / "latode-never-written.pt"
        return lambda model, d: copy.deepcopy(model).set_params(**change).save(path)

    return [Case(m, "save", next(iter(change)), "architecture-changed-after-fit",
                 save_after(change), ValueError,
                 r"fitted network no longer matches .* set_params after fit changed its "
                 r"architecture .* fit again")
            for m, change in changes.items()]


CASES: list[Case] = [
    *(case for m in FORECASTERS for case in forecaster_cases(m)),
    *save_cases(),
    *PREDICT_INTENSITY_CASES,
    *(case for m in CLASSIFIERS for case in classifier_cases(m)),
    *(case for m in DENSITIES for case in density_cases(m)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_raises_a_clear_error_naming_the_argument(case, models, data):
    model = models[case.model]
    with pytest.raises(case.error, match=case.match):
        case.call(model, data)


def test_the_table_covers_every_public_entry_point():
    entry_points = {(c.model.removeprefix("unfitted "), c.method) for c in CASES}
    for m in FORECASTERS:
        assert {(m, name) for name in ("predict", "sample", "score")} <= entry_points
    assert {("LatentODE+pp", name) for name in ("predict_intensity", "sample_events",
                                                 "score_components")} <= entry_points
    for m in CLASSIFIERS:
        assert {(m, name) for name in ("fit", "predict", "predict_proba", "score")} \
            <= entry_points
    for m in DENSITIES:
        assert {(m, name) for name in ("fit", "score_samples", "score", "sample")} \
            <= entry_points
