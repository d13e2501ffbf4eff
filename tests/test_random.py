"""simgrad.random: right distributions, right gradients, visible sites, clear errors."""

import math

import jax
import jax.numpy as jnp
import jax.scipy.stats as st
import numpy as np
import pytest

import simgrad as sg
from simgrad._src.program import draw_sites, trace
from simgrad._src.program.sites import DISTRIBUTIONS

R = sg.random
N = 20_000

# (draw, kwargs, exact mean, exact variance)
CASES = {
    "normal": (R.normal, dict(loc=1.0, scale=2.0), 1.0, 4.0),
    "lognormal": (R.lognormal, dict(mu=0.1, sigma=0.5), math.exp(0.1 + 0.125),
                  (math.exp(0.25) - 1) * math.exp(0.2 + 0.25)),
    "uniform": (R.uniform, dict(minval=-1.0, maxval=3.0), 1.0, 16 / 12),
    "exponential": (R.exponential, dict(rate=2.0), 0.5, 0.25),
    "gamma": (R.gamma, dict(a=2.5, rate=2.0), 1.25, 2.5 / 4),
    "bernoulli": (R.bernoulli, dict(p=0.3), 0.3, 0.21),
    "categorical": (R.categorical, dict(logits=jnp.log(jnp.array([0.2, 0.5, 0.3]))),
                    1.1, 0.2 * 1.1**2 + 0.5 * 0.1**2 + 0.3 * 0.9**2),
    "poisson": (R.poisson, dict(rate=3.5), 3.5, 3.5),
    "binomial": (R.binomial, dict(n=10.0, p=0.3), 3.0, 2.1),
    "geometric": (R.geometric, dict(p=0.25), 4.0, 0.75 / 0.0625),
}  # fmt: skip
DISCRETE = ["bernoulli", "categorical", "poisson", "binomial", "geometric"]


@pytest.mark.parametrize("name", CASES)
def test_mean_and_variance_match_the_distribution(name, key):
    draw, kwargs, mean, var = CASES[name]
    x = np.asarray(draw(key, **kwargs, shape=(N,)))
    assert x.shape == (N,) and x.dtype == np.float64
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / N)
    assert abs(x.var() - var) < 0.1 * var  # 4σ of the sample variance for these laws
    if name in DISCRETE:
        np.testing.assert_array_equal(x, np.round(x))  # floats holding integers


def test_log_probabilities_match_scipy():
    d = DISTRIBUTIONS
    x = jnp.array([0.0, 1.0, 3.0, 7.0])
    np.testing.assert_allclose(d["poisson"].log_prob(x, 2.5), st.poisson.logpmf(x, 2.5))
    np.testing.assert_allclose(d["binomial"].log_prob(x, 9.0, 0.3), st.binom.logpmf(x, 9, 0.3))
    np.testing.assert_allclose(d["bernoulli"].log_prob(x[:2], 0.3), st.bernoulli.logpmf(x[:2], 0.3))
    np.testing.assert_allclose(d["geometric"].log_prob(x[1:], 0.3), st.geom.logpmf(x[1:], 0.3))
    y = jnp.array([0.2, 1.0, 2.5])
    np.testing.assert_allclose(d["normal"].log_prob(y, 1.0, 2.0), st.norm.logpdf(y, 1.0, 2.0))
    np.testing.assert_allclose(d["exponential"].log_prob(y, 2.0), st.expon.logpdf(y, 0, 0.5))
    np.testing.assert_allclose(d["gamma"].log_prob(y, 2.5, 2.0), st.gamma.logpdf(y, 2.5, 0, 0.5))
    np.testing.assert_allclose(
        d["lognormal"].log_prob(y, 0.1, 0.5), st.norm.logpdf(jnp.log(y), 0.1, 0.5) - jnp.log(y)
    )
    np.testing.assert_allclose(d["uniform"].log_prob(y, 0.0, 4.0), jnp.full(3, -math.log(4)))
    logits = jnp.array([0.1, -1.0, 2.0])
    np.testing.assert_allclose(
        d["categorical"].log_prob(jnp.array([2.0, 0.0]), logits),
        jax.nn.log_softmax(logits)[jnp.array([2, 0])],
    )


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_draws_have_zero_pathwise_gradient(name, key):
    draw, kwargs, _, _ = CASES[name]
    pname, value = next((k, v) for k, v in kwargs.items() if k != "n")

    def f(v):
        return jnp.sum(draw(key, **{**kwargs, pname: v}, shape=(5,)))

    g = jax.grad(f)(jnp.asarray(value))
    assert np.all(np.asarray(g) == 0)


def test_continuous_draws_are_reparameterised(key):
    keys = jax.random.split(key, N)
    grad = lambda f: jax.jit(jax.vmap(jax.grad(f), (None, 0)))  # noqa: E731
    # d/dloc of loc + scale z is 1, d/dscale is z (mean 0)
    g = grad(lambda s, k: R.normal(k, 1.0, s))(2.0, keys)
    assert abs(np.mean(g)) < 4 * np.std(g) / math.sqrt(N)
    # gamma: E[x] = a / rate, so E[dx/da] = 1 / rate (implicit reparameterisation)
    dx_da = grad(lambda a, k: R.gamma(k, a, 2.0))(2.5, keys)
    assert abs(np.mean(dx_da) - 0.5) < 4 * np.std(dx_da) / math.sqrt(N)
    # exponential: E[x] = 1 / rate, so E[dx/drate] = -1 / rate²
    dx_dr = grad(lambda r, k: R.exponential(k, r))(2.0, keys)
    assert abs(np.mean(dx_dr) + 0.25) < 4 * np.std(dx_dr) / math.sqrt(N)


