"""Random long frames thrown at ``fit`` and ``predict``: a result or a clear error, nothing else.

Hypothesis draws frames with ids of mixed types (and missing ids), time columns of every
kind (numbers, datetimes, timedeltas, strings, mixed objects) with duplicates, NaN/NaT,
infinities and any order, 0 to 3 value channels (NaN, infinite, huge, integer, boolean or
string values), and empty frames. The only acceptable outcomes are

* a result: ``fit`` returns the estimator, whose forecast at the frame's own rows is a
  DataFrame with one finite mean per requested row and channel; ``predict`` of a fitted
  model returns one finite mean per requested row;
* a ``ValueError`` or ``TypeError`` (bad input, named).

Anything else — a torch or numpy traceback, a ``SolverError`` or ``TrainingDivergedError``
on data that passed validation, a NaN forecast — is a bug in the library's gate.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latode.estimators import LatentODEForecaster

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BAD_INPUT = (ValueError, TypeError)


def tiny(**params) -> LatentODEForecaster:
    return LatentODEForecaster(latent_dim=2, hidden=(4,), encoder_hidden=4, max_epochs=1,
                               batch_size=4, verbose=0, random_state=0, **params)


# ------------------------------------------------------------------ strategies
# Plausible frames first, then the mistakes users make, each with some chance: most
# examples reach the model, and every kind of bad input still comes up.
WIDE_FLOATS = st.one_of(st.floats(-10, 10), st.floats(-1e30, 1e30),
                        st.sampled_from([0.0, 5e-324, 1e-300, 1.0 + 1e-12, -0.0]))
NEAR_FLOATS = st.floats(-10, 10)
ID_POOLS = {"str": ["a", "b", "é", ""], "int": [0, 1, -1, 2], "float": [0.5, 1.5, 2.5, -3.0],
            "mixed": [0, "a", 1.5, True]}
ALL_KINDS = ("float", "float", "int", "datetime", "datetime-utc", "timedelta")
NUMERIC_KINDS = ("float", "float", "float", "int", "datetime")  # what `fitted` reads, mostly
MISTAKES = ("nan-id", "nat-time", "inf-time", "inf-value", "huge-value", "string-values",
            "bool-values", "int-values", "string-times", "mixed-times", "all-nan-channel",
            "no-channels", "empty", "drop-id", "drop-time", "duplicate-row")


@st.composite
def time_column(draw, n: int, floats: st.SearchStrategy, kinds: tuple[str, ...]) -> pd.Series:
    """``n`` times of one of ``kinds``, sometimes from a small pool (duplicates)."""
    kind = draw(st.sampled_from(kinds))
    if kind == "float":
        element = floats
    elif kind == "int":
        element = st.integers(-1000, 1000)
    elif kind.startswith("datetime"):
        element = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 3))
    else:
        element = st.timedeltas(dt.timedelta(0), dt.timedelta(days=2))
    if draw(st.sampled_from([False, False, False, True])):  # a few times, shared (duplicates)
        pool = draw(st.lists(element, min_size=1, max_size=max(n, 1)))
        values = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    else:
        values = draw(st.lists(element, min_size=n, max_size=n, unique=True))
    if kind.startswith("datetime"):
        column = pd.Series(pd.to_datetime(values))
        return column.dt.tz_localize("UTC") if kind == "datetime-utc" else column
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(values))
    return pd.Series(values, dtype="int64" if kind == "int" else float)


@st.composite
def value_column(draw, n: int, floats: st.SearchStrategy) -> np.ndarray:
    """Floats with NaN where a channel was not observed."""
    values = np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float)
    missing = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return np.where(missing & draw(st.booleans()), np.nan, values)


def make_mistake(draw, df: pd.DataFrame, mistake: str) -> pd.DataFrame:
    """``df`` with one user mistake (when it applies to this frame)."""
    df = df.copy()
    n = len(df)
    row = draw(st.integers(0, max(n - 1, 0)))
    if ("id" in mistake and "unique_id" not in df) or ("time" in mistake and "ds" not in df):
        return df  # a column already dropped by an earlier mistake
    values = [c for c in df.columns if c.startswith("y")]
    if mistake == "nan-id" and n:
        df["unique_id"] = df["unique_id"].astype(object)
        df.loc[row, "unique_id"] = draw(st.sampled_from([None, np.nan]))
    elif mistake == "nat-time" and n:
        df.loc[row, "ds"] = None
    elif mistake == "inf-time" and n and df["ds"].dtype == float:
        df.loc[row, "ds"] = draw(st.sampled_from([np.inf, -np.inf]))
    elif mistake in ("inf-value", "huge-value") and n and values \
            and df[values[0]].dtype == float:
        df.loc[row, values[0]] = (
            draw(st.sampled_from([np.inf, -np.inf])) if mistake == "inf-value"
            else draw(st.sampled_from([1e308, -1e308, 1e200, 1e30, -3e38])))
    elif mistake == "string-values" and values:
        df[values[0]] = df[values[0]].astype(str).astype(object)
    elif mistake == "bool-values" and values:
        df[values[0]] = df[values[0]] > 0
    elif mistake == "int-values" and values:
        df[values[0]] = np.arange(n, dtype=np.int64)
    elif mistake == "string-times":
        df["ds"] = df["ds"].astype(str)
    elif mistake == "mixed-times" and n:
        df["ds"] = df["ds"].astype(object)
        df.loc[row, "ds"] = "3"
    elif mistake == "all-nan-channel" and values:
        df[values[-1]] = np.nan
    elif mistake == "no-channels":
        df = df.drop(columns=values)
    elif mistake == "empty":
        df = df.iloc[:0]
    elif mistake in ("drop-id", "drop-time"):
        df = df.drop(columns="unique_id" if mistake == "drop-id" else "ds")
    elif mistake == "duplicate-row" and n:
        df = pd.concat([df, df.iloc[[row]]], ignore_index=True)
    return df


@st.composite
def long_frames(draw, max_rows: int = 14, floats: st.SearchStrategy = WIDE_FLOATS,
                kinds: tuple[str, ...] = ALL_KINDS, mistakes: tuple[int, ...] = (0, 1, 0, 2)
                ) -> pd.DataFrame:
    """A long frame in any row order, with ids of one or mixed types, times of one of
    ``kinds``, 1 to 3 channels and as many of :data:`MISTAKES` as drawn from ``mistakes``
    (Hypothesis favours the first entries: the choice, not a rate, sets the mix)."""
    n = draw(st.integers(1, max_rows))
    pool = ID_POOLS[draw(st.sampled_from(sorted(ID_POOLS)))][:draw(st.integers(1, 4))]
    df = pd.DataFrame({
        "unique_id": pd.Series(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)),
                               dtype=object).infer_objects(),
        "ds": draw(time_column(n, floats, kinds)),
    })
    for c in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        df[f"y{c}"] = draw(value_column(n, floats))
    for _ in range(draw(st.sampled_from(mistakes))):
        df = make_mistake(draw, df, draw(st.sampled_from(MISTAKES)))
    order = draw(st.permutations(range(len(df))))
    return df.iloc[list(order)].reset_index(drop=True)


# ------------------------------------------------------------------ fit
@FUZZ
@given(df=long_frames())
def test_fit_on_any_frame_gives_a_model_or_a_clear_error(df):
    try:
        model = tiny().fit(df)
    except BAD_INPUT:
        return
    # A frame that passed the gate gives a model that forecasts its own rows finitely.
    rows = df[["unique_id", "ds"]]
    forecast = model.predict(df, timestamps=rows, quantiles=(0.5,), n_samples=2)
    assert isinstance(forecast, pd.DataFrame)
    assert len(forecast) == len(rows.drop_duplicates())
    channels = list(model.converter_.channels)
    assert np.isfinite(forecast[channels].to_numpy(dtype=float)).all()


# ------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def fitted() -> LatentODEForecaster:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 4, size=(4, 6)), axis=1)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b", "c", "d"], 6), "ds": t.ravel(),
                       "y": np.sin(t).ravel()})
    return tiny(time_scale=1.0).fit(df)


@st.composite
def contexts(draw) -> pd.DataFrame:
    """Frames shaped like the fitted one (columns ``unique_id``, ``ds``, ``y``), with any
    content, and sometimes extra or missing columns. Float times stay within a few units of
    the training span: a forecast across 1e300 time units is a legitimate SolverError."""
    df = draw(long_frames(max_rows=10, floats=NEAR_FLOATS, kinds=NUMERIC_KINDS,
                          mistakes=(0, 0, 1, 0, 2)))
    values = [c for c in df.columns if c.startswith("y")]
    return df.rename(columns={values[0]: "y"}) if values else df


@st.composite
def requests(draw, context: pd.DataFrame) -> dict:
    """What to forecast: times for every series, (id, time) rows of the context's series
    (or, rarely, of others), or horizons; mostly valid, sometimes not."""
    offsets = st.one_of(st.floats(0.01, 3), st.floats(-1, 3), st.just(np.nan))
    how = draw(st.sampled_from(["times", "rows", "horizon", "grid"]))
    if how == "times":
        return {"timestamps": draw(st.lists(st.one_of(NEAR_FLOATS, st.just(np.nan)),
                                            min_size=1, max_size=3, unique=True))}
    if how == "rows":
        known = list(context["unique_id"]) if "unique_id" in context else []
        pool = known if known and draw(st.booleans()) else known + ["zz"]  # zz: no context
        n = draw(st.integers(1, 4))
        return {"timestamps": pd.DataFrame({
            "unique_id": draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)),
            "ds": draw(st.lists(NEAR_FLOATS, min_size=n, max_size=n, unique=True)),
        })}
    if how == "horizon":
        return {"horizon": draw(st.lists(offsets, min_size=1, max_size=3))}
    return {"horizon": draw(offsets), "freq": draw(st.one_of(st.floats(0.05, 1.5),
                                                             st.floats(-0.5, 1.5)))}


@st.composite
def forecast_calls(draw) -> tuple[pd.DataFrame, dict]:
    context = draw(contexts())
    return context, draw(requests(context))


@FUZZ
@given(call=forecast_calls())
def test_predict_on_any_context_gives_finite_forecasts_or_a_clear_error(fitted, call):
    context, request = call
    try:
        forecast = fitted.predict(context, quantiles=(0.1, 0.9), n_samples=3, **request)
    except BAD_INPUT:
        return
    assert isinstance(forecast, pd.DataFrame)
    assert len(forecast) > 0
    assert list(forecast.columns[:3]) == ["unique_id", "ds", "y"]
    assert np.isfinite(forecast[["y", "y_q0.1", "y_q0.9"]].to_numpy(dtype=float)).all()
