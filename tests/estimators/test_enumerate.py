"""`sg.Enumerate` against exact sums written out here (float64, to 1e-12, standard error 0),
with the rest of the randomness estimated (within 4.5 standard errors), and its refusals."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import simgrad as sg

R = sg.random
VALUES = jnp.asarray([1.0, -2.0, 4.0])


def _small(theta, key):
    """Two Bernoulli(p), a categorical(logits) and a Binomial(3, q), θ = (p, q, logits),
    mixed nonlinearly: a jump, a switch on the category, a square."""
    p, q, logits = theta[0], theta[1], theta[2:]
    k1, k2, k3 = jax.random.split(key, 3)
    b = R.bernoulli(k1, p, shape=(2,))
    c = R.categorical(k2, logits).astype(jnp.int32)
    n = R.binomial(k3, 3, q)
    v = lax.switch(c, [lambda n=n, s=s: s * n for s in (1.0, -2.0, 4.0)])
    return jnp.where(b[0] != b[1], v, n**2 + b[0])


def _small_exact(theta):
    """E[_small] by a sum over the 2·2·3·4 outcomes, each weighted by its probability."""

    def expectation(theta):
        p, q, logits = theta[0], theta[1], theta[2:]
        pi = jax.nn.softmax(logits)
        total = 0.0
        for b0, b1, c, n in itertools.product((0, 1), (0, 1), range(3), range(4)):
            weight = (p if b0 else 1 - p) * (p if b1 else 1 - p) * pi[c]
            weight = weight * math.comb(3, n) * q**n * (1 - q) ** (3 - n)
            value = VALUES[c] * n if b0 != b1 else n**2 + b0
            total = total + weight * value
        return total

    return jax.jit(jax.grad(expectation))(theta)


THETA = jnp.asarray([0.3, 0.45, 0.2, -0.1, 0.4])


def test_exact_where_all_randomness_is_enumerated():
    est = sg.gradient(_small, THETA, jax.random.key(0), method=sg.Enumerate(), n_samples=16)
    np.testing.assert_allclose(est.grad, _small_exact(THETA), rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(est.grad_stderr) == 0)  # zero variance, reported as 0
    assert est.claim == "unbiased"


def test_the_rest_is_estimated_by_rest():
    """A Bernoulli(θ) chooses X² or 3X, X ~ N(θ, 1): E = θ(θ² + 1) + 3(1 - θ)θ."""

    def sim(theta, key):
        k1, k2 = jax.random.split(key)
        x = R.normal(k2, theta, 1.0)
        return lax.cond(R.bernoulli(k1, theta) > 0, lambda: x**2, lambda: 3.0 * x)

    t = 0.4
    est = sg.gradient(sim, t, jax.random.key(1), method=sg.Enumerate(), n_samples=2000)
    exact = 3 * t**2 + 1 + 3 - 6 * t
    assert abs(float(est.grad) - exact) <= 4.5 * float(est.grad_stderr)
    assert float(est.grad_stderr) > 0


def test_refuses_too_many_outcomes():
    def sim(theta, key):
        return R.bernoulli(key, theta, shape=(7,)).sum()

    with pytest.raises(ValueError, match=r"128 joint outcomes \(bernoulli 2\^7\), more than "):
        sg.gradient(sim, 0.3, jax.random.key(0), method=sg.Enumerate(max_support=64), n_samples=4)


def test_refuses_a_draw_in_a_loop_that_rest_cannot_take():
    def sim(theta, key):
        step = lambda s, k: (s + R.bernoulli(k, theta), None)  # noqa: E731
        return lax.scan(step, jnp.zeros_like(theta), jax.random.split(key, 4))[0] ** 2

    with pytest.raises(ValueError, match=r"not enumerated: give rest=sg.StochasticTriples\(\)"):
        sg.gradient(sim, 0.3, jax.random.key(0), method=sg.Enumerate(), n_samples=4)


def test_rest_must_be_named():
    with pytest.raises(TypeError, match=r"must not choose another estimator \(sg.Auto\)"):
        sg.Enumerate(rest=sg.Auto())
