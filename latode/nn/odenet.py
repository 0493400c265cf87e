"""ODE-Net and its residual baselines (Chen et al. 2018, section 3 and table 1).

A classifier network is ``stem -> body -> head``:

* **stem** — images ``(batch, C, H, W)``: the paper's downsampling stem (a 3x3 convolution,
  then ``downsample`` times GroupNorm-ReLU-4x4 stride-2 convolution); tabular rows
  ``(batch, d)``: one linear layer to ``width`` units;
* **body** — an :class:`ODEBlock` ``h(1) = h(0) + ∫_0^1 f(t, h(t)) dt`` with convolutional
  (:class:`ConvDynamics`) or MLP dynamics, or a :class:`ResidualStack` of ``n_blocks``
  residual blocks ``h <- h + f(h)`` with the same ``f`` minus the time input (the paper's
  ResNet baseline);
* **head** — images: GroupNorm-ReLU, global average pooling and a linear layer; tabular: a
  linear layer. It returns class logits.

At ``width=64`` on 28x28 images the ODE-Net has about 0.21M parameters and the 6-block ResNet
about 0.58M, the paper's 0.22M and 0.60M.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from latode._numerics import CountedDynamics, SolverOptions, odeint_checked
from latode.nn.dynamics import MLPDynamics

__all__ = [
    "ConcatConv2d",
    "ConvDynamics",
    "ODEBlock",
    "ResidualStack",
    "ClassifierNet",
    "build_classifier_net",
    "auto_downsample",
    "downsampled_size",
    "n_parameters",
]


def _norm(channels: int) -> nn.GroupNorm:
    # The paper's GroupNorm(min(32, C), C); gcd keeps the groups a divisor of any width.
    return nn.GroupNorm(math.gcd(32, channels), channels)


def downsampled_size(size: int, downsample: int) -> int:
    """Spatial size after the stem: each 4x4 stride-2 convolution (padding 1) halves it.

    Examples
    --------
    >>> downsampled_size(28, 2), downsampled_size(8, 2), downsampled_size(3, 2)
    (7, 2, 0)
    """
    for _ in range(downsample):
        size = (size + 2 - 4) // 2 + 1 if size >= 2 else 0
    return size


def auto_downsample(height: int, width: int) -> int:
    """Stride-2 steps of the stem: the paper's two, fewer while the maps would fall under 4x4.

    Examples
    --------
    >>> auto_downsample(28, 28), auto_downsample(8, 8), auto_downsample(3, 3)
    (2, 1, 0)
    """
    steps = 0
    while steps < 2 and min(downsampled_size(height, steps + 1),
                            downsampled_size(width, steps + 1)) >= 4:
        steps += 1
    return steps


class ConcatConv2d(nn.Module):
    """A 3x3 convolution that also sees the time ``t`` as a constant extra input channel.

    Parameters
    ----------
    channels : int
        Input and output channels (the extra time channel is added inside).
    time_dependent : bool
        Without time, a plain convolution (the residual block's layer).
    """

    def __init__(self, channels: int, time_dependent: bool = True):
        super().__init__()
        self.time_dependent = time_dependent
        self.conv = nn.Conv2d(channels + int(time_dependent), channels, 3, 1, 1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.time_dependent:
            tt = torch.ones_like(x[:, :1]) * t
            x = torch.cat([tt, x], dim=1)
        return self.conv(x)


class ConvDynamics(nn.Module):
    """The paper's ODE function on feature maps ``(batch, C, H, W)``, with softplus for ReLU:

    ``f(t, h) = GN(conv_t(softplus(GN(conv_t(softplus(GN(h)))))))``, where ``conv_t`` is a
    3x3 convolution that also reads ``t`` (:class:`ConcatConv2d`) and GN is GroupNorm.

    Softplus (a smooth ReLU) because the kinks of ReLU make the vector field only once
    differentiable: adaptive solvers then take more steps, and the adjoint's gradient
    converges slowly to backpropagation's (measured here on a 4-channel net: 2% apart at
    ``rtol=1e-5``, against 2e-8 with softplus at ``rtol=1e-8``).

    Examples
    --------
    >>> f = ConvDynamics(8)
    >>> f(torch.tensor(0.5), torch.zeros(2, 8, 4, 4)).shape
    torch.Size([2, 8, 4, 4])
    """

    def __init__(self, channels: int, time_dependent: bool = True):
        super().__init__()
        self.norm1 = _norm(channels)
        self.conv1 = ConcatConv2d(channels, time_dependent)
        self.norm2 = _norm(channels)
        self.conv2 = ConcatConv2d(channels, time_dependent)
        self.norm3 = _norm(channels)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out = self.conv1(t, F.softplus(self.norm1(h)))
        out = self.conv2(t, F.softplus(self.norm2(out)))
        return self.norm3(out)


class ODEBlock(nn.Module):
    """``h(1) = h(0) + ∫_0^1 f(t, h(t)) dt``, solved by :func:`odeint_checked`.

    Parameters
    ----------
    dynamics : nn.Module
        ``f(t, h)``; wrapped in :class:`CountedDynamics`, which counts evaluations (NFE) and
        stores nothing per step, so with ``options.adjoint`` memory stays constant in the
        number of solver steps.
    options : SolverOptions
        May be replaced between calls (e.g. a looser ``rtol`` at test time).

    Examples
    --------
    >>> class Linear(nn.Module):
    ...     def forward(self, t, h):
    ...         return -h
    >>> block = ODEBlock(Linear(), SolverOptions(rtol=1e-8, atol=1e-9))
    >>> round(float(block(torch.ones(1, 1))), 5)  # exp(-1)
    0.36788
    """

    def __init__(self, dynamics: nn.Module, options: SolverOptions | None = None):
        super().__init__()
        self.func = CountedDynamics(dynamics)
        self.options = options if options is not None else SolverOptions()

    def set_solver(self, options: SolverOptions) -> None:
        """Set the options of the block's solves from now on.

        Parameters
        ----------
        options : SolverOptions
            Replaces the options given at construction (a looser ``rtol`` at test time, no
            adjoint without gradients); the weights are untouched.
        """
        self.options = options

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        return odeint_checked(self.func, h, t, self.options)[-1]


class ResidualStack(nn.Module):
    """``n`` residual blocks ``h <- h + f_k(h)`` (the ResNet baseline of the ODE block).

    Parameters
    ----------
    blocks : sequence of nn.Module
        Residual functions, called as ``f(t, h)`` with ``t = 0`` so that the ODE-Net's
        dynamics classes (built without their time input) serve as blocks.
    """

    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = torch.zeros((), dtype=h.dtype, device=h.device)
        for block in self.blocks:
            h = h + block(t, h)
        return h


class ClassifierNet(nn.Module):
    """``head(body(stem(x)))``: flat rows ``(batch, n_features)`` to logits
    ``(batch, n_classes)``."""

    def __init__(self, stem: nn.Module, body: nn.Module, head: nn.Module):
        super().__init__()
        self.stem = stem
        self.body = body
        self.head = head

    def set_solver(self, options: SolverOptions) -> None:
        """Set the options of the ODE body's solves from now on.

        Parameters
        ----------
        options : SolverOptions
            Passed to the body's ``set_solver`` (:meth:`ODEBlock.set_solver`).

        Raises
        ------
        TypeError
            When the body solves nothing (the ResNet baseline's :class:`ResidualStack`).
        """
        if not hasattr(self.body, "set_solver"):
            raise TypeError(f"This network's body ({type(self.body).__name__}) solves no "
                            "ODE: it has no solver options to set.")
        self.body.set_solver(options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)))


def _conv_stem(input_shape: tuple[int, int, int], width: int, downsample: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Unflatten(1, input_shape),
                               nn.Conv2d(input_shape[0], width, 3, 1, 1)]
    for _ in range(downsample):
        layers += [_norm(width), nn.ReLU(), nn.Conv2d(width, width, 4, 2, 1)]
    return nn.Sequential(*layers)


def _conv_head(width: int, n_classes: int) -> nn.Module:
    return nn.Sequential(_norm(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, n_classes))


def build_classifier_net(
    n_features: int,
    n_classes: int,
    *,
    input_shape: tuple[int, int, int] | None = None,
    width: int = 64,
    downsample: int = 2,
    body: str = "ode",
    n_blocks: int = 6,
    options: SolverOptions | None = None,
) -> ClassifierNet:
    """An ODE-Net (``body="ode"``) or its ResNet baseline (``body="resnet"``).

    Parameters
    ----------
    n_features : int
        Columns of the flat input rows.
    n_classes : int
    input_shape : (C, H, W) or None
        Rows are images of this shape (``C * H * W == n_features``): convolutional stem,
        dynamics and pooled head. ``None``: tabular rows, MLP dynamics.
    width : int
        Channels of the feature maps (images) or units of the hidden state (tabular).
    downsample : int
        Stride-2 convolutions of the image stem (the paper uses 2).
    body : {"ode", "resnet"}
    n_blocks : int
        Residual blocks of the ResNet body.
    options : SolverOptions or None
        The ODE block's solver settings.

    Examples
    --------
    >>> net = build_classifier_net(64, 10, input_shape=(1, 8, 8), width=16)
    >>> net(torch.zeros(5, 64)).shape
    torch.Size([5, 10])
    >>> n_parameters(build_classifier_net(784, 10, input_shape=(1, 28, 28)))
    208266
    >>> n_parameters(build_classifier_net(784, 10, input_shape=(1, 28, 28), body="resnet"))
    578314
    """
    if body not in ("ode", "resnet"):
        raise ValueError(f"body must be 'ode' or 'resnet'; got {body!r}.")
    if input_shape is not None:
        stem = _conv_stem(tuple(input_shape), width, downsample)
        head = _conv_head(width, n_classes)

        def dynamics(time_dependent: bool) -> nn.Module:
            return ConvDynamics(width, time_dependent)
    else:
        stem = nn.Linear(n_features, width)
        head = nn.Linear(width, n_classes)

        def dynamics(time_dependent: bool) -> nn.Module:
            return MLPDynamics(width, (width,), time_dependent=time_dependent)
    if body == "ode":
        middle: nn.Module = ODEBlock(dynamics(True), options)
    else:
        middle = ResidualStack([dynamics(False) for _ in range(n_blocks)])
    return ClassifierNet(stem, middle, head)


def n_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
