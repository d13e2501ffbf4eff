"""Soft histograms: a binned kernel density estimate whose counts are smooth in the data."""

from typing import NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._src.soft import _float, _tau
from .._types import Array


class Histogram(NamedTuple):
    """Counts per bin plus the mass that fell below the first edge and above the last.

    ``counts.sum() + underflow + overflow`` equals the total weight, exactly up to rounding.
    """

    counts: Array
    underflow: Array
    overflow: Array


def soft_histogram(x, bins, bandwidth, weights=None) -> Histogram:
    r"""Histogram ``x`` into ``bins`` with each event spread by a Gaussian kernel.

    Event $i$ adds $w_i\,[\Phi((e_{k+1} - x_i)/h) - \Phi((e_k - x_i)/h)]$ to bin $k$ — the
    kernel mass inside the bin — and its mass beyond the edges to ``underflow`` and
    ``overflow``, so nothing is lost. ``bandwidth=0`` gives the hard histogram (bins
    ``[e_k, e_{k+1})``). A wider kernel gives smoother, lower-variance gradients and more
    bias (the counts of a smeared distribution).

    Arguments:
        x: event values, shape ``(n,)``.
        bins: the bin edges, increasing, shape ``(n_bins + 1,)``.
        bandwidth: the kernel's standard deviation $h \ge 0$ (the temperature).
        weights: per-event weights, shape ``(n,)``, default 1 — e.g. `soft_cut` weights.

    >>> import jax.numpy as jnp, simgrad.relax as sr
    >>> h = sr.soft_histogram(jnp.array([0.2, 0.5, 1.7]), jnp.array([0.0, 1.0, 2.0]), 0.1)
    >>> round(float(h.counts.sum() + h.underflow + h.overflow), 12)
    3.0
    """
    x = _float(x)
    edges = jnp.asarray(bins, x.dtype)
    if x.ndim != 1:
        raise ValueError(f"x must be a vector of events, got shape {x.shape}.")
    if edges.ndim != 1 or edges.shape[0] < 2:
        raise ValueError(f"bins must be a vector of at least 2 edges, got shape {edges.shape}.")
    # checked in NumPy: jnp on a closed-over array inside jit would give a tracer
    if not isinstance(bins, jax.core.Tracer) and not np.all(np.diff(np.asarray(bins, float)) > 0):
        raise ValueError("bins must be strictly increasing edges.")
    w = jnp.ones_like(x) if weights is None else _float(weights)
    if w.shape != x.shape:
        raise ValueError(f"weights {w.shape} must match x {x.shape}.")
    bandwidth = _tau(bandwidth, "bandwidth")
    if bandwidth is None:
        cdf = (x[:, None] >= edges[None, :]).astype(x.dtype)  # 1{x ≥ e_k}
    else:
        cdf = jax.scipy.stats.norm.cdf((x[:, None] - edges[None, :]) / bandwidth)
    # cdf[i, k] = mass of event i at or above edge k (the complementary CDF in x - e).
    below = 1.0 - cdf[:, 0]
    inside = cdf[:, :-1] - cdf[:, 1:]
    above = cdf[:, -1]
    return Histogram(w @ inside, w @ below, w @ above)
