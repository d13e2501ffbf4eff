"""Every relaxation reduces to its hard operation as tau → 0 (and is it at tau = 0)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
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


# -- tau is validated where it is known and guarded where it is traced ----------------------

CALLS_WITH_TAU = {
    "step": lambda t: sr.step(X, t),
    "soft_max": lambda t: sr.soft_max(X, Y, tau=t),
    "soft_min": lambda t: sr.soft_min(X, tau=t),
    "soft_abs": lambda t: sr.soft_abs(X, t),
    "soft_round": lambda t: sr.soft_round(X, t),
    "soft_sort": lambda t: sr.soft_sort(X, t),
    "soft_rank": lambda t: sr.soft_rank(X, t),
    "gumbel_softmax": lambda t: sr.gumbel_softmax(jax.random.key(0), X, t),
    "soft_histogram": lambda t: sr.soft_histogram(X, jnp.linspace(-3, 3, 4), bandwidth=t).counts,
}
BAD_TAUS = [
    (-0.1, "≥ 0"),
    (jnp.asarray(-0.1), "≥ 0"),  # a device scalar: today the min for a max
    (np.float32(-1.0), "≥ 0"),
    (float("nan"), "finite"),
    (jnp.asarray(jnp.nan), "finite"),
    (float("inf"), "finite"),
    (jnp.asarray(jnp.inf), "finite"),
    ("0.1", "scalar"),
    (jnp.ones(2), "scalar"),
    (True, "scalar"),
]


@pytest.mark.parametrize("tau, words", BAD_TAUS, ids=repr)
@pytest.mark.parametrize("name", sorted(CALLS_WITH_TAU))
def test_a_concrete_bad_tau_is_refused(name, tau, words):
    with pytest.raises(ValueError, match=words):
        CALLS_WITH_TAU[name](tau)


HARD = {
    "step": (X > 0).astype(X.dtype),
    "soft_max": jnp.maximum(X, Y),
    "soft_abs": jnp.abs(X),
    "soft_round": jnp.round(X),
    "soft_sort": jnp.sort(X),
}


@pytest.mark.parametrize("name", sorted(HARD))
def test_a_device_scalar_zero_is_the_hard_operation_with_its_gradient(name):
    soft = CALLS_WITH_TAU[name]
    np.testing.assert_array_equal(soft(jnp.asarray(0.0)), HARD[name])
    # at x = 0 exactly, where sigmoid(x / 0) would be 0/0: the hard operation's derivative
    at_zero = {"step": sr.step, "soft_abs": sr.soft_abs}.get(name)
    if at_zero is not None:
        g = jax.grad(lambda x: at_zero(x, jnp.asarray(0.0)))(0.0)
        assert float(g) == float(jax.grad(lambda x: at_zero(x, 0.0))(0.0))
        assert np.isfinite(float(g))


@pytest.mark.parametrize("name", sorted(CALLS_WITH_TAU))
def test_a_traced_tau_gives_the_relaxation_and_a_traced_bad_tau_raises(name):
    soft = jax.jit(CALLS_WITH_TAU[name])
    np.testing.assert_allclose(soft(0.1), CALLS_WITH_TAU[name](0.1), rtol=1e-6, atol=1e-6)
    for bad in (-0.1, 0.0, jnp.inf, jnp.nan):  # 0 traced cannot select the hard operation
        with pytest.raises(Exception, match="must be > 0 and finite when traced"):
            jax.block_until_ready(soft(bad))


def test_the_gradient_in_a_traced_tau_is_the_relaxations():
    # d/dτ σ(x/τ) = -x σ'(x/τ) / τ²: exact, through the guard
    x, tau = 0.3, 0.2
    s = jax.nn.sigmoid(x / tau)
    exact = -x * s * (1 - s) / tau**2
    np.testing.assert_allclose(jax.grad(lambda t: sr.step(x, t))(tau), exact, rtol=1e-6)
    with pytest.raises(Exception, match="must be > 0"):
        jax.block_until_ready(jax.grad(lambda t: sr.step(x, t))(0.0))


@pytest.mark.parametrize("tau", [float("inf"), float("nan"), 0.0, -1.0])
def test_smooth_refuses_a_temperature_that_is_not_positive_and_finite(tau):
    with pytest.raises(ValueError, match="positive finite"):
        sg.smooth(lambda t, k: jnp.where(t > 1.0, 1.0, 0.0), tau)
    with pytest.raises(ValueError, match="positive finite"):
        sg.smooth_sweep(lambda t, k: t, 1.0, jax.random.key(0), [0.1, tau], n_samples=4)
