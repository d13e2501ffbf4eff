"""Bad inputs, each with the error it must get: never a silent wrong result, never a raw
JAX error where simgrad can name the fix (issue 18).

Sections are independent tables; each row is (label, call, exception, words in the message).
"""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simgrad as sg

from .helpers import noisy_square

# --- sg.gradient: arguments, θ, the simulator's contract, hidden draws ----------------------

KEY = jax.random.key(0)


def grad(sim=noisy_square, theta=1.0, key=KEY, method=None, n_samples=8, **kwargs):
    """Call sg.gradient and read a number (errors found at run time surface on reading)."""
    method = sg.Pathwise() if method is None else method
    est = sg.gradient(sim, theta, key, method=method, n_samples=n_samples, **kwargs)
    return jax.tree.map(np.asarray, est.grad)


def numpy_sim(theta, key):
    return np.exp(theta)  # NumPy on a traced value


def python_if_sim(theta, key):
    if theta > 0:  # Python control flow on a traced value
        return theta
    return -theta


MLP = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(1))


def raw_bernoulli(p, key):
    return jax.random.bernoulli(key, p).astype(p.dtype) + sg.random.normal(key, p, 1.0)


def raw_categorical(p, key):
    choice = jax.random.categorical(key, jnp.log(jnp.stack([p, 1 - p])))
    return choice.astype(p.dtype) + sg.random.normal(key, p, 1.0)


def raw_poisson(rate, key):
    return jax.random.poisson(key, rate).astype(rate.dtype) + sg.random.normal(key, rate, 1.0)


