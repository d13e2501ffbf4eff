"""Relaxations: soft versions of hard operations, soft histograms, automatic smoothing.

Every relaxation takes a temperature (``tau``, or ``bandwidth`` for histograms) and
reduces to the hard operation as it goes to 0 (exactly at 0). A relaxation trades bias for
gradients; `simgrad.smooth_sweep` measures that bias against an unbiased estimator.
See docs/relax.md.
"""

from .._src.soft import gumbel_softmax as gumbel_softmax
from .._src.soft import soft_abs as soft_abs
from .._src.soft import soft_clip as soft_clip
from .._src.soft import soft_cut as soft_cut
from .._src.soft import soft_floor as soft_floor
from .._src.soft import soft_max as soft_max
from .._src.soft import soft_min as soft_min
from .._src.soft import soft_rank as soft_rank
from .._src.soft import soft_round as soft_round
from .._src.soft import soft_sort as soft_sort
from .._src.soft import soft_where as soft_where
from .._src.soft import step as step
from .._src.soft import straight_through as straight_through
from ._histogram import Histogram as Histogram
from ._histogram import soft_histogram as soft_histogram

__all__ = [
    "Histogram",
    "gumbel_softmax",
    "soft_abs",
    "soft_clip",
    "soft_cut",
    "soft_floor",
    "soft_histogram",
    "soft_max",
    "soft_min",
    "soft_rank",
    "soft_round",
    "soft_sort",
    "soft_where",
    "step",
    "straight_through",
]