def test_dtype_follows_the_parameters(key):
    assert R.normal(key, jnp.float32(1.0)).dtype == jnp.float32
    assert R.poisson(key, jnp.float32(2.0), shape=(3,)).dtype == jnp.float32
    assert R.bernoulli(key, 0.5).dtype == jnp.float64  # Python numbers: the default float
    assert R.categorical(key, jnp.zeros(3, jnp.float32)).dtype == jnp.float32
    assert R.uniform(key, dtype=jnp.float32).dtype == jnp.float32


def test_shapes_broadcast(key):
    assert R.normal(key, jnp.zeros(3), 1.0).shape == (3,)
    assert R.normal(key, jnp.zeros(3), 1.0, shape=(2, 3)).shape == (2, 3)
    assert R.categorical(key, jnp.zeros((4, 3))).shape == (4,)
    assert R.categorical(key, jnp.zeros((3, 4)), axis=0).shape == (4,)
    with pytest.raises(ValueError, match="cannot hold"):
        R.normal(key, jnp.zeros(3), shape=(2,))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        R.normal(key, shape=(2.5,))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        R.poisson(key, 1.0, shape=(-1,))
    assert R.uniform(key, shape=4).shape == (4,)
    with pytest.raises(ValueError, match="do not broadcast"):
        R.normal(key, jnp.zeros(3), jnp.ones(2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda k: R.bernoulli(k, 1.5), r"p must be in \[0, 1\]"),
        (lambda k: R.bernoulli(k, jnp.array([0.5, -0.1])), r"p must be in \[0, 1\]"),
        (lambda k: R.poisson(k, -1.0), "rate must be non-negative"),
        (lambda k: R.exponential(k, 0.0), "rate must be positive"),
        (lambda k: R.normal(k, 0.0, -1.0), "scale must be positive"),
        (lambda k: R.gamma(k, -2.0), "must be positive"),
        (lambda k: R.geometric(k, 0.0), r"p must be in \(0, 1\]"),
        (lambda k: R.binomial(k, 2.5, 0.5), "whole number"),
        (lambda k: R.uniform(k, 1.0, 1.0), "maxval must be greater than minval"),
    ],
)
def test_invalid_parameters_raise_when_concrete(call, match, key):
    with pytest.raises(ValueError, match=match):
        call(key)


def test_invalid_parameters_raise_at_run_time_under_jit(key):
    f = jax.jit(lambda p: R.bernoulli(key, p))
    assert f(0.5) in (0.0, 1.0)
    with pytest.raises(Exception, match=r"p must be in \[0, 1\]"):
        jax.block_until_ready(f(1.5))
    g = jax.jit(jax.vmap(lambda r: R.poisson(key, r)))
    with pytest.raises(Exception, match="rate must be non-negative"):
        jax.block_until_ready(g(jnp.array([1.0, -2.0])))


def test_bad_key_and_parameter_types(key):
    with pytest.raises(TypeError, match="PRNG key"):
        R.normal(0)
    with pytest.raises(TypeError, match="PRNG key"):
        R.normal(jax.random.split(key, 2))
    with pytest.raises(TypeError, match="must be a number or an array"):
        R.poisson(key, "3")
    with pytest.raises(TypeError, match="dtype must be floating"):
        R.poisson(key, 3.0, dtype=jnp.int32)


def test_same_key_same_draw_and_legacy_keys(key):
    assert R.poisson(key, 4.0) == R.poisson(key, 4.0)
    raw = jax.random.PRNGKey(0)
    assert R.normal(raw).shape == ()


def _sim_with_every_control_flow(theta, key):
    k = jax.random.split(key, 6)
    total = R.normal(k[0], theta)  # top level
    total = total + jax.jit(lambda kk, t: R.poisson(kk, t))(k[1], theta)  # nested jit
    total = total + jax.vmap(lambda kk: R.bernoulli(kk, 0.3))(jax.random.split(k[2], 2)).sum()
    total, _ = jax.lax.scan(lambda c, kk: (c + R.exponential(kk, theta), None), total,
                            jax.random.split(k[3], 3))  # fmt: skip
    total = jax.lax.fori_loop(
        0, 2, lambda i, c: c + R.gamma(jax.random.fold_in(k[4], i), 2.0), total
    )
    total = jax.lax.cond(total > 0, lambda c: c + R.geometric(k[5], 0.5), lambda c: c, total)
    total = jax.lax.while_loop(lambda c: c[1] < 2, lambda c: (c[0] + R.uniform(k[5]), c[1] + 1),
                               (total, 0))[0]  # fmt: skip
    return total


def test_draws_work_and_are_visible_under_every_transformation(key):
    theta = jnp.asarray(1.5)
    keys = jax.random.split(key, 4)
    batched = jax.jit(jax.vmap(_sim_with_every_control_flow, (None, 0)))(theta, keys)
    one = jax.jit(_sim_with_every_control_flow)(theta, keys[1])
    assert batched.shape == (4,) and np.all(np.isfinite(batched))
    assert batched[1] == pytest.approx(float(one))  # same key, same draws
    sites = draw_sites(trace(_sim_with_every_control_flow, theta, key))
    names = sorted(eqn.params["name"].split("__")[1] for eqn, _ in sites)
    assert names == sorted(
        ["normal", "poisson", "bernoulli", "exponential", "gamma", "geometric", "uniform"]
    )
    contexts = {eqn.params["name"].split("__")[1]: ctx for eqn, ctx in sites}
    assert "scan" in contexts["exponential"] and "scan" in contexts["gamma"]
    assert "cond" in contexts["geometric"] and "while" in contexts["uniform"]