GRADIENT_ERRORS = [
    ("one sample", lambda: grad(n_samples=1), ValueError, "at least 2"),
    ("fractional n_samples", lambda: grad(n_samples=2.5), TypeError, "n_samples must be an int"),
    ("n_samples = 2**32", lambda: grad(n_samples=2**32), ValueError, "at most 2**32 - 1"),
    (
        "n_samples = 2**31 at once, 1000 parameters",
        lambda: grad(lambda t, k: jnp.sum(t**2), jnp.zeros(1000), n_samples=2**31),
        ValueError,
        "Pass batch_size=",
    ),
    ("batch_size=0", lambda: grad(batch_size=0), ValueError, "batch_size"),
    ("batch_size=2.5", lambda: grad(batch_size=2.5), ValueError, "batch_size"),
    ("estimator class", lambda: grad(method=sg.Pathwise), TypeError, "method=Pathwise()"),
    ("estimator name", lambda: grad(method="pathwise"), TypeError, "must be an estimator"),
    ("int key", lambda: grad(key=0), TypeError, "jax.random.key(0)"),
    ("batch of keys", lambda: grad(key=jax.random.split(KEY, 3)), ValueError, "single PRNG key"),
    ("int theta", lambda: grad(theta=1), TypeError, "1.0 instead of 1"),
    ("int array theta", lambda: grad(theta=jnp.array([1, 2])), TypeError, "must be floating"),
    ("string leaf", lambda: grad(theta={"a": 1.0, "b": "x"}), TypeError, "theta['b']"),
    ("NaN theta", lambda: grad(theta=float("nan")), ValueError, "not finite"),
    ("inf theta on device", lambda: grad(theta=jnp.asarray(jnp.inf)), ValueError, "not finite"),
    (
        "NaN leaf on device",
        lambda: grad(lambda t, k: t["a"] + t["b"], {"a": 1.0, "b": jnp.asarray(jnp.nan)}),
        ValueError,
        "theta['b'] is not finite",
    ),
    ("empty dict theta", lambda: grad(theta={}), ValueError, "no parameters"),
    ("theta of shape (0,)", lambda: grad(theta=jnp.zeros(0)), ValueError, "no parameters"),
    (
        "only empty leaves",
        lambda: grad(lambda t, k: 1.0, {"a": jnp.zeros((0, 3)), "b": jnp.zeros(0)}),
        ValueError,
        "no parameters",
    ),
    (
        "module holding a function",
        lambda: grad(lambda m, k: m(jnp.ones(2))[0], MLP),
        TypeError,
        "partition it with eqx.partition",
    ),
    ("integer output", lambda: grad(lambda t, k: jnp.int32(1)), TypeError, "must return floats"),
    ("no output", lambda: grad(lambda t, k: ()), ValueError, "no output at all"),
    ("not a function", lambda: grad(sim=3.0), TypeError, "sim must be a function"),
    ("NumPy on a traced value", lambda: grad(numpy_sim), TypeError, "jax.numpy"),
    ("Python if on a traced value", lambda: grad(python_if_sim), TypeError, "jnp.where"),
    ("one argument", lambda: grad(lambda t: t), TypeError, "two arguments"),
    ("three arguments", lambda: grad(lambda t, k, x: t), TypeError, "sim(theta, key)"),
    (
        "jax.random.bernoulli under StochasticTriples",
        lambda: grad(raw_bernoulli, 0.3, method=sg.StochasticTriples()),
        ValueError,
        "jax.random.bernoulli",
    ),
    (
        "jax.random.categorical under Hybrid",
        lambda: grad(raw_categorical, 0.3, method=sg.Hybrid()),
        ValueError,
        "jax.random.categorical",
    ),
    (
        "jax.random.poisson under StochasticTriples",
        lambda: grad(raw_poisson, 2.0, method=sg.StochasticTriples()),
        ValueError,
        "jax.random.poisson",
    ),
    (
        "finite-difference step across log's domain",
        lambda: grad(lambda a, k: jnp.log(a), 2e-6, method=sg.FiniteDifference(step=1e-5)),
        sg.SimulationError,
        "crossed a domain boundary",
    ),
    (
        "BlackBox timeout=-1",
        lambda: sg.BlackBox(lambda t, s: 0.0, timeout=-1),
        ValueError,
        "a positive finite number, or None for no limit",
    ),
    (
        "BlackBox timeout=inf",
        lambda: sg.BlackBox(lambda t, s: 0.0, timeout=np.inf),
        ValueError,
        "positive finite",
    ),
    (
        "BlackBox timeout='5'",
        lambda: sg.BlackBox(lambda t, s: 0.0, timeout="5"),
        TypeError,
        "a number such as timeout=60.0",
    ),
    (
        "jax.grad through an estimate",
        lambda: jax.grad(
            lambda t: sg.gradient(noisy_square, t, KEY, method=sg.Pathwise(), n_samples=8).value
        )(1.0),  # fmt: skip
        TypeError,
        "sg.expectation",
    ),
]


@pytest.mark.parametrize(
    "call, error, words", [row[1:] for row in GRADIENT_ERRORS], ids=[r[0] for r in GRADIENT_ERRORS]
)
def test_gradient_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_hidden_draws_name_simgrad_random():
    with pytest.raises(ValueError, match=r"jax\.random\.categorical.*simgrad\.random"):
        grad(raw_categorical, 0.3, method=sg.Hybrid())


def test_contract_errors_chain_the_original():
    with pytest.raises(TypeError) as info:
        grad(python_if_sim)
    assert isinstance(info.value.__cause__, jax.errors.TracerBoolConversionError)
    assert "sim must be a JAX function sim(theta, key)" in str(info.value)


