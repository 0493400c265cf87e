"""What a latode estimator looks like behind MLflow's pyfunc interface: a frame in, a frame out,
with ``params`` for the forecast options.

* forecasters: ``predict(context_df, params={"horizon": [...]} or {"timestamps": [...]}, ...)``
  returns ``model.predict``'s frame (same seeds, same numbers). A model with covariates takes
  them in the same frame: its static columns on the rows of each series (the first row's
  values count), and its future inputs on rows marked ``is_future`` (:data:`FUTURE_FLAG`);
  the other rows are the context;
* classifiers: a frame of features in, ``label`` and ``proba_<class>`` columns out;
* density estimators: a frame of features in, a ``log_density`` column out.

Nothing here imports MLflow at module level.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from latode.data.times import parse_step, user_times

__all__ = ["task_of", "predict_frame", "forecast_arguments", "FORECAST_PARAMS",
           "example_input", "example_params", "param_schema", "FUTURE_FLAG"]

#: Column of a pyfunc input frame that marks the rows of future inputs (``future_df``).
FUTURE_FLAG = "is_future"

#: pyfunc ``params`` of a forecaster and their defaults (those of ``BaseForecaster.predict``);
#: an empty list means "not given".
FORECAST_PARAMS: dict[str, Any] = {
    "timestamps": [], "horizon": [], "freq": None, "quantiles": [0.1, 0.5, 0.9],
    "level": [], "n_samples": 100, "random_state": 0,
}


def task_of(estimator: Any) -> str:
    """``"forecaster"``, ``"classifier"`` or ``"density"``: the task
    :data:`latode.estimators.registry.ESTIMATORS` records for the estimator's class.

    Raises
    ------
    TypeError
        For anything that is not a registered latode estimator (or derived from one).
    """
    from latode.estimators.registry import spec_of

    try:
        return spec_of(estimator).task
    except TypeError:
        raise TypeError(f"{type(estimator).__name__} is not a latode forecaster, classifier "
                        "or density estimator; MLflow logging supports those.") from None


# ---------------------------------------------------------------- forecasters
def _as_list(value: Any, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float, np.number)):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"params[{name!r}] must be a list; got {value!r}.") from None


def forecast_arguments(estimator: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """``predict`` keyword arguments from pyfunc ``params`` (see :data:`FORECAST_PARAMS`)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(FORECAST_PARAMS))
    if unknown:
        raise ValueError(f"Unknown forecast params {unknown}; use {sorted(FORECAST_PARAMS)}.")
    merged = {**FORECAST_PARAMS, **params}
    axis = estimator.converter_.time_axis_
    timestamps = _as_list(merged["timestamps"], "timestamps")
    # JSON holds strings and numbers: read them here, where "6" can still be told from 6.
    horizon = [parse_step(v, axis.kind, "horizon", text=True)
               for v in _as_list(merged["horizon"], "horizon")]
    freq = merged["freq"]
    freq = None if freq is None or freq == "" else parse_step(freq, axis.kind, "freq", text=True)
    if freq is not None and len(horizon) == 1:
        horizon = horizon[0]  # one horizon with freq: the regular grid up to it
    quantiles = _as_list(merged["quantiles"], "quantiles")
    level = _as_list(merged["level"], "level")
    random_state = merged["random_state"]
    return {
        "timestamps": user_times(timestamps, axis, "timestamps") if timestamps else None,
        "horizon": horizon if horizon != [] else None,
        "freq": freq,
        "quantiles": [float(q) for q in quantiles] or None,
        "level": [float(lv) for lv in level] or None,
        "n_samples": int(merged["n_samples"]),
        "random_state": None if random_state is None else int(random_state),
    }


