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
