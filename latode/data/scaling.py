"""Per-channel standardisation fitted on observed training values only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelScaler"]


@dataclass
class ChannelScaler:
    """``(x - mean) / std`` per channel; NaN (not observed) stays NaN.

    Attributes
    ----------
    mean, std : ndarray, shape (channels,)

    Examples
    --------
    >>> s = ChannelScaler.fit(np.array([[1.0, np.nan], [3.0, 10.0]]))
    >>> s.transform(np.array([[3.0, 10.0]]))
    array([[1., 0.]])
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, enabled: bool = True) -> ChannelScaler:
        """Fit on ``values`` of shape (n, channels), ignoring NaN.

        A channel with zero spread (or one observation) keeps a scale of 1, so it is shifted
        but never divided by zero. ``enabled=False`` gives the identity map.
        """
        channels = values.shape[1]
        if not enabled:
            return cls(np.zeros(channels), np.ones(channels))
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(mean=np.nan_to_num(mean), std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> ChannelScaler:
        return cls(np.asarray(state["mean"], dtype=float), np.asarray(state["std"], dtype=float))