def _coerce_context(estimator: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """A context frame as JSON serving delivers it (times as strings) in the model's types."""
    conv = estimator.converter_
    axis = conv.time_axis_
    if conv.time_col not in frame.columns or axis.kind == "float":
        return frame
    column = frame[conv.time_col]
    if (axis.kind == "datetime" and pd.api.types.is_datetime64_any_dtype(column)) or (
            axis.kind == "timedelta" and pd.api.types.is_timedelta64_dtype(column)):
        return frame
    frame = frame.copy()
    frame[conv.time_col] = user_times(list(column), axis, conv.time_col).set_axis(frame.index)
    return frame


def _split_covariates(estimator: Any, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The context, and the ``static_df`` / ``future_df`` a model with covariates reads out
    of one input frame (see the module docstring)."""
    conv = estimator.converter_
    covariates: dict[str, pd.DataFrame] = {}
    static = getattr(conv, "static_", None)
    if static is not None:
        missing = [c for c in static.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"The model reads static features: give columns {missing} on the "
                             "rows of each series.")
        covariates["static_df"] = frame.groupby(conv.id_col, sort=False)[
            list(static.columns)].first().reset_index()
        frame = frame.drop(columns=list(static.columns))
    if conv.roles.controls and FUTURE_FLAG in frame.columns:
        future = frame[FUTURE_FLAG].fillna(False).astype(bool).to_numpy()
        if future.any():
            covariates["future_df"] = frame.loc[
                future, [conv.id_col, conv.time_col, *conv.roles.controls]].reset_index(drop=True)
        frame = frame.loc[~future].drop(columns=FUTURE_FLAG).reset_index(drop=True)
    return frame, covariates


def _covariate_columns(estimator: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the columns a model with covariates reads: each covariate (NaN where
    absent), each static column (an example value) and the future-row flag."""
    conv = estimator.converter_
    extra: dict[str, Any] = {c: np.nan for c in conv.roles.columns if c not in frame.columns}
    static = getattr(conv, "static_", None)
    if static is not None:
        for column in static.columns:
            extra[column] = (static.categories[column][0] if column in static.categories
                             and static.categories[column] else static.mean.get(column, 0.0))
    if conv.roles.controls:
        extra[FUTURE_FLAG] = False
    frame = frame.assign(**extra) if extra else frame
    if conv.roles.controls:
        # A future row with no input at the end of example_params' horizon, so that the
        # example forecasts as it is.
        last = frame.iloc[[-1]].copy()
        last[conv.time_col] = last[conv.time_col] + _example_step(estimator)
        last[FUTURE_FLAG] = True
        last[list(conv.channels)] = np.nan
        last[list(conv.roles.controls)] = 0.0
        frame = pd.concat([frame, last], ignore_index=True)
    return frame


def _example_step(estimator: Any) -> Any:
    """A tenth of the training span, in the time column's type (the example's horizon)."""
    axis = estimator.converter_.time_axis_
    step = axis.scale / 10
    return float(step) if axis.kind == "float" else pd.Timedelta(int(max(step, 1)), "ns")


# ------------------------------------------------------------------- predict
def _features(estimator: Any, frame: pd.DataFrame) -> Any:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return frame[list(names)]
    return frame.to_numpy(dtype=np.float64)


def predict_frame(estimator: Any, model_input: Any, params: dict[str, Any] | None = None
                  ) -> pd.DataFrame:
    """What the pyfunc model returns for ``model_input`` and ``params``.

    Parameters
    ----------
    estimator : fitted latode estimator
    model_input : DataFrame (or what ``pandas.DataFrame`` accepts)
        Forecasters: the context, a long frame. Others: one row of features per sample.
    params : dict or None
        Forecasters: :data:`FORECAST_PARAMS`. Others take none.

    Returns
    -------
    DataFrame
    """
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    task = task_of(estimator)
    if task == "forecaster":
        kwargs = forecast_arguments(estimator, params)
        context, covariates = _split_covariates(estimator, _coerce_context(estimator, frame))
        return estimator.predict(context, **kwargs, **covariates)
    if params:
        raise ValueError(f"{type(estimator).__name__} takes no params; got {sorted(params)}.")
    X = _features(estimator, frame)
    if task == "classifier":
        proba = estimator.predict_proba(X)
        classes = estimator.classes_
        out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes])
        out.insert(0, "label", classes[np.argmax(proba, axis=1)])
        return out
    return pd.DataFrame({"log_density": estimator.score_samples(X)})


