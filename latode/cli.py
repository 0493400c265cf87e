"""The ``latode`` command: ``latode fit``, ``latode predict``, ``latode evaluate``.

Exit codes: 0 success; 2 bad arguments or bad input (one line on stderr, ``latode: error:
...``); 1 an unexpected failure (one line; ``--debug`` shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latode._version import __version__
from latode.estimators.registry import cli_models

__all__ = ["main", "build_parser", "read_frame", "MODELS"]

#: ``--model`` names of ``latode fit`` -> class names (from latode.estimators.registry).
MODELS = cli_models()
META_FILE = "latode.json"
MODEL_FILE = "model.pt"
CONFIG_KEYS = {"model", "params", "columns", "tracking"}

EXAMPLES = """\
examples:
  latode fit --data train.csv --id-col patient --time-col time --target hr --target temp \\
      --config config.yaml --out model/
  latode predict --model model/ --context recent.csv --horizon 6h,12h,24h --out forecast.csv
  latode evaluate --model model/ --data test.csv --holdout 0.2 --level 80 --out metrics.json
  latode evaluate --model model/ --data test.csv --n-windows 3 --horizon 12h
  latode fit --data train.csv --out model/ --track --tracking-uri http://127.0.0.1:5000
  latode predict --model runs:/<run_id>/model --context recent.csv --horizon 1,2 --out fc.csv
