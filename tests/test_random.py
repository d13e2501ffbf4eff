"""simgrad.random: right gradients, visible sites, clear errors, shapes and dtypes.

Each family's moments, log-probability and estimators are held to the registry's contract
in tests/test_distributions.py."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import simgrad as sg
from simgrad._src.program import draw_distribution, draw_sites, trace
from simgrad.random._jax import JAX_SAMPLERS

R = sg.random
N = 20_000


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


def test_shape_and_dtype_are_keyword_only_everywhere():
    for name in R.__all__:
        parameters = inspect.signature(getattr(R, name)).parameters
        for arg in ("shape", "dtype"):
            if arg in parameters:
                assert parameters[arg].kind is inspect.Parameter.KEYWORD_ONLY, (name, arg)


@pytest.mark.parametrize(
    "call, slot, fix",
    [  # jax.random's habit: the shape second (normal, uniform, exponential, laplace) or
        # after jax's own parameters (lognormal's sigma, gamma's a, t's df)
        (lambda k: R.normal(k, (3,)), "loc", "sg.random.normal(key, shape=(3,))"),
        (lambda k: R.uniform(k, (3,)), "minval", "sg.random.uniform(key, shape=(3,))"),
        (lambda k: R.exponential(k, (3,)), "rate", "sg.random.exponential(key, shape=(3,))"),
        (lambda k: R.laplace(k, [2, 3]), "loc", "sg.random.laplace(key, shape=(2, 3))"),
        (lambda k: R.lognormal(k, 0.5, (3,)), "sigma", "sg.random.lognormal(key, mu, shape=(3,))"),
        (lambda k: R.gamma(k, 2.0, (3,)), "rate", "sg.random.gamma(key, a, shape=(3,))"),
        (lambda k: R.t(k, 5.0, (3,)), "loc", "sg.random.t(key, df, shape=(3,))"),
    ],
)
def test_a_shape_in_a_parameter_slot_is_refused(call, slot, fix, key):
    with pytest.raises(
        TypeError, match=rf"{slot}=.* is a (tuple|list): shape and dtype are keyword-only"
    ) as info:
        call(key)
    assert fix in str(info.value) and "unlike jax.random" in str(info.value)


def test_positional_shape_or_dtype_and_listed_values_are_refused(key):
    for call in (
        lambda: R.poisson(key, 2.0, (3,)),  # jax.random.poisson(key, lam, shape)
        lambda: R.normal(key, 0.0, 1.0, (3,)),
        lambda: R.exponential(key, 1.0, jnp.float32),
        lambda: R.randint(key, (3,), 0, 5),  # jax.random.randint(key, shape, minval, maxval)
        lambda: R.choice(key, 3, (2,)),  # jax.random.choice(key, a, shape)
        lambda: R.categorical(key, jnp.zeros(3), -1, (2,)),
    ):
        with pytest.raises(TypeError, match="positional argument"):
            call()
    # Values in a list or tuple are refused as jax.random refuses them: an array is meant.
    for call, slot in (
        (lambda: R.dirichlet(key, [1.0, 2.0]), "alpha"),
        (lambda: R.categorical(key, (0.0, 1.0)), "logits"),
        (lambda: R.categorical(key, probs=[0.5, 0.5]), "probs"),
        (lambda: R.choice(key, 2, p=[0.5, 0.5]), "p"),
        (lambda: R.multivariate_normal(key, [0.0, 0.0], jnp.eye(2)), "loc"),
    ):
        with pytest.raises(TypeError, match=rf"{slot}=.* is a .*np\.asarray"):
            call()


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


# --- jax.random's samplers as draw sites --------------------------------------------------

# sampler -> (a call, its law in scipy, the record's parameters for that call)
_JAX_CALLS = {
    "_normal": (lambda k: jax.random.normal(k, (3,)), scipy.stats.norm(), ()),
    "_uniform": (lambda k: jax.random.uniform(k, (3,), minval=1.0, maxval=2.5),
                 scipy.stats.uniform(1.0, 1.5), (1.0, 2.5)),
    "_exponential": (lambda k: jax.random.exponential(k, (3,)), scipy.stats.expon(), ()),
    "_laplace": (lambda k: jax.random.laplace(k, (3,)), scipy.stats.laplace(), ()),
    "_logistic": (lambda k: jax.random.logistic(k, (3,)), scipy.stats.logistic(), ()),
    "_gumbel": (lambda k: jax.random.gumbel(k, (3,)), scipy.stats.gumbel_r(), ()),
    "_gamma": (lambda k: jax.random.gamma(k, 2.5, (3,)), scipy.stats.gamma(2.5), (2.5,)),
    "_beta": (lambda k: jax.random.beta(k, 2.0, 3.0, (3,)), scipy.stats.beta(2.0, 3.0),
              (2.0, 3.0)),
    "_bernoulli": (lambda k: jax.random.bernoulli(k, 0.3, (3,)), scipy.stats.bernoulli(0.3),
                   (0.3,)),
    "_poisson": (lambda k: jax.random.poisson(k, 3.0, (3,)), scipy.stats.poisson(3.0), (3.0,)),
}  # fmt: skip


def test_every_listed_jax_sampler_is_exercised():
    assert set(_JAX_CALLS) == set(JAX_SAMPLERS)


@pytest.mark.parametrize("name", sorted(_JAX_CALLS))
def test_jax_random_samplers_are_draw_sites_with_their_true_law(name):
    """On the installed JAX each listed sampler traces as one site of its record, and the
    record's log-probability (and CDF, where it has one) is scipy's at the site's own draws."""
    call, law, params = _JAX_CALLS[name]
    program = jax.make_jaxpr(call)(jax.random.key(0))
    (site,) = draw_sites(program)
    record = draw_distribution(site[0])
    assert record is JAX_SAMPLERS[name]
    params = [jnp.asarray(p) for p in params]
    x = np.asarray(call(jax.random.key(1)))
    logpdf = law.logpmf(x) if record.discrete else law.logpdf(x)
    np.testing.assert_allclose(record.log_prob(jnp.asarray(x), *params), logpdf, rtol=1e-5)
    if record.cdf is not None:
        np.testing.assert_allclose(record.cdf(jnp.asarray(x), *params), law.cdf(x), rtol=1e-5)


