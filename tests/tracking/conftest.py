"""One real ``mlflow server`` per test session, on loopback, and isolation of each test from
MLflow's global state and from the repository's working folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True, with its workers (its process
    group, addressed by the process id we started)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for MLflow subprocesses: this venv's scripts (uvicorn) on PATH, one
    thread per process, and no tracking URI unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """URI of an ``mlflow server`` with a SQLite store, started once for the session."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = root / "server.log"
    # Job execution off and one worker: the server answers in ~10 s with ~500 MB instead of
    # ~45 s with ~3 GB.
    env = subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{uri}/health", process, STARTUP_TIMEOUT_S, log)
        yield uri
    finally:
        stop(process)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in an empty folder with no MLflow settings, and check MLflow's global tracking
    URI is left as found (latode must restore what it changes)."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    yield tmp_path
    if "mlflow" in sys.modules:
        import mlflow

        assert mlflow.active_run() is None, "a test left an MLflow run active"
        from mlflow.tracking._tracking_service import utils

        assert utils._tracking_uri is None, "latode left mlflow.set_tracking_uri changed"


def sine_frame(n_series: int = 8, n_obs: int = 12, seed: int = 0) -> pd.DataFrame:
    """Irregular sine waves with float times and integer ids."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 6, size=(n_series, n_obs)), axis=1)
    return pd.DataFrame({"unique_id": np.repeat(np.arange(n_series), n_obs), "ds": t.ravel(),
                         "y": np.sin(t + np.arange(n_series)[:, None]).ravel()})


def clinic_frame(n_series: int = 6, n_obs: int = 10, seed: int = 0) -> pd.DataFrame:
    """Two vital signs at irregular whole minutes, string ids, a third of 'temp' missing."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        minutes = np.sort(rng.choice(72 * 60, size=n_obs, replace=False))
        frames.append(pd.DataFrame({
            "pid": f"p{i}",
            "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(minutes, unit="min"),
            "hr": 80 + 5 * np.sin(minutes / 300 + i) + rng.normal(0, 1, n_obs),
            "temp": 37 + 0.3 * rng.normal(size=n_obs)}))
    df = pd.concat(frames, ignore_index=True)
    df.loc[::3, "temp"] = np.nan
    return df


@pytest.fixture
def sine_df():
    return sine_frame()


@pytest.fixture(scope="session")
def clinic_df():
    return clinic_frame()


class Processes:
    """Helpers for tests that start processes (fixtures cannot be imported as modules)."""

    free_port = staticmethod(free_port)
    wait_until_answers = staticmethod(wait_until_answers)
    stop = staticmethod(stop)
    env = staticmethod(subprocess_env)


@pytest.fixture(scope="session")
def processes():
    return Processes