def test_a_partitioned_mlp_works():
    params, static = eqx.partition(MLP, eqx.is_inexact_array)

    def sim(p, key):
        return eqx.combine(p, static)(jnp.array([0.3, -0.7]))[0]

    est = sg.gradient(sim, params, KEY, method=sg.Pathwise(), n_samples=2)
    exact = jax.grad(lambda p: sim(p, KEY))(params)
    for got, want in zip(jax.tree.leaves(est.grad), jax.tree.leaves(exact), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_numpy_integer_sample_count_works():
    assert np.isfinite(grad(n_samples=np.int64(16)))


# --- the count of failed samples: samples, not a baseline's spread ---------------------------


def nan_tenth(p, key):
    k1, k2 = jax.random.split(key)
    u = jax.random.uniform(k1, dtype=p.dtype)
    return jnp.log(u - 0.1) + sg.random.bernoulli(k2, p)  # NaN whenever u < 0.1


@pytest.mark.parametrize(
    "method",
    [sg.ScoreFunction(baseline=b) for b in (None, "mean", "loo", "ema", "cv")] + [sg.Hybrid()],
    ids=repr,
)
def test_failed_samples_are_counted_not_spread_by_baselines(method):
    n = 500
    keys = jax.random.split(KEY, n)
    u = jax.vmap(lambda k: jax.random.uniform(jax.random.split(k)[0], dtype=jnp.float64))(keys)
    exact = int(np.sum(np.asarray(u) < 0.1))
    assert 20 < exact < 80
    with pytest.raises(sg.SimulationError) as info:
        grad(nan_tenth, 0.3, method=method, n_samples=n)
    assert f"in {exact} of {n} samples (the value itself in {exact})" in str(info.value)


def summed_square(theta, key):
    return noisy_square(sum(jnp.sum(leaf) for leaf in jax.tree.leaves(theta)), key)


def test_a_call_like_a_recent_one_checks_theta_and_key_all_the_same(monkeypatch):
    """The fast path of a repeated call (the same simulator, estimator and sizes) leaves the
    checks of θ's and the key's dtypes and shapes to the compiled function's trace: each
    bad input still gets its error, at the call."""
    grad(summed_square, jnp.float32(1.0))  # the first call: checked in full
    monkeypatch.setattr(sg._estimate, "check_arguments", None)  # the fast path only, now
    grad(summed_square, jnp.float32(2.0))
    rows = [
        (jnp.array([1, 2]), KEY, TypeError, "must be floating"),
        ({"a": jnp.float32(1.0), "b": jnp.int32(1)}, KEY, TypeError, "theta['b'] has dtype int32"),
        (jnp.zeros(0), KEY, ValueError, "no parameters"),
        (jnp.asarray(jnp.nan), KEY, ValueError, "not finite"),
        (jnp.float32(1.0), jax.random.split(KEY, 3), ValueError, "single PRNG key"),
        (jnp.float32(1.0), jnp.int32(0), TypeError, "jax.random.key(0)"),
    ]
    for theta, key, error, words in rows:
        with pytest.raises(error, match=re.escape(words)):
            grad(summed_square, theta, key)


# --- the checker's helpers: sg.one_sided, sg.adjoint.taylor_test ------------------------------

CHECKER_ERRORS = [
    (
        "one_sided of an integer-valued f",
        lambda: sg.one_sided(lambda t: jnp.floor(t).astype(jnp.int32), 1.0, 1.0),
        TypeError,
        "must return floating-point values",
    ),
    (
        "taylor_test at an integer θ",
        lambda: sg.adjoint.taylor_test(lambda t: t**2, 1, 2),
        TypeError,
        "pass e.g. 1.0 instead of 1",
    ),
    (
        "optimize to a checkpoint no file system takes (a name too long), before the run",
        lambda: sg.optimize(
            noisy_square,
            1.0,
            KEY,
            optimizer=optax.sgd(0.1),
            steps=5,
            n_samples=2,
            method=sg.Pathwise(),
            checkpoint="x" * 300 + ".eqx",
        ),  # fmt: skip
        ValueError,
        "cannot write there (File name too long)",
    ),
    (
        "taylor_test of a vector-valued f",
        lambda: sg.adjoint.taylor_test(lambda t: jnp.stack([t, t**2]), 1.0, 1.0),
        ValueError,
        "not a scalar",
    ),
]


@pytest.mark.parametrize(
    "call, error, words", [row[1:] for row in CHECKER_ERRORS], ids=[r[0] for r in CHECKER_ERRORS]
)
def test_checker_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