def test_an_unlisted_jax_sampler_is_no_draw_site_and_the_score_function_says_so():
    def sim(theta, key):  # jax.random.cauchy is not listed: tan(π(U - 1/2)) inside
        return jnp.where(theta + jax.random.cauchy(key) > 0, 1.0, 0.0)

    sites = draw_sites(jax.make_jaxpr(sim)(0.0, jax.random.key(0)))
    assert [draw_distribution(eqn).name for eqn, _ in sites] == ["jax.random.uniform"]
    with pytest.raises(ValueError, match="would miss that jump"):
        sg.gradient(sim, 0.0, jax.random.key(0), method=sg.ScoreFunction(), n_samples=16)


@pytest.mark.parametrize(
    "sim, theta, exact",
    [
        # E[2·1{B} + p] = 3p: d/dp = 3
        (lambda p, k: jnp.where(jax.random.bernoulli(k, p), 2.0, 0.0) + p, 0.3, 3.0),
        # E[N²] = λ + λ²: d/dλ = 1 + 2λ
        (lambda lam, k: jax.random.poisson(k, lam).astype(float) ** 2, 2.0, 5.0),
    ],
    ids=["bernoulli", "poisson"],
)
def test_theta_inside_a_discrete_jax_random_draw_is_scored(sim, theta, exact):
    est = sg.gradient(sim, theta, jax.random.key(3), method=sg.Auto(), n_samples=2**14)
    assert abs(float(est.grad) - exact) <= 4.5 * float(est.grad_stderr)
    assert 0 < float(est.grad_stderr) < 0.05 * exact
