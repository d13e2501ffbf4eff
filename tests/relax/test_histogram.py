"""Soft histograms: counts sum to the weights, reduce to the hard histogram, are smooth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad.relax as sr


def test_counts_plus_overflow_sum_to_the_weights(key):
    x = jax.random.normal(key, (500,)) * 2.0
    w = jax.random.uniform(jax.random.fold_in(key, 1), (500,))
    edges = jnp.linspace(-1.0, 1.5, 6)
    for h in (0.0, 0.05, 0.5, 5.0):
        hist = sr.soft_histogram(x, edges, h, weights=w)
        total = hist.counts.sum() + hist.underflow + hist.overflow
        np.testing.assert_allclose(total, w.sum(), rtol=1e-12)


def test_zero_bandwidth_is_numpys_histogram_and_small_bandwidth_converges(key):
    x = jax.random.normal(key, (400,))
    edges = jnp.linspace(-2.0, 2.0, 9)
    hard = np.histogram(np.asarray(x), np.asarray(edges))[0].astype(float)
    h0 = sr.soft_histogram(x, edges, 0.0)
    np.testing.assert_array_equal(h0.counts, hard)  # no event sits on the last edge
    np.testing.assert_array_equal(h0.underflow, np.sum(np.asarray(x) < -2.0))
    errors = [
        float(jnp.abs(sr.soft_histogram(x, edges, h).counts - jnp.asarray(hard)).max())
        for h in (1e-2, 1e-4, 1e-6)
    ]
    assert errors[-1] < 1e-2 and errors[0] >= errors[-1]


def test_soft_histogram_is_the_gaussian_smeared_expectation():
    # One event at 0, bins [-1, 0, 1]: by symmetry each bin gets Φ(1/h) - 1/2.
    h = 0.7
    hist = sr.soft_histogram(jnp.array([0.0]), jnp.array([-1.0, 0.0, 1.0]), h)
    expected = jax.scipy.stats.norm.cdf(1 / h) - 0.5
    np.testing.assert_allclose(hist.counts, [expected, expected], rtol=1e-12)
    np.testing.assert_allclose(hist.overflow, 1 - jax.scipy.stats.norm.cdf(1 / h), rtol=1e-12)


def test_soft_cut_weights_give_a_gradient_the_hard_histogram_lacks(key):
    x = jax.random.normal(key, (300,))
    edges = jnp.linspace(-2.0, 2.0, 5)

    def total(theta, tau, bandwidth):
        return sr.soft_histogram(x, edges, bandwidth, sr.soft_cut(x, theta, tau)).counts.sum()

    assert float(jax.grad(total)(0.1, 0.0, 0.0)) == 0.0
    # Soft: d/dθ of the kept count ≈ -n φ(θ) for a fine cut (counts are a binned KDE).
    g = float(jax.grad(total)(0.1, 0.05, 0.05))
    assert -300 * 0.55 < g < -300 * 0.25


@pytest.mark.parametrize(
    "args, match",
    [
        ((jnp.ones((2, 2)), jnp.array([0.0, 1.0]), 0.1), "vector of events"),
        ((jnp.ones(3), jnp.array([1.0, 0.0]), 0.1), "increasing"),
        ((jnp.ones(3), jnp.array([0.0]), 0.1), "2 edges"),
        ((jnp.ones(3), jnp.array([0.0, 1.0]), -1.0), "bandwidth"),
    ],
)
def test_misuse_is_refused(args, match):
    with pytest.raises(ValueError, match=match):
        sr.soft_histogram(*args)


def test_edges_closed_over_under_jit_are_checked_once_and_kept(key):
    """jnp edges captured by a jitted function, as users write them: the same counts as
    outside jit, and decreasing edges refused when the function is traced."""
    x = jax.random.normal(key, (50,))
    edges = jnp.linspace(-1.0, 1.0, 5)
    jitted = jax.jit(lambda x: sr.soft_histogram(x, edges, 0.3).counts)
    np.testing.assert_allclose(jitted(x), sr.soft_histogram(x, edges, 0.3).counts, rtol=1e-12)
    backwards = edges[::-1]
    with pytest.raises(ValueError, match="strictly increasing"):
        jax.jit(lambda x: sr.soft_histogram(x, backwards, 0.3).counts)(x)
