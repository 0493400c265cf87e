"""Long DataFrames of irregular series <-> batched tensors with masks, and back."""

from latode.data.converter import IrregularFrameConverter
from latode.data.packing import PackedSeries, UnionBatch
from latode.data.scaling import ChannelScaler
from latode.data.time_axis import TimeAxis
from latode.data.validation import FrameSpec, validate_long_frame

__all__ = [
    "ChannelScaler",
    "FrameSpec",
    "IrregularFrameConverter",
    "PackedSeries",
    "TimeAxis",
    "UnionBatch",
    "validate_long_frame",
]