# ------------------------------------------------------- examples and schema
def example_input(estimator: Any, data: Any = None, n_rows: int = 12) -> pd.DataFrame:
    """A small input frame: the first rows of ``data`` when given, else one made from the
    fitted state (forecasters: one series at three times; others: the feature means)."""
    task = task_of(estimator)
    if task == "forecaster":
        conv = estimator.converter_
        columns = [conv.id_col, conv.time_col, *conv.channels]
        if isinstance(data, pd.DataFrame) and set(columns) <= set(data.columns) and len(data):
            first = data[conv.id_col].iloc[0]
            rows = data.loc[data[conv.id_col] == first,
                            columns + [c for c in conv.roles.columns if c in data.columns]]
            return _covariate_columns(estimator, _plain_ids(
                rows.sort_values(conv.time_col).head(n_rows).reset_index(drop=True),
                conv.id_col))
        axis = conv.time_axis_
        keys = np.asarray(axis.origin) + np.array([0.0, 0.5, 1.0]) * axis.scale
        keys = keys if axis.kind == "float" else keys.astype(np.int64)
        # An id of the training ids' kind: the signature inferred from this example is what
        # a served model accepts, and string ids must not be declared integers there.
        numeric_ids = pd.api.types.is_numeric_dtype(pd.Series(dtype=conv.id_dtype_))
        ids = np.zeros(3, dtype=np.int64) if numeric_ids else np.array(["0"] * 3, dtype=object)
        frame = conv.to_frame(ids, keys,
                              {c: np.repeat(m, 3) for c, m in zip(conv.channels,
                                                                  conv.scaler_.mean)})
        return _covariate_columns(estimator, _plain_ids(frame, conv.id_col))
    if data is not None and len(data):
        rows = data.head(n_rows) if isinstance(data, pd.DataFrame) \
            else pd.DataFrame(np.asarray(data)[:n_rows])
    else:
        rows = pd.DataFrame(np.asarray(estimator.mean_, dtype=np.float64)[None, :])
    names = getattr(estimator, "feature_names_in_", None)
    rows.columns = list(names) if names is not None else [f"x{i}" for i in range(rows.shape[1])]
    # Features are read as floats whatever their dtype.
    return rows.astype(np.float64).reset_index(drop=True)


def _plain_ids(frame: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """Categorical ids as plain strings: MLflow's schemas have no categorical type, and a
    served model is then called with string ids (which it forecasts alike)."""
    if isinstance(frame[id_col].dtype, pd.CategoricalDtype):
        frame = frame.assign(**{id_col: frame[id_col].astype(str).astype(object)})
    return frame


def example_params(estimator: Any) -> dict[str, Any]:
    """Params that make ``example_input`` predictable: one step of a tenth of the training
    span after each series' last observation."""
    if task_of(estimator) != "forecaster":
        return {}
    step = _example_step(estimator)
    return {"horizon": [step if isinstance(step, float) else str(step)], "n_samples": 10}


def param_schema(estimator: Any) -> Any:
    """MLflow ``ParamSchema`` of the forecast params (``None`` for other estimators)."""
    if task_of(estimator) != "forecaster":
        return None
    from mlflow.types.schema import ParamSchema, ParamSpec

    times = "double" if estimator.converter_.time_axis_.kind == "float" else "string"
    return ParamSchema([
        ParamSpec("timestamps", times, [], (-1,)),
        ParamSpec("horizon", times, [], (-1,)),
        ParamSpec("freq", times, None),
        ParamSpec("quantiles", "double", FORECAST_PARAMS["quantiles"], (-1,)),
        ParamSpec("level", "double", [], (-1,)),
        ParamSpec("n_samples", "long", FORECAST_PARAMS["n_samples"]),
        ParamSpec("random_state", "long", FORECAST_PARAMS["random_state"]),
    ])
