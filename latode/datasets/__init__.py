"""Data sets for irregular time series: synthetic generators and offline loaders; and the
2-D toy densities, with their exact log-densities, for density estimators.

Every loader returns long frames (``unique_id``, ``ds``, one float column per channel, NaN
where a channel was not observed), sorted by ``unique_id, ds``.
"""

from latode.datasets._dosing import DosingData, make_dosing, one_compartment
from latode.datasets._periodic import PeriodicData, make_periodic
from latode.datasets._physionet import (
    PHYSIONET2012_DESCRIPTORS,
    PHYSIONET2012_VARIABLES,
    load_physionet2012,
)
from latode.datasets._rdata import PBCSEQ_LABS, load_coal, load_pbcseq, load_theoph
from latode.datasets._spirals import SpiralsData, make_spirals
from latode.datasets._toy2d import TOY2D_NAMES, make_toy2d, toy2d_log_density
from latode.datasets.idx import load_idx, read_idx

__all__ = [
    "DosingData",
    "PBCSEQ_LABS",
    "PHYSIONET2012_DESCRIPTORS",
    "PHYSIONET2012_VARIABLES",
    "PeriodicData",
    "SpiralsData",
    "TOY2D_NAMES",
    "load_coal",
    "load_idx",
    "load_pbcseq",
    "load_physionet2012",
    "load_theoph",
    "make_dosing",
    "make_periodic",
    "make_spirals",
    "make_toy2d",
    "one_compartment",
    "read_idx",
    "toy2d_log_density",
]
