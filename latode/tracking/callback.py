"""The trainer callback behind ``fit(..., tracking=...)``."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from latode.tracking._config import TrackingWarning, resolve_tracking
from latode.tracking._session import TrackingSession
from latode.training.callbacks import Callback, EarlyStopping

if TYPE_CHECKING:  # pragma: no cover
    from latode.training.trainer import Trainer

__all__ = ["TrackingCallback"]


class TrackingCallback(Callback):
    """Log a fit to MLflow: parameters, data summary, every epoch's metrics, final metrics,
    plots and the fitted model.

    Estimators create it from ``fit(..., tracking=...)`` (this package registers it with
    :func:`latode.estimators.registry.register_fit_tracker`); the run ends in :meth:`finish`,
    which the estimator's ``fit`` calls once every fitted attribute is set, or once it has
    failed (see ``TorchEstimator._finishing_tracking``). Every MLflow call is guarded: when one fails (a server that is down,
    a store that refuses a write) one :class:`~latode.tracking.TrackingWarning` is issued and
    the fit carries on untracked.

    Logged to the run:

    * parameters: every ``__init__`` parameter, ``data.*`` (series, observations, time span,
      missing fraction, ...) and ``fit_seed``; tags ``latode.estimator`` and
      ``latode.version``;
    * metrics per epoch (step = epoch): ``train_loss``, ``val_loss``, ``nfe_forward``,
      ``nfe_backward``, ``lr``, ``epoch_time``, ``grad_norm``, ``bad_steps`` and any
      estimator-specific ones;
    * final metrics: ``n_epochs``, ``best_epoch``, ``best_<monitored loss>``,
      ``total_bad_steps``, ``fit_time``; for forecasters ``<val|train>_backtest_mae``,
      ``_rmse``, ``_crps``, ``_coverage_80`` on the last 20% of each validation series;
    * artifacts: ``history.json``, ``plots/loss_curve.png``, ``plots/forecast_val.png``
      (``plots/density.png`` for density estimators) and the model (``model``, an MLflow
      pyfunc model; see :func:`latode.tracking.log_model`).

    Parameters
    ----------
    estimator : TorchEstimator
        The estimator being fitted (its parameters are read now).
    tracking : True, str, dict or Tracking
        See :class:`~latode.tracking.Tracking`.
    data_summary : dict
        Plain facts about the training data, logged as ``data.<key>`` parameters.

    Attributes
    ----------
    run_id : str or None
        The MLflow run, once started (``None`` when tracking failed).
    """

    def __init__(self, estimator: Any, tracking: Any, data_summary: dict[str, Any] | None = None):
        config = resolve_tracking(tracking)
        if config is None:
            raise ValueError("TrackingCallback needs tracking settings (True, a URI or a "
                             "Tracking); got a value that turns tracking off.")
        self.config = config
        self.estimator_name = type(estimator).__name__
        self.params = estimator.get_params(deep=False)
        self.data_summary = dict(data_summary or {})
        self.session = TrackingSession(config, what=f"this {self.estimator_name} fit")
        self.seed: int | None = None
        self._started = False

    @property
    def run_id(self) -> str | None:
        return self.session.run_id

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Trainer) -> None:
        self.seed = int(trainer.generator.initial_seed())
        if self._started:
            return
        self._started = True
        from latode._version import __version__

        params = {**self.params, **{f"data.{k}": v for k, v in self.data_summary.items()},
                  "fit_seed": self.seed}
        tags = {"latode.estimator": self.estimator_name, "latode.version": __version__}
        self.session.start(params, tags)
        for record in trainer.history:  # a resumed fit: the epochs run before the restart
            self._log_epoch(record)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._log_epoch(record)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.session.run_id is None or self.session.failed:
            return
        self.session.log_metrics(_final_metrics(trainer))
        self.session.log_json(list(trainer.history), "history.json")
        from latode.plotting import plot_loss_curve

        figure = self._safely("the loss curve", plot_loss_curve, trainer.history)
        if figure is not None:
            self.session.log_figure(figure, "loss_curve.png")

    def finish(self, estimator: Any, data: Any = None, error: BaseException | None = None
               ) -> None:
        """Log the fitted model and its evaluation plots, then end the run (``FAILED`` when
        the fit raised ``error``). Sets ``estimator.mlflow_run_id_``."""
        try:
            if error is None and self.session.run_id is not None and not self.session.failed:
                estimator.mlflow_run_id_ = self.session.run_id
                if self.config.log_model:
                    self._log_fitted(estimator, data)
        finally:
            self.session.end(error)

    # ---------------------------------------------------------------- helpers
    def _log_epoch(self, record: dict[str, Any]) -> None:
        metrics = {k: v for k, v in record.items() if k != "epoch"}
        self.session.log_metrics(metrics, step=int(record.get("epoch", 0)))

    def _log_fitted(self, estimator: Any, data: Any) -> None:
        from latode.tracking._report import fit_report

        report = self._safely("the evaluation plots", fit_report, estimator, data, self.seed)
        figures, metrics = report if report is not None else ({}, {})
        self.session.log_metrics(metrics)
        for name, figure in figures.items():
            self.session.log_figure(figure, name)
        self.session.log_model(estimator, input_example=data)

    def _safely(self, what: str, function, *args: Any) -> Any:
        """Artifacts we compute ourselves: a failure warns and skips that one artifact."""
        try:
            return function(*args)
        except Exception as error:  # noqa: BLE001 - an artifact must never fail the fit
            warnings.warn(f"Could not make {what} for the MLflow run: "
                          f"{type(error).__name__}: {error}", TrackingWarning, stacklevel=3)
            return None


def _final_metrics(trainer: Trainer) -> dict[str, float]:
    history = trainer.history
    metrics: dict[str, float] = {
        "n_epochs": float(len(history)),
        "total_bad_steps": float(trainer.total_bad_steps),
        "fit_time": float(sum(r.get("epoch_time", 0.0) for r in history)),
    }
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping) and callback.best_state is not None:
            metrics["best_epoch"] = float(callback.best_epoch)
            metrics[f"best_{callback.monitor}"] = float(callback.best_score)
    return metrics
