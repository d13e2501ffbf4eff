"""A particle-physics analysis toy: a cut, a histogram and a Poisson significance."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from .. import random as sgr
from ..relax import soft_cut, soft_histogram
from .base import AbstractModel


def asimov_significance(s, b):
    r"""The median discovery significance of a binned counting experiment (Cowan et al. 2011):
    $Z = \sqrt{\sum_k 2[(s_k + b_k)\ln(1 + s_k/b_k) - s_k]}$ for expected signal $s_k$ and
    background $b_k$ per bin (bins with $b_k = 0$ are skipped)."""
    ok = b > 0
    b_safe = jnp.where(ok, b, 1.0)
    terms = 2 * ((s + b_safe) * jnp.log1p(s / b_safe) - s)
    return jnp.sqrt(jnp.sum(jnp.where(ok, terms, 0.0)))


class CutAndCount(AbstractModel):
    r"""Optimise a selection cut: signal over an exponential background, binned in a mass.

    Each event has a *mass* $m$ (histogrammed) and a *discriminant* $y$ (cut on).
    Signal: $m \sim N(5, 0.5^2)$, $y \sim N(1.5, 1)$, ``n_signal`` expected events;
    background: $m \sim \mathrm{Exp}(\text{mean } 4)$, $y \sim \mathrm{Exp}(1)$,
    ``n_background`` expected events. The analysis keeps events with $y > \theta$,
    histograms $m$ in 10 bins on $[0, 10]$ — from ``n_mc`` simulated events per class,
    weighted to the expected yields — and returns the Asimov significance
    `asimov_significance` (to be *maximised*).

    With ``tau = 0`` the analysis is the hard one: its histogram is piecewise constant in
    θ, so every pathwise gradient is exactly zero. With ``tau > 0`` the cut is
    `simgrad.relax.soft_cut` and the histogram `simgrad.relax.soft_histogram` (kernel
    width ``bandwidth``): the significance is smooth in θ and gradients find the best cut.

    ``exact_value`` is the hard analysis with infinite MC (closed-form yields); the exact
    gradient is not given (the objective is a biased function of MC averages).
    """

    tau: float = 0.0
    bandwidth: float = 0.0
    n_mc: int = 2000
    n_signal: float = 50.0
    n_background: float = 1000.0

    name = "cut"
    summary = "physics cut-and-count: significance of a histogram after a cut y > θ"
    stochastic = True
    n_samples = 8

    edges = np.linspace(0.0, 10.0, 11)

    def __call__(self, theta, key):
        ks = jax.random.split(key, 4)
        n = self.n_mc
        dtype = jnp.result_type(theta)
        m_s = sgr.normal(ks[0], 5.0, 0.5, shape=(n,), dtype=dtype)
        y_s = sgr.normal(ks[1], 1.5, 1.0, shape=(n,), dtype=dtype)
        m_b = sgr.exponential(ks[2], 0.25, shape=(n,), dtype=dtype)
        y_b = sgr.exponential(ks[3], 1.0, shape=(n,), dtype=dtype)
        edges = jnp.asarray(self.edges, dtype)

        def counts(m, y, total):
            w = soft_cut(y, theta, self.tau) * (total / n)
            return soft_histogram(m, edges, self.bandwidth, weights=w).counts

        return asimov_significance(
            counts(m_s, y_s, self.n_signal), counts(m_b, y_b, self.n_background)
        )

    def default_theta(self):
        return 0.5

    def expected_counts(self, theta):
        """Closed-form expected (signal, background) counts per bin after the hard cut."""
        e = self.edges
        p_s = norm.cdf((e[1:] - 5.0) / 0.5) - norm.cdf((e[:-1] - 5.0) / 0.5)
        p_b = np.exp(-e[:-1] / 4.0) - np.exp(-e[1:] / 4.0)
        keep_s = 1 - norm.cdf(theta - 1.5)
        keep_b = math.exp(-max(float(theta), 0.0))
        return self.n_signal * keep_s * np.asarray(p_s), self.n_background * keep_b * p_b

    def exact_value(self, theta):
        s, b = self.expected_counts(float(theta))
        return float(asimov_significance(jnp.asarray(s), jnp.asarray(b)))

    def exact_grad(self, theta):
        return None