"""


class UsageError(Exception):
    """Bad arguments or input: reported on one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------ arguments
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latode`` command."""
    parser = _Parser(prog="latode", description="Fit, forecast and evaluate irregular time "
                     "series models (latent ODEs) from the command line.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"latode {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    fit = commands.add_parser("fit", help="fit a model on a long CSV/Parquet file",
                              description="Fit a forecaster on a long frame (one row per "
                              "series and time) and write it to a folder.")
    fit.add_argument("--data", required=True, type=Path, metavar="FILE", help="training data, .csv or .parquet")
    fit.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write the model to")
    fit.add_argument("--model", choices=sorted(MODELS), default=None,
                     help="which forecaster (default: the config's, else latent-ode)")
    fit.add_argument("--id-col", metavar="COL", help="series id column (default: unique_id)")
    fit.add_argument("--time-col", metavar="COL", help="time column (default: ds)")
    fit.add_argument("--target", action="append", metavar="COL",
                     help="value column; repeat for several (default: every numeric column)")
    fit.add_argument("--config", type=Path, metavar="YAML", help="YAML file: model, params, columns, tracking")
    fit.add_argument("--static", type=Path, metavar="FILE",
                     help="static features, one row per series (its id column), .csv or .parquet")
    for role, what in (("past", "observed with the targets, read up to the origin"),
                       ("future", "known ahead, held from each row to the next"),
                       ("impulse", "amounts given at an instant, e.g. doses")):
        fit.add_argument(f"--{role}", action="append", metavar="COL",
                         help=f"{role} covariate column ({what}); repeat for several")
    fit.add_argument("--max-epochs", type=int, metavar="N", help="override params.max_epochs")
    fit.add_argument("--seed", type=int, metavar="N", help="override params.random_state")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    _tracking_arguments(fit, "log the fit to MLflow")

    predict = commands.add_parser("predict", help="forecast from a fitted model",
                                  description="Forecast each series of a context file.")
    predict.add_argument("--model", required=True, metavar="DIR|URI",
                         help="a folder written by 'latode fit', or an MLflow model URI "
                         "(runs:/<run_id>/model, models:/<name>/<version>)")
    predict.add_argument("--context", required=True, type=Path, metavar="FILE",
                         help="observed context of each series, .csv or .parquet")
    when = predict.add_mutually_exclusive_group(required=True)
    when.add_argument("--horizon", metavar="H[,H...]", help="offsets after each series' last row: a "
                      "list ('1,2,5' or '6h,1D'), or one value with --freq")
    when.add_argument("--timestamps", metavar="T[,T...]|FILE", help="times to forecast for every series ('t1,t2'), or "
                      "a .csv/.parquet file of (id, time) rows")
    predict.add_argument("--freq", metavar="F", help="spacing of a regular grid up to --horizon")
    predict.add_argument("--static", type=Path, metavar="FILE",
                         help="static features of the series, as given to 'latode fit --static'")
    predict.add_argument("--future", type=Path, metavar="FILE",
                         help="future and impulse covariates after each context (id, time, "
                         "those columns), up to the last forecast time")
    _forecast_arguments(predict)
    predict.add_argument("--out", required=True, type=Path, metavar="FILE",
                         help="where to write the forecast, .csv or .parquet")
    predict.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI to load runs:/ and "
                         "models:/ URIs from (default: MLFLOW_TRACKING_URI or "
                         "sqlite:///mlflow.db)")

    evaluate = commands.add_parser(
        "evaluate", help="backtest a fitted model",
        description="Hold out the last observations of each series, forecast them from the "
        "rest and report MAE, RMSE, CRPS and the coverage of the central intervals.")
    evaluate.add_argument("--model", required=True, metavar="DIR|URI", help="as for 'latode predict'")
    evaluate.add_argument("--data", required=True, type=Path, metavar="FILE", help=".csv or .parquet")
    evaluate.add_argument("--holdout", type=float, default=0.2, metavar="FRACTION",
                          help="fraction of each series' times held out (default: 0.2)")
    evaluate.add_argument("--n-windows", type=int, metavar="N",
                          help="backtest over N cutoffs shared by all series instead of "
                          "--holdout: at each, forecast the next --horizon from the rows "
                          "before it (with the fitted model, not refitted)")
    evaluate.add_argument("--horizon", metavar="H", help="length of each --n-windows window "
                          "(a number for numeric times, else a duration such as 30D)")
    evaluate.add_argument("--step-size", metavar="S",
                          help="distance between cutoffs (default: --horizon)")
    _forecast_arguments(evaluate, quantiles=False)
    evaluate.add_argument("--out", type=Path, metavar="FILE", help="write the metrics, .json or .csv")
    _tracking_arguments(evaluate, "log the metrics to MLflow")
    return parser


def _tracking_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--track", action="store_true", help=what)
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: "
                        "MLFLOW_TRACKING_URI or sqlite:///mlflow.db in this folder)")
    parser.add_argument("--experiment", metavar="NAME", help="MLflow experiment name")
    parser.add_argument("--run-name", metavar="NAME", help="MLflow run name")


def _forecast_arguments(parser: argparse.ArgumentParser, quantiles: bool = True) -> None:
    if quantiles:
        parser.add_argument("--quantiles", default="0.1,0.5,0.9", metavar="Q[,Q...]",
                            help="quantile columns, comma-separated ('' for none)")
    parser.add_argument("--level", default="80", metavar="L[,L...]", help="central intervals in %%, "
                        "comma-separated (default: 80; '' for none)")
    parser.add_argument("--n-samples", type=int, default=100, metavar="N", help="posterior draws")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the draws")


# ------------------------------------------------------------------------ data
def read_frame(path: Path, time_col: str | None = None, time_kind: str | None = None):
    """Read a .csv or .parquet file; a CSV time column of text becomes datetimes (ISO 8601)
    or timedeltas (``time_kind`` says which when known)."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise UsageError(f"{str(path)!r}: use a .csv or .parquet file")
    if time_col is None or time_col not in frame.columns:
        return frame
    column = frame[time_col]
    if time_kind == "float" or pd.api.types.is_numeric_dtype(column) \
            or pd.api.types.is_datetime64_any_dtype(column) \
            or pd.api.types.is_timedelta64_dtype(column):
        return frame
    from latode.data.times import parse_times

    try:
        frame[time_col] = parse_times(column, time_kind or "datetime",
                                      f"column {time_col!r} of {str(path)!r}")
    except ValueError as error:
        raise UsageError(str(error)) from None
    return frame


