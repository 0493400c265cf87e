"""What ``fit(..., tracking=...)`` may be, and the MLflow settings a tracked fit runs under.

Nothing here imports MLflow at module level, so ``import latode`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Tracking", "TrackingWarning", "resolve_tracking", "default_tracking_uri"]

# Applied to our own MLflow calls only when the user has not set them: MLflow's defaults (7
# retries, exponential backoff, 120 s timeout) would stall a fit for minutes on a dead server.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
PROBE_TIMEOUT_S = 3.0


class TrackingWarning(UserWarning):
    """MLflow tracking failed; the fit (or command) carried on without it."""


@dataclass(frozen=True)
class Tracking:
    """Where and how a fit is logged to MLflow; pass it as ``fit(..., tracking=Tracking(...))``.

    ``tracking=True`` is ``Tracking()`` and ``tracking="URI"`` is ``Tracking(uri="URI")``.

    Parameters
    ----------
    uri : str or None
        Tracking URI (``"sqlite:///mlflow.db"``, ``"http://127.0.0.1:5000"``, ...). ``None``
        uses MLflow's current one: ``mlflow.set_tracking_uri``, else the
        ``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///mlflow.db`` in the
        working folder.
    experiment : str or None
        Experiment name (created if missing); ``None`` is MLflow's active experiment.
    run_name : str or None
        Name of a run the fit starts; ``None`` lets MLflow pick one.
    nested : bool
        When an MLflow run is active: ``False`` logs into it, ``True`` starts a child run
        under it (use this for searches such as ``GridSearchCV``, one child per fit).
    log_model : bool
        Log the fitted model (as an MLflow pyfunc model) and the forecast / density plot.

    Examples
    --------
    >>> Tracking(uri="http://127.0.0.1:5000", experiment="latode", nested=True).nested
    True
    """

    uri: str | None = None
    experiment: str | None = None
    run_name: str | None = None
    nested: bool = False
    log_model: bool = True

    def __post_init__(self) -> None:
        for name in ("uri", "experiment", "run_name"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"Tracking({name}=...) must be a non-empty string or None; "
                                f"got {value!r}.")
        for name in ("nested", "log_model"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Tracking({name}=...) must be True or False; "
                                f"got {getattr(self, name)!r}.")


def resolve_tracking(tracking: object) -> Tracking | None:
    """``fit``'s ``tracking`` argument as a :class:`Tracking`, or ``None`` when off.

    Examples
    --------
    >>> resolve_tracking(None) is None, resolve_tracking(False) is None
    (True, True)
    >>> resolve_tracking("sqlite:///runs.db").uri
    'sqlite:///runs.db'
    """
    if tracking is None or tracking is False:
        return None
    if tracking is True:
        return Tracking()
    if isinstance(tracking, Tracking):
        return tracking
    if isinstance(tracking, os.PathLike):
        tracking = os.fspath(tracking)
    if isinstance(tracking, str):
        if not tracking:
            raise ValueError("tracking='' is not a tracking URI; pass True for MLflow's "
                             "default, or a URI such as 'sqlite:///mlflow.db'.")
        return Tracking(uri=tracking)
    if isinstance(tracking, dict):
        try:
            return Tracking(**tracking)
        except TypeError as error:
            raise TypeError(f"tracking={tracking!r}: {error}") from None
    raise TypeError(
        "tracking must be None/False (off), True (MLflow's default tracking URI), a tracking "
        f"URI string, or latode.tracking.Tracking(...); got {type(tracking).__name__}."
    )


def default_tracking_uri() -> str:
    """The URI ``tracking=True`` logs to (MLflow's current tracking URI).

    Examples
    --------
    >>> isinstance(default_tracking_uri(), str)
    True
    """
    import mlflow

    return mlflow.get_tracking_uri()


@contextlib.contextmanager
def http_settings() -> Iterator[None]:
    """Short HTTP retries and timeouts for MLflow calls, unless the user set their own."""
    added = [name for name in HTTP_SETTINGS if name not in os.environ]
    for name in added:
        os.environ[name] = HTTP_SETTINGS[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def unreachable(uri: str) -> str | None:
    """Why an ``http(s)://`` tracking server cannot be reached, or ``None`` when it answers.

    Any HTTP answer (even 401 or 404) counts as reachable; only connection failures and
    timeouts do not. Other URIs (SQLite, files, Databricks) are not probed.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:  # timeouts are OSErrors
        reason = getattr(error, "reason", error)
        return f"no MLflow server answers at {uri} ({reason})"


@contextlib.contextmanager
def tracking_uri(uri: str | None) -> Iterator[None]:
    """Use ``uri`` as MLflow's tracking URI inside the block, then put back what was there
    (the ``set_tracking_uri`` value and the ``MLFLOW_TRACKING_URI`` variable)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if uri is None or uri == mlflow.get_tracking_uri():
        yield
        return
    # mlflow's own _use_tracking_uri unsets MLFLOW_TRACKING_URI on exit even when the user had
    # set it; keep both pieces of state and restore them exactly.
    previous = getattr(utils, "_tracking_uri", None)
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if previous_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env
