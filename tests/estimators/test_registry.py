"""latode.estimators.registry: the one list of estimators, and the fit-tracker hook that
latode.tracking registers (the estimators never import tracking)."""

from __future__ import annotations

import pytest
from sklearn.utils import get_tags

import latode
from latode.cli import MODELS
from latode.estimators import registry
from latode.estimators._base import TorchEstimator
from latode.estimators._forecaster import BaseForecaster
from latode.tracking import TrackingCallback


def test_every_public_estimator_is_registered_with_its_task():
    public = {name for name in latode.__all__
              if isinstance(getattr(latode, name), type)
              and issubclass(getattr(latode, name), TorchEstimator)}
    assert set(registry.ESTIMATORS) == public
    for name, spec in registry.ESTIMATORS.items():
        cls = registry.estimator_class(name)
        assert cls is getattr(latode, name) and cls.__module__ == spec.module
        expected = ("forecaster" if issubclass(cls, BaseForecaster) else
                    {"classifier": "classifier", "density_estimator": "density"}[
                        get_tags(cls()).estimator_type])
        assert registry.task_of(cls()) == spec.task == expected


def test_the_cli_reads_the_registry():
    assert MODELS == registry.cli_models() == {"latent-ode": "LatentODEForecaster",
                                               "rnn": "RNNForecaster"}


def test_subclasses_take_their_base_class_task_and_strangers_are_refused():
    class MyForecaster(latode.RNNForecaster):
        pass

    assert registry.task_of(MyForecaster()) == "forecaster"
    RNNForecaster = type("RNNForecaster", (), {})  # same name, not ours
    with pytest.raises(TypeError, match="not a latode"):
        registry.spec_of(RNNForecaster)
    with pytest.raises(ValueError, match="Unknown latode estimator"):
        registry.estimator_class("NoSuchForecaster")


def test_tracking_registers_its_callback_and_fit_needs_one(monkeypatch):
    assert registry._fit_tracker_factory is TrackingCallback
    monkeypatch.setattr(registry, "_fit_tracker_factory", None)
    with pytest.raises(RuntimeError, match="import latode.tracking"):
        registry.make_fit_tracker(latode.RNNForecaster(), True, {})


def test_fit_is_not_wrapped():
    # The run ends in fit's own _finishing_tracking block, not in a wrapper set on subclasses.
    assert "__init_subclass__" not in vars(TorchEstimator)
    assert latode.RNNForecaster.fit is BaseForecaster.fit
