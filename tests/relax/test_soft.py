"""Every relaxation reduces to its hard operation as tau → 0 (and is it at tau = 0)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad.relax as sr

X = jnp.array([-2.3, -0.7, -0.05, 0.04, 0.6, 1.49, 2.51, 3.2])  # no ties, off half-integers
Y = jnp.array([0.3, -1.0, 0.2, -0.3, 0.9, 1.0, 2.0, 3.9])
TAUS = [1e-1, 1e-2, 1e-3]

CASES = {
    "step": (lambda t: sr.step(X, t), (X > 0).astype(X.dtype)),
    "soft_cut": (lambda t: sr.soft_cut(X, 0.5, t), (X > 0.5).astype(X.dtype)),
    "soft_cut_below": (lambda t: sr.soft_cut(X, 0.5, t, keep="below"), (X < 0.5).astype(X.dtype)),
    "soft_where": (lambda t: sr.soft_where(X, X, Y, t), jnp.where(X > 0, X, Y)),
    "soft_max2": (lambda t: sr.soft_max(X, Y, tau=t), jnp.maximum(X, Y)),
    "soft_min2": (lambda t: sr.soft_min(X, Y, tau=t), jnp.minimum(X, Y)),
    "soft_max": (lambda t: sr.soft_max(X, tau=t), jnp.max(X)),
    "soft_min": (lambda t: sr.soft_min(X, tau=t), jnp.min(X)),
    "soft_abs": (lambda t: sr.soft_abs(X, t), jnp.abs(X)),
    "soft_clip": (lambda t: sr.soft_clip(X, -1.0, 1.0, t), jnp.clip(X, -1.0, 1.0)),
    "soft_round": (lambda t: sr.soft_round(X, t), jnp.round(X)),
    "soft_floor": (lambda t: sr.soft_floor(X, t), jnp.floor(X)),
    "soft_sort": (lambda t: sr.soft_sort(X[::-1] * Y, t), jnp.sort(X[::-1] * Y)),
    "soft_rank": (lambda t: sr.soft_rank(Y, t), 1.0 + jnp.argsort(jnp.argsort(Y)).astype(Y.dtype)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_relaxation_converges_to_the_hard_operation(name):
    soft, hard = CASES[name]
    errors = [float(jnp.max(jnp.abs(soft(t) - hard))) for t in TAUS]
    assert errors[-1] < 1e-2  # at tau = 1e-3
    assert errors[-1] <= errors[0] + 1e-12  # and shrinking
    np.testing.assert_array_equal(soft(0.0), hard)  # tau = 0 is the hard operation


def test_gumbel_softmax_converges_to_the_gumbel_max_sample(key):
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    keys = jax.random.split(key, 200)
    hard = jax.vmap(lambda k: sr.gumbel_softmax(k, logits, 0.0))(keys)
    for tau, tol in [(0.1, 0.6), (1e-3, 1e-6)]:
        soft = jax.vmap(lambda k, t=tau: sr.gumbel_softmax(k, logits, t))(keys)
        assert float(jnp.median(jnp.abs(soft - hard).max(axis=1))) < tol
    # The hard samples are exact draws from the categorical: frequencies within 4 s.e.
    freq = hard.mean(axis=0)
    p = jnp.exp(logits)
    assert bool(jnp.all(jnp.abs(freq - p) < 4 * jnp.sqrt(p * (1 - p) / 200)))


def test_gumbel_softmax_hard_is_one_hot_with_the_relaxed_gradient(key):
    logits = jnp.array([0.1, 0.4, -0.2])
    hard = sr.gumbel_softmax(key, logits, 0.5, hard=True)
    assert float(hard.sum()) == 1.0 and set(np.asarray(hard).tolist()) <= {0.0, 1.0}
    g_hard = jax.grad(lambda lg: sr.gumbel_softmax(key, lg, 0.5, hard=True)[0])(logits)
    g_soft = jax.grad(lambda lg: sr.gumbel_softmax(key, lg, 0.5)[0])(logits)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-12)


def test_straight_through_has_the_hard_value_and_the_soft_gradient():
    f = lambda x: sr.straight_through(jnp.floor(x), sr.soft_floor(x, 0.1))  # noqa: E731
    assert float(f(2.7)) == 2.0
    np.testing.assert_allclose(jax.grad(f)(2.7), jax.grad(lambda x: sr.soft_floor(x, 0.1))(2.7))


def test_relaxations_have_nonzero_gradients_where_the_hard_ones_are_flat():
    assert float(jax.grad(lambda x: sr.step(x, 0.1))(0.05)) > 1.0
    assert float(jax.grad(lambda x: sr.soft_round(x, 0.1))(2.5)) > 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sr.step(1.0, -0.1), "≥ 0"),
        (lambda: sr.soft_cut(1.0, 0.0, 0.1, keep="left"), "above"),
        (lambda: sr.soft_sort(jnp.ones((2, 2)), 0.1), "vector"),
        (lambda: sr.straight_through(jnp.ones(2), jnp.ones(3)), "shape"),
    ],
)
def test_misuse_is_refused_with_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
