"""One MLflow run seen through calls that never raise: the first failure warns once and turns
tracking off, so a tracking server that is down costs a fit nothing but its log."""

from __future__ import annotations

import contextlib
import json
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from latode.tracking._config import (
    Tracking,
    TrackingWarning,
    http_settings,
    tracking_uri,
    unreachable,
)
from latode.tracking._store import open_sqlite_store

__all__ = ["TrackingSession", "metric_name"]

MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
PARENT_RUN_TAG = "mlflow.parentRunId"


def metric_name(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric names replaced by ``_``.

    Examples
    --------
    >>> metric_name("crps (y)")
    'crps _y_'
    """
    return re.sub(r"[^\w\-. /]", "_", str(name))


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


class TrackingSession:
    """Start or join an MLflow run, log to it and end it; every call is guarded.

    Parameters
    ----------
    config : Tracking
        Where to log (see :class:`~latode.tracking.Tracking`).
    what : str
        What is tracked, for the warning (``"the fit"``, ``"the evaluation"``).

    Attributes
    ----------
    run_id : str or None
        The run logged to; ``None`` before :meth:`start` or when tracking failed at start.
    failed : bool
        A call failed; every later call does nothing.
    """

    def __init__(self, config: Tracking, what: str = "the fit"):
        self.config = config
        self.what = what
        self.run_id: str | None = None
        self.owns_run = False
        self.failed = False
        self._outer_uri: str | None = None
        self._uri = contextlib.ExitStack()

    # ------------------------------------------------------------------ guard
    def call(self, doing: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, or ``None`` after warning once if it (or an earlier
        call) failed."""
        if self.failed:
            return None
        try:
            with http_settings():
                return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any MLflow failure must not stop a fit
            self._fail(f"{doing} failed: {type(error).__name__}: {_first_line(error)}")
            return None

    def _fail(self, reason: str) -> None:
        self.failed = True
        hint = ""
        if "param" in reason.lower() and not self.owns_run:
            hint = (" To log several fits under one active run, pass "
                    "tracking=latode.tracking.Tracking(nested=True) (one child run each).")
        warnings.warn(f"MLflow tracking is off for the rest of {self.what}: {reason}.{hint}",
                      TrackingWarning, stacklevel=4)

    # --------------------------------------------------------------- lifecycle
    def start(self, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None) -> str | None:
        """Probe the server, then start a run (or join the active one) and log ``params``
        and ``tags``. Returns the run id, or ``None`` when tracking is off."""
        import mlflow

        # An active run lives in the store that was current before this fit's URI.
        self._outer_uri = mlflow.get_tracking_uri()
        self._uri.enter_context(tracking_uri(self.config.uri))
        uri = mlflow.get_tracking_uri()
        problem = unreachable(uri)
        if problem is not None:
            self._fail(problem)
            self._uri.close()
            return None
        self.call(f"opening the store at {uri}", open_sqlite_store, uri)
        self.run_id = self.call(f"starting a run at {uri}", self._start_run, dict(tags or {}))
        if self.run_id is None:
            self._uri.close()
            return None
        if params:
            self.log_params(params)
        return self.run_id

    def _start_run(self, tags: dict[str, Any]) -> str:
        import mlflow
        from mlflow.tracking.context.registry import resolve_tags

        active = mlflow.active_run()
        same_store = active is not None and self.config.uri in (None, self._outer_uri)
        if active is not None and same_store and not self.config.nested:
            self.owns_run = False
            client = mlflow.MlflowClient()
            for key, value in tags.items():
                client.set_tag(active.info.run_id, key, str(value))
            return active.info.run_id
        client = mlflow.MlflowClient()
        if self.config.experiment is not None:
            found = client.get_experiment_by_name(self.config.experiment)
            experiment_id = (found.experiment_id if found is not None
                             else client.create_experiment(self.config.experiment))
        elif active is not None and same_store:
            experiment_id = active.info.experiment_id
        else:
            experiment_id = mlflow.tracking.fluent._get_experiment_id() or "0"
        run_tags = resolve_tags({k: str(v) for k, v in tags.items()})
        if active is not None and same_store:
            run_tags[PARENT_RUN_TAG] = active.info.run_id
        run = client.create_run(experiment_id, run_name=self.config.run_name, tags=run_tags)
        self.owns_run = True
        return run.info.run_id

    def end(self, error: BaseException | None = None) -> None:
        """End a run this session started (``FAILED`` when ``error`` is given or tracking
        failed on the way); a joined run is left to its owner. Puts back the tracking URI that
        was in use before."""
        try:
            if self.run_id is not None and self.owns_run:
                self._terminate("FINISHED" if error is None and not self.failed else "FAILED",
                                error)
        finally:
            self._uri.close()

    def _terminate(self, status: str, error: BaseException | None) -> None:
        import mlflow

        if not self.failed:
            if error is not None:
                self.set_tags({"latode.error": f"{type(error).__name__}: {_first_line(error)}"})
            self.call("ending the run", mlflow.MlflowClient().set_terminated, self.run_id,
                      status)
            if not self.failed:
                return
            status = "FAILED"
        # Tracking failed (a server that died, a refused write): the run would stay RUNNING
        # forever, so try once more to end it, and say which run is left when that fails too.
        uri = mlflow.get_tracking_uri()
        problem = unreachable(uri)
        if problem is None:
            try:
                with http_settings():
                    client = mlflow.MlflowClient()
                    if error is not None:
                        client.set_tag(self.run_id, "latode.error",
                                       f"{type(error).__name__}: {_first_line(error)}")
                    client.set_terminated(self.run_id, status)
                return
            except Exception as failure:  # noqa: BLE001 - ending a run must not stop a fit
                problem = f"{type(failure).__name__}: {_first_line(failure)}"
        warnings.warn(
            f"MLflow run {self.run_id} at {uri} stays RUNNING: it could not be ended as "
            f"{status} when {self.what} finished ({problem}). Once the store answers, end it "
            f"with mlflow.MlflowClient({uri!r}).set_terminated({self.run_id!r}, {status!r}).",
            TrackingWarning, stacklevel=4)

    # ----------------------------------------------------------------- logging
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        self._batch("logging parameters", params=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._batch("setting tags", tags=[RunTag(str(k), _param_value(v))
                                          for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and not math.isnan(float(v))]
        if items:
            self._batch("logging metrics", metrics=items)

    def _batch(self, doing: str, **entities: Any) -> None:
        if self.run_id is None:
            return
        import mlflow

        for start in range(0, max(len(v) for v in entities.values()), 100):
            chunk = {k: v[start:start + 100] for k, v in entities.items()}
            self.call(doing, mlflow.MlflowClient().log_batch, self.run_id, **chunk)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id is None:
            return
        import mlflow

        self.call(f"uploading {Path(local_path).name}", mlflow.MlflowClient().log_artifact,
                  self.run_id, str(local_path), artifact_path)

    def log_figure(self, figure: Any, name: str, artifact_path: str = "plots") -> None:
        """Save a matplotlib figure as PNG and upload it."""
        if self.run_id is None or self.failed:
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            figure.savefig(path, dpi=100, bbox_inches="tight")
            self.log_artifact(path, artifact_path)

    def log_json(self, obj: Any, name: str) -> None:
        if self.run_id is None or self.failed:
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_text(json.dumps(obj, indent=1, default=str))
            self.log_artifact(path)

    def log_model(self, estimator: Any, input_example: Any = None) -> Any:
        """Log ``estimator`` as this run's pyfunc model; returns MLflow's model info."""
        if self.run_id is None or self.failed:
            return None
        from latode.tracking.model import log_model

        return self.call("logging the model", log_model, estimator, "model",
                         input_example=input_example, run_id=self.run_id)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""
