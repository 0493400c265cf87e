"""ODENetClassifier and ResNetClassifier: Chen et al. (2018)'s ODE-Net and its residual
baseline as scikit-learn classifiers.

Both take a 2-D ``X``: tabular rows, or flattened images when ``input_shape=(C, H, W)`` is
given. Everything besides the network's body — validation, label encoding, standardisation,
the validation split, training with the shared trainer, prediction in chunks, persistence — is
shared here once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from latode._numerics import SolverOptions, count_nfe, reset_nfe
from latode._params import InstanceOf, Interval, Options, Predicate
from latode.estimators._base import (
    COMMON_CONSTRAINTS,
    SCHEDULE_CONSTRAINTS,
    TorchEstimator,
    resolve_device,
)
from latode.estimators._inputs import check_class_labels, check_rows
from latode.estimators._schedule import resolve_lr_decay
from latode.nn.odenet import (
    auto_downsample,
    build_classifier_net,
    downsampled_size,
    n_parameters,
)

__all__ = ["ODENetClassifier", "ResNetClassifier"]

#: Rows per forward pass in predict: bounds memory on large test sets.
PREDICT_CHUNK = 1024

#: ``width="auto"``: units of the tabular hidden state, channels of the image feature maps
#: (the paper's 64; a conv layer's cost grows with the square of its channels).
AUTO_WIDTH = {"tabular": 256, "images": 64}

#: ``lr_decay="auto"``: the learning rate falls to this fraction of its start by the last of
#: ``max_epochs`` (an exponential schedule whatever the number of rows).
AUTO_FINAL_LR_FRACTION = 1 / 30

_TRAINING = ("max_epochs", "batch_size", "learning_rate", "weight_decay", "grad_clip",
             "patience", "validation_fraction", "random_state", "device", "verbose")


class _ImageShape(Predicate):
    """``(channels, height, width)`` of positive ints; a tuple of bad values is a ValueError,
    anything but a tuple or list a TypeError."""

    def __init__(self):
        super().__init__(
            lambda value: len(value) == 3 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                for v in value),
            "a (channels, height, width) tuple of positive ints")

    def type_matches(self, value: Any) -> bool:
        return isinstance(value, (tuple, list))


NET_CONSTRAINTS = {
    **{k: COMMON_CONSTRAINTS[k] for k in _TRAINING},
    "input_shape": [InstanceOf(type(None), description="None"), _ImageShape()],
    "width": [Options(("auto",)), Interval(int, 1, None)],
    "downsample": [Options(("auto",)), Interval(int, 0, None)],
    "standardize": [InstanceOf(bool)],
}


class _NetClassifier(ClassifierMixin, TorchEstimator):
    """Shared implementation; subclasses build the network in ``_build_module``."""

    _parameter_constraints = NET_CONSTRAINTS

    def _build_module(self, n_features: int, n_classes: int) -> torch.nn.Module:
        raise NotImplementedError  # pragma: no cover

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, *, checkpoint_dir: str | None = None, tracking: Any = None):
        """Fit the network to labelled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Tabular rows, or images flattened in C-order when ``input_shape`` is set.
        y : array-like of shape (n_samples,)
            Labels of any type (strings, non-contiguous ints, ...); at least two classes.
        checkpoint_dir : str or None
            Write a checkpoint every epoch there and resume from it if one exists.
        tracking : bool, str or None
            Log the fit to MLflow (``True``: default tracking URI; a string: that URI).

        Returns
        -------
        self
        """
        with self._finishing_tracking(X):  # ends the tracked run, fitted or failed
            self._fit(X, y, checkpoint_dir, tracking)
        return self

    def _fit(self, X, y, checkpoint_dir, tracking) -> None:
        self._validate_params()
        device = resolve_device(self.device)
        X = check_rows(self, X, reset=True, dtype=np.float32, method="fit")
        y = check_class_labels(self, y, X.shape[0], method="fit")
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in "
                             f"y; got 1 class ({classes[0]!r}).")
        self._check_input_shape(X.shape[1])
        for name in ("module_", "nfe_"):
            self.__dict__.pop(name, None)
        self.classes_ = classes
        self.mean_, self.scale_ = self._scaling(X)
        seed = self._fit_seed(checkpoint_dir)  # a resumed random_state=None fit keeps its seed
        train_idx, val_idx = self._split(y_encoded, seed)
        X_t = torch.from_numpy(self._standardized(X)).to(device)
        y_t = torch.from_numpy(y_encoded.astype(np.int64)).to(device)
        summary = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                   "n_classes": int(len(classes))}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_module(X.shape[1], len(classes)).to(device)
            self._fit_module(module, X_t, y_t, train_idx, val_idx, seed, checkpoint_dir,
                             tracking, summary)
        self.module_ = module.eval()
        self.n_parameters_ = n_parameters(module)

    def _fit_module(self, module, X_t, y_t, train_idx, val_idx, seed, checkpoint_dir,
                    tracking, summary) -> None:
        batch_size = int(self.batch_size)
        train_t = torch.from_numpy(train_idx).to(X_t.device)

        def batches(generator: torch.Generator):
            order = train_t[torch.randperm(len(train_t), generator=generator).to(X_t.device)]
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                yield X_t[idx], y_t[idx]

        def batch_loss(module, batch, step):
            xb, yb = batch
            logits = module(xb)
            accuracy = float((logits.argmax(1) == yb).float().mean())
            return F.cross_entropy(logits, yb), {"train_accuracy": accuracy}

        validate = None
        if len(val_idx):
            X_val, y_val = X_t[torch.from_numpy(val_idx)], y_t[torch.from_numpy(val_idx)]

            def validate(module):
                logits = torch.cat([module(X_val[s:s + PREDICT_CHUNK])
                                    for s in range(0, len(X_val), PREDICT_CHUNK)])
                return {"val_loss": float(F.cross_entropy(logits, y_val)),
                        "val_accuracy": float((logits.argmax(1) == y_val).float().mean())}

        self._train(module, batch_loss, batches, max_epochs=self.max_epochs,
                    patience=self.patience, validate=validate, seed=seed,
                    checkpoint_dir=checkpoint_dir, tracking=tracking, data_summary=summary,
                    lr_decay=self._lr_decay(math.ceil(len(train_idx) / batch_size)),
                    data=(X_t, y_t))

    def _lr_decay(self, steps_per_epoch: int) -> float:
        """The per-step learning-rate factor; ``"auto"`` spreads the decay over the run."""
        return resolve_lr_decay(getattr(self, "lr_decay", 1.0),
                                steps_per_epoch * int(self.max_epochs), AUTO_FINAL_LR_FRACTION)

    def _check_input_shape(self, n_features: int) -> None:
        shape = self.input_shape
        if shape is None:
            return
        if math.prod(shape) != n_features:
            raise ValueError(
                f"input_shape={tuple(shape)} describes {math.prod(shape)} values per row, but "
                f"X has {n_features} columns. Pass input_shape=(channels, height, width) with "
                f"channels * height * width == {n_features}, or input_shape=None for "
                "tabular rows."
            )
        steps = self._downsample_steps()
        if min(downsampled_size(shape[1], steps), downsampled_size(shape[2], steps)) < 1:
            raise ValueError(
                f"Images of {shape[1]}x{shape[2]} pixels are too small for downsample="
                f"{steps} (each step halves them); lower downsample or use 'auto'."
            )

    def _width(self) -> int:
        if self.width != "auto":
            return int(self.width)
        return AUTO_WIDTH["tabular" if self.input_shape is None else "images"]

    def _downsample_steps(self) -> int:
        if self.downsample != "auto":
            return int(self.downsample)
        if self.input_shape is None:
            return 0
        return auto_downsample(int(self.input_shape[1]), int(self.input_shape[2]))

    def _scaling(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (images) or per-column (tabular) mean and scale of the training X."""
        n_channels = X.shape[1] if self.input_shape is None else int(self.input_shape[0])
        if not self.standardize:
            return np.zeros(n_channels, np.float32), np.ones(n_channels, np.float32)
        values = X.reshape(X.shape[0], n_channels, -1).astype(np.float64)
        mean = values.mean(axis=(0, 2))
        scale = values.std(axis=(0, 2))
        scale[scale < 1e-12] = 1.0  # constant channels: centre only
        return mean.astype(np.float32), scale.astype(np.float32)

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        values = X.reshape(X.shape[0], len(self.mean_), -1)
        values = (values - self.mean_[None, :, None]) / self.scale_[None, :, None]
        return np.ascontiguousarray(values.reshape(X.shape[0], -1), dtype=np.float32)

    def _split(self, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Hold out ``validation_fraction`` of the rows, stratified by class when possible."""
        n = len(y)
        n_val = int(math.floor(self.validation_fraction * n))
        if n_val == 0 or n - n_val < 1:
            return np.arange(n), np.arange(0)
        rows = np.arange(n)
        try:
            train, val = train_test_split(rows, test_size=n_val, random_state=seed % 2**31,
                                          stratify=y)
        except ValueError:  # a class with one member, or fewer held-out rows than classes
            train, val = train_test_split(rows, test_size=n_val, random_state=seed % 2**31)
        return np.sort(train), np.sort(val)

    # ------------------------------------------------------------ prediction
    def _logits(self, X, method: str) -> torch.Tensor:
        self._check_fitted()
        X = check_rows(self, X, reset=False, dtype=np.float32, method=method)
        # The ODE-Net solves with the current settings (the test-time tolerance knob).
        self._solve_with_current_parameters()
        module = self.module_
        device = next(module.parameters()).device
        X_t = torch.from_numpy(self._standardized(X)).to(device)
        reset_nfe(module)
        module.eval()
        with torch.no_grad():
            logits = torch.cat([module(X_t[s:s + PREDICT_CHUNK])
                                for s in range(0, len(X_t), PREDICT_CHUNK)])
        self._record_nfe(count_nfe(module))
        return logits

    def _record_nfe(self, nfe: int) -> None:
        """Hook: the ODE-Net keeps the evaluations of the last prediction in ``nfe_``."""

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        logits = self._logits(X, "predict_proba").double()
        return torch.softmax(logits, dim=1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._logits(X, "predict")  # checks fitted-ness before classes_ is read
        return self.classes_[np.argmax(logits.cpu().numpy(), axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against the labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,) or None

        Returns
        -------
        float
        """
        predicted = self.predict(X)
        labels = check_class_labels(self, y, len(predicted), method="score")
        return float(accuracy_score(labels, predicted, sample_weight=sample_weight))

    # ----------------------------------------------------------- persistence
    def _fitted_state(self) -> dict:
        names = getattr(self, "feature_names_in_", None)
        return {"classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str,
                "n_features_in": int(self.n_features_in_),
                "feature_names_in": None if names is None else [str(n) for n in names],
                "mean": self.mean_, "scale": self.scale_, "history": self.history_,
                "n_epochs": self.n_epochs_, "best_epoch": self.best_epoch_,
                "bad_steps": self.bad_steps_}

    def _restore_fitted_state(self, state: dict) -> None:
        dtype = np.dtype(state["classes_dtype"])
        self.classes_ = np.asarray(state["classes"], dtype=dtype)
        self.n_features_in_ = int(state["n_features_in"])
        if state["feature_names_in"] is not None:
            self.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        self.mean_ = np.asarray(state["mean"], dtype=np.float32)
        self.scale_ = np.asarray(state["scale"], dtype=np.float32)
        self.history_ = list(state["history"])
        self.n_epochs_ = state["n_epochs"]
        self.best_epoch_ = state["best_epoch"]
        self.bad_steps_ = state["bad_steps"]
        self.module_ = self._build_module(self.n_features_in_, len(self.classes_))
        self.n_parameters_ = n_parameters(self.module_)


_COMMON_DOC = """
    input_shape : (channels, height, width) or None, default=None
        Rows of ``X`` are images flattened in C-order: convolutional stem (a 3x3
        convolution, then ``downsample`` stride-2 convolutions), convolutional blocks and a
        globally pooled head. ``None``: tabular rows, a linear stem and MLP blocks.
    width : int or "auto"
        Channels of the feature maps (images) or units of the hidden state (tabular);
        ``"auto"``: 256 units for tabular rows, the paper's 64 channels for images.
    downsample : int or "auto", default="auto"
        Stride-2 convolutions of the image stem. ``"auto"``: the paper's 2, fewer while the
        feature maps would fall under 4x4 (28x28 images: 2, 8x8: 1). Ignored for tabular X.
    max_epochs, batch_size, learning_rate, weight_decay, grad_clip, patience,
    validation_fraction
        Adam on shuffled batches of ``batch_size`` rows (cross-entropy). A stratified
        ``validation_fraction`` of the rows is held out; training stops after ``patience``
        epochs without a lower validation loss and the best weights are kept.
    standardize : bool, default=True
        Centre and scale each column (tabular) or each channel (images) on the training X.
    random_state : int or None
        Makes a fit identical run to run on the same machine.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    verbose : int, default=1
        0 silences the progress bar."""

_COMMON_ATTRIBUTES = """
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    module_ : ClassifierNet
    n_parameters_ : int
        Trainable parameters of the network.
    mean_, scale_ : ndarray
        Standardisation of the columns (tabular) or channels (images).
    history_ : list of dict
        One record per epoch: losses, accuracies, NFE forward/backward, learning rate, time.
    n_epochs_, best_epoch_ : int"""


class ODENetClassifier(_NetClassifier):
    __doc__ = f"""Classify with an ODE-Net: a network whose residual blocks are replaced by
    one ODE block ``h(1) = h(0) + ∫_0^1 f(t, h(t)) dt`` (Chen et al. 2018).

    The solver's tolerance is a knob at test time: ``set_params(rtol=1e-1)`` makes
    ``predict`` take fewer function evaluations (recorded in ``nfe_``) for some accuracy.
    With ``adjoint=True`` training memory is constant in the number of solver steps.
    The paper's RK-Net baseline is ``ODENetClassifier(solver="rk4", step_size=...,
    adjoint=False)``: backpropagation through a fixed-step Runge-Kutta solve of the block.

    Parameters
    ----------{_COMMON_DOC}
    lr_decay : float in (0, 1] or "auto", default="auto"
        Learning-rate factor per optimisation step. ``"auto"``: the rate falls exponentially
        to 1/30 of ``learning_rate`` by the last of ``max_epochs``, whatever the number of
        rows; 1.0 keeps it constant.
    solver, rtol, atol, adjoint, step_size, max_num_steps
        The ODE block's solve (torchdiffeq). ``rtol``/``atol``/``solver`` may be changed
        after fitting; ``predict`` uses the current values. The defaults (Bogacki-Shampine at
        tolerance 0.1, loose as FFJORD trains) take about 8 evaluations per solve on
        tabular data; tighten them for more accurate solves.

    Notes
    -----
    The defaults train on every row (``validation_fraction=0.0``) for 20 epochs with the
    decaying rate, as scikit-learn's ``MLPClassifier`` trains by default: on scikit-learn's
    digits (a stratified 75/25 split) they reach 98.0% held-out accuracy, where holding out a
    tenth for early stopping on the validation loss stopped near 96-97%
    (``benchmarks/odenet.py``). Set ``validation_fraction`` (and ``patience``) to stop
    early on held-out rows instead.

    Attributes
    ----------{_COMMON_ATTRIBUTES}
    nfe_ : int
        Evaluations of the ODE function in the last ``predict``/``predict_proba``/``score``
        call, summed over its forward solves (one per {PREDICT_CHUNK} rows). Set by those
        calls, not by ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = ODENetClassifier(input_shape=(1, 8, 8), width=8, max_epochs=2, verbose=0,
    ...                        random_state=0).fit(X[:200], y[:200])
    >>> clf.predict_proba(X[:3]).shape
    (3, 10)
    >>> clf.set_params(rtol=1e-1).predict(X[:3]).shape, clf.nfe_ > 0
    ((3,), True)
    """

    _parameter_constraints = {
        **NET_CONSTRAINTS,
        **{k: COMMON_CONSTRAINTS[k]
           for k in ("solver", "rtol", "atol", "adjoint", "step_size", "max_num_steps")},
        "lr_decay": SCHEDULE_CONSTRAINTS["lr_decay"],
    }

    def __init__(self, input_shape=None, width="auto", downsample="auto", *, solver="bosh3",
                 rtol=1e-1, atol=1e-1, adjoint=False, step_size=None, max_num_steps=1000,
                 max_epochs=20, batch_size=128, learning_rate=3e-3, lr_decay="auto",
                 weight_decay=0.0, grad_clip=None, patience=5, validation_fraction=0.0,
                 standardize=True, random_state=None, device="cpu", verbose=1):
        self.input_shape = input_shape
        self.width = width
        self.downsample = downsample
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.adjoint = adjoint
        self.step_size = step_size
        self.max_num_steps = max_num_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _build_module(self, n_features: int, n_classes: int) -> torch.nn.Module:
        return build_classifier_net(
            n_features, n_classes, input_shape=self.input_shape, width=self._width(),
            downsample=self._downsample_steps(), body="ode", **self._module_solvers())

    def _module_solvers(self, *, predicting: bool = False) -> dict[str, SolverOptions]:
        # Without gradients the adjoint would change nothing but add overhead.
        return {"options": self._solver_options(adjoint=False) if predicting
                else self._solver_options()}

    def _record_nfe(self, nfe: int) -> None:
        self.nfe_ = int(nfe)


class ResNetClassifier(_NetClassifier):
    __doc__ = f"""Classify with the ODE-Net's residual baseline: the same stem and head, with
    the ODE block replaced by ``n_blocks`` residual blocks ``h <- h + f_k(h)`` (the paper's
    ResNet; ``f_k`` is the ODE function without its time input, one set of weights per
    block).

    The paper's other baseline, RK-Net, is an ODE-Net trained by backpropagating through a
    fixed-step solver: ``ODENetClassifier(solver="rk4", step_size=..., adjoint=False)``.

    Parameters
    ----------{_COMMON_DOC}
    n_blocks : int, default=6
        Residual blocks (the paper uses 6).

    Attributes
    ----------{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = ResNetClassifier(width=16, n_blocks=2, max_epochs=3, verbose=0,
    ...                        random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.8
    True
    """

    _parameter_constraints = {**NET_CONSTRAINTS, "n_blocks": [Interval(int, 1, None)]}

    def __init__(self, input_shape=None, width=64, downsample="auto", n_blocks=6, *,
                 max_epochs=30, batch_size=128, learning_rate=1e-3, weight_decay=0.0,
                 grad_clip=None, patience=5, validation_fraction=0.1, standardize=True,
                 random_state=None, device="cpu", verbose=1):
        self.input_shape = input_shape
        self.width = width
        self.downsample = downsample
        self.n_blocks = n_blocks
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _build_module(self, n_features: int, n_classes: int) -> torch.nn.Module:
        return build_classifier_net(
            n_features, n_classes, input_shape=self.input_shape, width=self._width(),
            downsample=self._downsample_steps(), body="resnet", n_blocks=int(self.n_blocks))
