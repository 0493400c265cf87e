"""GPU smoke test: fit and predict with ``device="cuda"``; outputs close to the CPU ones.

Skipped (with the reason) on machines without CUDA. Models are tiny and fits short, so this
runs in seconds on any GPU.

What "close" can mean differs by model: the classifier (fixed-step solver), the CNF (exact
trace) and the RNN forecaster train without random draws, so their CUDA and CPU fits agree up
to float rounding. The latent ODE draws its training noise from the device's generator
(CUDA's stream is not CPU's), so its CUDA and CPU fits differ in their draws; with a small
learning rate both stay near their identical initial weights, and the test also checks the
exact statement: the CUDA-fitted weights forecast the same on CPU as on CUDA.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latode import CNFDensityEstimator, LatentODEForecaster, ODENetClassifier, RNNForecaster

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA device; torch.cuda.is_available() is False here"),
]


def series_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 6, size=(12, 10)), axis=1)
    return pd.DataFrame({"unique_id": np.repeat(np.arange(12), 10), "ds": t.ravel(),
                         "y": np.sin(t + np.arange(12)[:, None]).ravel()})


def fit_forecaster(cls, device: str, **params):
    return cls(max_epochs=2, batch_size=6, random_state=0, verbose=0, device=device,
               **params).fit(series_frame())


def forecast(model) -> np.ndarray:
    fc = model.predict(series_frame(), horizon=[0.5, 1.0], n_samples=8, random_state=0)
    return fc[["y", "y_q0.1", "y_q0.9"]].to_numpy()


LATENT_ODE = dict(latent_dim=4, hidden=(16,), encoder="rnn", solver="rk4", step_size=0.1,
                  learning_rate=1e-4)


def test_latent_ode_forecaster_on_cuda():
    gpu = fit_forecaster(LatentODEForecaster, "cuda", **LATENT_ODE)
    assert next(gpu.module_.parameters()).is_cuda
    on_gpu = forecast(gpu)
    assert np.isfinite(on_gpu).all()
    # The same weights forecast the same on CPU (predict's draws come from a CPU generator).
    gpu.module_.to("cpu")
    np.testing.assert_allclose(forecast(gpu), on_gpu, rtol=1e-4, atol=1e-4)
    # A CPU fit differs only in its training draws, which a small learning rate keeps small.
    cpu = fit_forecaster(LatentODEForecaster, "cpu", **LATENT_ODE)
    np.testing.assert_allclose(forecast(cpu), on_gpu, rtol=0, atol=2e-2)


def test_rnn_forecaster_fits_alike_on_cuda_and_cpu():
    gpu = fit_forecaster(RNNForecaster, "cuda", hidden_dim=8)
    cpu = fit_forecaster(RNNForecaster, "cpu", hidden_dim=8)
    np.testing.assert_allclose(forecast(gpu), forecast(cpu), rtol=1e-3, atol=1e-3)


def test_odenet_classifier_fits_alike_on_cuda_and_cpu():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(int)
    params = dict(width=8, solver="rk4", step_size=0.25, max_epochs=3, batch_size=16,
                  learning_rate=1e-2, random_state=0, verbose=0)
    gpu = ODENetClassifier(device="cuda", **params).fit(X, y)
    cpu = ODENetClassifier(device="cpu", **params).fit(X, y)
    assert next(gpu.module_.parameters()).is_cuda
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)


def test_cnf_density_estimator_fits_alike_on_cuda_and_cpu():
    X = np.random.default_rng(2).normal(size=(128, 2))
    params = dict(hidden=(16,), trace="exact", solver="rk4", step_size=0.1, max_epochs=2,
                  batch_size=64, random_state=0)
    gpu = CNFDensityEstimator(device="cuda", **params).fit(X)
    cpu = CNFDensityEstimator(device="cpu", **params).fit(X)
    assert next(gpu.module_.parameters()).is_cuda
    np.testing.assert_allclose(gpu.score_samples(X[:16]), cpu.score_samples(X[:16]),
                               rtol=1e-3, atol=1e-3)
    assert gpu.sample(5, random_state=0).shape == (5, 2)


def test_interrupted_latent_ode_fit_on_cuda_resumes_its_gpu_draws(tmp_path):
    # The latent ODE draws its posterior noise on the GPU; a fit resumed from the checkpoint
    # of epoch 2 must continue that generator's stream, not restart it.
    def fit(max_epochs, checkpoint_dir=None):
        return LatentODEForecaster(max_epochs=max_epochs, batch_size=6, random_state=0,
                                   verbose=0, device="cuda", patience=None,
                                   **{**LATENT_ODE, "learning_rate": 1e-2}).fit(
            series_frame(), checkpoint_dir=checkpoint_dir)

    straight = fit(4)
    fit(2, tmp_path)
    resumed = fit(4, tmp_path)

    def losses(model):
        return [r["train_loss"] for r in model.history_]

    assert losses(resumed) == losses(straight)
