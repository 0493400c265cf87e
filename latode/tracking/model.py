"""A fitted latode estimator as an MLflow model, with no pickle anywhere.

The model is logged as MLflow "models from code": the artifact holds the estimator's own
``save()`` file (weights and plain data, read back with ``weights_only=True``), the estimator's
class name in the model config, and a three-line code file that builds
:class:`~latode.tracking._pyfunc.LatodePyfuncModel`. Loading runs ``<Estimator>.load``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from latode.estimators.registry import ESTIMATORS, estimator_class, load_estimator

# estimator_class and load_estimator live with the estimators (latode.estimators.registry);
# they stay importable from here, where loading a logged model uses them.
__all__ = ["ESTIMATOR_MODULES", "ARTIFACT_KEY", "estimator_class", "load_estimator",
           "log_model", "load_model"]

#: Class name -> module defining it, for the estimators that can be logged: a view of
#: :data:`latode.estimators.registry.ESTIMATORS`, where a new estimator is added.
ESTIMATOR_MODULES: dict[str, str] = {name: spec.module for name, spec in ESTIMATORS.items()}
ARTIFACT_KEY = "latode_model"
MODEL_FILE = "model.pt"
CODE_FILE = Path(__file__).with_name("_model_code.py")


def _requirements() -> list[str]:
    """Pinned requirements of the serving environment (given, so MLflow does not have to
    infer them by loading the model in a subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("latode", "mlflow", "torch", "torchdiffeq", "numpy", "pandas",
                    "scikit-learn"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def log_model(model: Any, name: str = "model", *, input_example: Any = None,
              registered_model_name: str | None = None, run_id: str | None = None,
              **kwargs: Any) -> Any:
    """Log a fitted latode estimator as an MLflow pyfunc model.

    Parameters
    ----------
    model : fitted latode estimator
        ``LatentODEForecaster``, ``RNNForecaster`` (and the classifiers and density
        estimators listed in :data:`latode.estimators.registry.ESTIMATORS`).
    name : str
        The model's name in the run.
    input_example : DataFrame, optional
        A few input rows (forecasters: a context frame). Default: rows made from the fitted
        state. Forecasters log it with ``params={"horizon": [...]}`` so it can be served.
    registered_model_name : str, optional
        Also register the model under this name.
    run_id : str, optional
        The run to log to; default: the active run (one is started if none is).
    **kwargs
        Passed to :func:`mlflow.pyfunc.log_model` (e.g. ``pip_requirements``, ``tags``).

    Returns
    -------
    mlflow.models.model.ModelInfo
        Its ``model_uri`` loads the model with :func:`load_model` or
        :func:`mlflow.pyfunc.load_model`.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from latode.tracking import _adapters

    class_name = type(model).__name__
    if class_name not in ESTIMATORS:
        raise TypeError(f"{class_name} cannot be logged to MLflow; latode logs "
                        f"{sorted(ESTIMATORS)}.")
    model._check_fitted()
    example = _adapters.example_input(model, input_example)
    params = _adapters.example_params(model)
    output = _adapters.predict_frame(model, example, params)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # Our signature is given in full, and ids are never missing: MLflow's hints about
        # predict's type hints and integer columns do not apply.
        warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        inferred = infer_signature(example, output)
        # Classifiers and density estimators log no input schema: latode checks their
        # features itself (count, names, finite numbers) and reads any numeric dtype, where a
        # schema would refuse what MLflow deems an unsafe cast (float for an integer column,
        # int64 for a double one) and rename an array's columns.
        forecaster = _adapters.task_of(model) == "forecaster"
        signature = ModelSignature(inputs=inferred.inputs if forecaster else None,
                                   outputs=inferred.outputs,
                                   params=_adapters.param_schema(model))
        path = model.save(Path(folder) / MODEL_FILE)
        arguments = dict(
            name=name, python_model=str(CODE_FILE), artifacts={ARTIFACT_KEY: str(path)},
            model_config={"latode_estimator": class_name}, signature=signature,
            input_example=(example, params) if params else example,
            pip_requirements=_requirements(), registered_model_name=registered_model_name,
        )
        arguments.update(kwargs)
        if run_id is None:
            return mlflow.pyfunc.log_model(**arguments)
        # A run that is not the active one: create the logged model in the run's experiment
        # (MLflow would pick the active experiment, where runs:/<run_id>/<name> cannot find it).
        client = mlflow.MlflowClient()
        logged = client.create_logged_model(
            experiment_id=client.get_run(run_id).info.experiment_id, name=name,
            source_run_id=run_id, tags={"latode.estimator": class_name})
        return mlflow.models.Model.log(artifact_path=None, flavor=mlflow.pyfunc, run_id=run_id,
                                       model_id=logged.model_id,
                                       flavor_name="pyfunc.ModelFromCode", **arguments)


def load_model(model_uri: str, *, dst_path: str | None = None) -> Any:
    """Load a model logged by :func:`log_model` back as the latode estimator.

    Only the saved weights and plain data are read (``weights_only=True``); the model's code
    file is not executed. Use :func:`mlflow.pyfunc.load_model` for the pyfunc interface.

    Parameters
    ----------
    model_uri : str
        ``runs:/<run_id>/model``, ``models:/<name>/<version>``, ``models:/<model_id>``, a
        local folder, ...
    dst_path : str, optional
        Where to download the artifacts (default: a temporary folder).

    Returns
    -------
    The fitted estimator.
    """
    import mlflow
    from mlflow.models import Model

    from latode.tracking._config import http_settings, unreachable

    # A runs:/ or models:/ URI goes through the tracking (or registry) server: probe it,
    # so a dead server is one clear error, not minutes of MLflow's retries.
    server = {"runs:": mlflow.get_tracking_uri,
              "models:": mlflow.get_registry_uri}.get(model_uri.split("/", 1)[0])
    reason = unreachable(server()) if server is not None else None
    if reason is not None:
        raise ConnectionError(f"Cannot load {model_uri!r}: {reason}. Start the server, or "
                              "point the tracking URI at the right one.")
    with http_settings():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri,
                                                         dst_path=dst_path))
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    artifacts = flavor.get("artifacts") or {}
    if ARTIFACT_KEY not in artifacts:
        raise ValueError(f"{model_uri!r} is not a latode model (no {ARTIFACT_KEY!r} "
                         "artifact); log it with latode.mlflow.log_model.")
    config = flavor.get("model_config") or {}
    return load_estimator(local / artifacts[ARTIFACT_KEY]["path"], config.get("latode_estimator"))