def _write_frame(frame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise UsageError(f"--out {str(path)!r}: use a .csv or .parquet file")


def _items(text: str) -> list[str]:
    """The non-empty comma-separated values of an option ("1h, 2h," -> ["1h", "2h"])."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in _items(text)]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated numbers; got {text!r}") from None


# ----------------------------------------------------------------------- models
def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {str(path)!r}")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UsageError(f"{str(path)!r} is not valid YAML: {str(error).splitlines()[0]}") \
            from None
    if not isinstance(config, dict) or not set(config) <= CONFIG_KEYS:
        extra = sorted(set(config) - CONFIG_KEYS) if isinstance(config, dict) else config
        raise UsageError(f"{str(path)!r}: unknown keys {extra}; use {sorted(CONFIG_KEYS)}")
    for key in ("params", "columns", "tracking"):
        if not isinstance(config.get(key, {}), dict):
            raise UsageError(f"{str(path)!r}: {key!r} must be a mapping")
    return config


def _make_estimator(args: argparse.Namespace, config: dict[str, Any]):
    from latode.estimators.registry import estimator_class

    name = args.model or config.get("model", "latent-ode")
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; use one of {sorted(MODELS)}")
    columns = config.get("columns", {})
    params = dict(config.get("params", {}))
    params["id_col"] = args.id_col or columns.get("id", params.get("id_col", "unique_id"))
    params["time_col"] = args.time_col or columns.get("time", params.get("time_col", "ds"))
    targets = args.target or columns.get("targets", params.get("target_cols"))
    params["target_cols"] = list(targets) if isinstance(targets, (list, tuple)) else targets
    for key, value in (("max_epochs", args.max_epochs), ("random_state", args.seed),
                       ("past_covariates", args.past), ("future_covariates", args.future),
                       ("impulse_covariates", args.impulse)):
        if value is not None:
            params[key] = value
    params["verbose"] = 0 if args.quiet else params.get("verbose", 1)
    cls = estimator_class(MODELS[name])
    try:
        return cls(**params)
    except TypeError as error:
        valid = sorted(cls().get_params())
        raise UsageError(f"{error}; {cls.__name__} parameters are {valid}") from None


def _load_model(spec: str, tracking_uri: str | None):
    from latode.estimators.registry import load_estimator

    path = Path(spec)
    if path.is_dir():
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise UsageError(f"{spec!r} is not a folder written by 'latode fit' "
                             f"(no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        return load_estimator(path / MODEL_FILE, meta.get("estimator"))
    if path.is_file():
        return load_estimator(path)
    if ":/" not in spec:
        raise FileNotFoundError(f"--model {spec!r} is neither a folder nor an MLflow URI "
                                "(runs:/<run_id>/model, models:/<name>/<version>)")
    from latode.tracking import load_model
    from latode.tracking._config import tracking_uri as using

    with using(tracking_uri):
        return load_model(spec)


# --------------------------------------------------------------------- commands
def _tracking(args: argparse.Namespace, config: dict[str, Any]):
    from latode.tracking import Tracking

    settings = {**config.get("tracking", {})}
    for key in ("tracking_uri", "experiment", "run_name"):
        if getattr(args, key, None):
            settings["uri" if key == "tracking_uri" else key] = getattr(args, key)
    if not (args.track or config.get("tracking")):
        return None
    try:
        return Tracking(**settings)
    except TypeError as error:
        raise UsageError(f"tracking settings: {error}") from None


def cmd_fit(args: argparse.Namespace) -> int:
    config = _read_config(args.config)
    estimator = _make_estimator(args, config)
    data = read_frame(args.data, estimator.time_col)
    tracking = _tracking(args, config)
    from latode.training import distributed

    # Under torchrun every rank fits (data-parallel); rank 0 alone writes and reports.
    failed = True
    try:
        static = None if args.static is None else read_frame(args.static)
        estimator.fit(data, tracking=tracking,
                      **({} if static is None else {"static_df": static}))
        status = _write_fitted(args, estimator) if distributed.is_main() else 0
        failed = False
        return status
    finally:
        distributed.finish(wait=not failed)


def _write_fitted(args: argparse.Namespace, estimator) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    estimator.save(args.out / MODEL_FILE)
    meta = {"estimator": type(estimator).__name__, "id_col": estimator.id_col,
            "time_col": estimator.time_col, "target_cols": list(estimator.converter_.channels),
            "time_kind": estimator.converter_.time_axis_.kind, "data": str(args.data),
            "mlflow_run_id": getattr(estimator, "mlflow_run_id_", None)}
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1))
    last = estimator.history_[-1] if estimator.history_ else {}
    print(f"fitted {meta['estimator']} on {estimator.n_series_} series in "
          f"{estimator.n_epochs_} epochs (train loss {last.get('train_loss', float('nan')):.4g}"
          f"); wrote {args.out / MODEL_FILE}")
    if meta["mlflow_run_id"]:
        print(f"MLflow run {meta['mlflow_run_id']}; model: runs:/{meta['mlflow_run_id']}/model")
    return 0


def _steps(text: str, kind: str, option: str) -> list:
    """The comma-separated steps of ``option``: numbers for numeric times, else durations
    such as 6h (see :func:`latode.data.times.parse_step`)."""
    from latode.data.times import parse_step

    values = _items(text)
    if not values:
        raise UsageError(f"{option} is empty")
    return [parse_step(value, kind, option, text=True) for value in values]


def _horizon(text: str, kind: str, freq: str | None):
    """``predict``'s ``horizon`` and ``freq`` from ``--horizon`` and ``--freq``."""
    from latode.data.times import parse_step

    horizon = _steps(text, kind, "--horizon")
    if freq is None:
        return horizon, None
    if len(horizon) != 1:
        raise UsageError("with --freq give one --horizon (the end of the grid)")
    return horizon[0], parse_step(freq, kind, "--freq", text=True)


def _timestamps(text: str, model):
    """``predict``'s ``timestamps`` from ``--timestamps``: a file of (id, time) rows, or
    comma-separated times for every series."""
    from latode.data.times import user_times

    conv = model.converter_
    path = Path(text)
    if path.suffix.lower() in (".csv", ".parquet", ".pq"):
        frame = read_frame(path, conv.time_col, conv.time_axis_.kind)
        return frame[[conv.id_col, conv.time_col]]
    return user_times(_items(text), conv.time_axis_, "--timestamps")


def cmd_predict(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.tracking_uri)
    conv = model.converter_
    context = read_frame(args.context, conv.time_col, conv.time_axis_.kind)
    kwargs: dict[str, Any] = {}
    if args.horizon is not None:
        kwargs["horizon"], kwargs["freq"] = _horizon(args.horizon, conv.time_axis_.kind,
                                                     args.freq)
    else:
        if args.freq is not None:
            raise UsageError("--freq goes with --horizon, not --timestamps")
        kwargs["timestamps"] = _timestamps(args.timestamps, model)
    if args.static is not None:
        kwargs["static_df"] = read_frame(args.static)
    if args.future is not None:
        kwargs["future_df"] = read_frame(args.future, conv.time_col, conv.time_axis_.kind)
    forecast = model.predict(context, quantiles=_floats(args.quantiles, "--quantiles") or None,
                             level=_floats(args.level, "--level") or None,
                             n_samples=args.n_samples, random_state=args.seed, **kwargs)
    _write_frame(forecast, args.out)
    print(f"wrote {len(forecast)} forecast rows for {forecast[conv.id_col].nunique()} series "
          f"to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from latode.metrics import QUANTILE_GRID, forecast_scores, holdout_split

    model = _load_model(args.model, args.tracking_uri)
    conv = model.converter_
    data = read_frame(args.data, conv.time_col, conv.time_axis_.kind)
    if not 0 < args.holdout < 1:
        raise UsageError(f"--holdout must lie in (0, 1); got {args.holdout}")
    levels = _floats(args.level, "--level")
    draws = dict(quantiles=QUANTILE_GRID, level=levels or None, n_samples=args.n_samples,
                 random_state=args.seed)
    if args.n_windows is not None:
        holdout, forecast, keys = _windows(args, model, data, draws)
        what = (f"{args.n_windows} windows of {args.horizon} after shared cutoffs, "
                f"{holdout[conv.id_col].nunique()} series")
    else:
        context, holdout = holdout_split(data, conv.id_col, conv.time_col, args.holdout)
        if holdout.empty:
            raise UsageError(f"no series of {str(args.data)!r} has two or more observation "
                             "times to split into context and held-out values")
        forecast = model.predict(context,
                                 holdout[[conv.id_col, conv.time_col]].drop_duplicates(),
                                 **draws)
        keys = ()
        what = (f"{holdout[conv.id_col].nunique()} series, last {args.holdout:g} of each "
                "series' times held out")
    scores = forecast_scores(holdout, forecast, id_col=conv.id_col, time_col=conv.time_col,
                             targets=list(conv.channels), quantiles=QUANTILE_GRID, level=levels,
                             keys=keys)
    print(f"backtest of {what}:")
    print(scores.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out is not None:
        if args.out.suffix.lower() == ".json":
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(scores.to_dict(orient="index"), indent=1))
        else:
            _write_frame(scores.reset_index(), args.out)
    tracking = _tracking(args, {})
    if tracking is not None:
        _log_evaluation(tracking, args, scores)
    return 0


def _windows(args: argparse.Namespace, model, data, draws: dict):
    """The actual rows and forecasts of ``--n-windows`` backtest windows, and the key that
    tells their rows apart (a time may fall in two overlapping windows)."""
    import pandas as pd

    from latode.estimators._backtest import ACTUAL_SUFFIX, backtest_windows, forecast_window

    conv = model.converter_
    if args.horizon is None:
        raise UsageError("--n-windows needs --horizon (the length of each window)")
    kind = conv.time_axis_.kind
    # Each option is one length; of a list, the first counts (as it always has).
    horizon = _steps(args.horizon, kind, "--horizon")[0]
    step = None if args.step_size is None else _steps(args.step_size, kind, "--step-size")[0]
    try:
        windows = list(backtest_windows(data, conv.id_col, conv.time_col, horizon,
                                        args.n_windows, step))
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not windows:
        raise UsageError("no series has observations after any cutoff; use a longer --horizon")
    cv = pd.concat([forecast_window(model, seen, actual, cutoff, **draws)
                    for cutoff, seen, actual in windows], ignore_index=True)
    targets = list(conv.channels)
    actual = cv[[conv.id_col, conv.time_col, "cutoff", *(t + ACTUAL_SUFFIX for t in targets)]]
    actual = actual.rename(columns={t + ACTUAL_SUFFIX: t for t in targets})
    return actual, cv.drop(columns=[t + ACTUAL_SUFFIX for t in targets]), ("cutoff",)


def _log_evaluation(tracking, args: argparse.Namespace, scores) -> None:
    from latode.tracking._session import TrackingSession

    session = TrackingSession(tracking, what="the evaluation")
    params = {"model": args.model, "data": str(args.data), "holdout": args.holdout,
              "n_windows": args.n_windows, "horizon": args.horizon, "step_size": args.step_size,
              "level": args.level, "n_samples": args.n_samples, "seed": args.seed}
    if session.start(params, {"latode.command": "evaluate"}) is None:
        return
    single = len(scores) == 1
    metrics = {f"eval_{name}" + ("" if single else f"_{target}"): value
               for target, row in scores.iterrows() for name, value in row.items()}
    session.log_metrics(metrics)
    session.end()
    print(f"MLflow run {session.run_id}")


COMMANDS = {"fit": cmd_fit, "predict": cmd_predict, "evaluate": cmd_evaluate}


def _bad_input(error: BaseException) -> bool:
    from latode.exceptions import LatodeError

    if isinstance(error, (UsageError, ValueError, TypeError, OSError, LatodeError)):
        return True
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    return mlflow_exceptions is not None and isinstance(error, mlflow_exceptions.MlflowException)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``latode`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    shown = warnings.showwarning
    warnings.showwarning = lambda message, category, *a, **k: print(
        f"latode: warning: {message}", file=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("latode: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure becomes one line and a code
        if debug:
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if _bad_input(error):
            print(f"latode: error: {message or type(error).__name__}", file=sys.stderr)
            return 2
        print(f"latode: error: unexpected {type(error).__name__}: {message} (run with --debug "
              "for the traceback)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
