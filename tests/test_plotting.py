"""latode.plotting: figures from histories, forecast frames and density estimators."""


import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KernelDensity

from latode.plotting import plot_density, plot_forecast, plot_loss_curve


def test_loss_curve_draws_train_and_validation_losses(tmp_path):
    history = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.5 / e} for e in (1, 2, 3)]
    fig = plot_loss_curve(history)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["val_loss"].get_ydata()) == [3.5, 1.75, 3.5 / 3]
    fig.savefig(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("times", [
    np.array([0.0, 1.0, 2.0, 3.0]),
    pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
    pd.to_timedelta([0, 1, 2, 3], unit="h"),
])
def test_forecast_band_plot_for_float_datetime_and_timedelta_times(times, tmp_path):
    obs = pd.DataFrame({"unique_id": ["a", "a", "b", "b"], "ds": times, "y": [0, 1, 2, 3.0]})
    fc = pd.DataFrame({"unique_id": ["a", "a", "b", "b"], "ds": times, "y": [0.1, 1, 2, 3],
                       "y_q0.1": [-1, 0, 1, 2.0], "y_q0.9": [1, 2, 3, 4.0],
                       "y_q0.5": [0, 1, 2, 3.0]})
    fig = plot_forecast(obs, fc)
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "y_q0.1 – y_q0.9" in legend  # the band spans the outermost quantiles
    fig.savefig(tmp_path / "fc.png")


def test_forecast_plot_finds_its_target_draws_level_bands_and_marks_the_context_end():
    obs = pd.DataFrame({"pid": ["a", "a"], "t": [0.0, 1.0], "hr": [60.0, 62.0]})
    fc = pd.DataFrame({"pid": ["a", "a"], "t": [1.5, 2.0], "hr": [63.0, 64.0],
                       "hr-lo-50": [62.0, 63.0], "hr-hi-50": [64.0, 65.0],
                       "hr-lo-80": [61.0, 62.0], "hr-hi-80": [65.0, 66.0]})
    fig = plot_forecast(obs, fc, id_col="pid", time_col="t")  # the one target: hr
    ax = fig.axes[0]
    assert ax.get_ylabel() == "hr"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "hr-lo-80 – hr-hi-80" in legend  # the widest level
    marks = [line for line in ax.get_lines() if line.get_label() == "last observation"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1.0, 1.0]
    # Held-out actuals are drawn apart, so the mark stays at the context's end.
    held = pd.DataFrame({"pid": ["a"], "t": [2.0], "hr": [66.0]})
    ax = plot_forecast(obs, fc, id_col="pid", time_col="t", actuals=held).axes[0]
    crosses = [line for line in ax.get_lines() if line.get_label() == "held out"]
    assert list(crosses[0].get_ydata()) == [66.0]
    marks = [line for line in ax.get_lines() if line.get_label() == "last observation"]
    assert list(marks[0].get_xdata()) == [1.0, 1.0]


def test_forecast_plot_names_the_targets_when_it_cannot_choose():
    obs = pd.DataFrame({"unique_id": [0], "ds": [0.0], "hr": [1.0], "temp": [37.0]})
    fc = pd.DataFrame({"unique_id": [0], "ds": [1.0], "hr": [1.0], "temp": [37.0]})
    with pytest.raises(ValueError, match=r"2 target columns \['hr', 'temp'\]"):
        plot_forecast(obs, fc)
    with pytest.raises(ValueError, match=r"target='y' is not a column"):
        plot_forecast(obs, fc, target="y")
    assert plot_forecast(obs, fc, target="temp").axes[0].get_ylabel() == "temp"


def test_forecast_plot_without_series_is_an_error():
    empty = pd.DataFrame({"unique_id": [], "ds": [], "y": []})
    with pytest.raises(ValueError, match="no series"):
        plot_forecast(empty, empty)


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_density_plot_for_one_two_and_more_features(n_features, tmp_path):
    X = np.random.default_rng(0).normal(size=(200, n_features))
    kde = KernelDensity(bandwidth=0.5).fit(X)
    fig = plot_density(kde, X)
    fig.savefig(tmp_path / "density.png")
    assert len(fig.axes) >= 1
