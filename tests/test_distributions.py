"""Every family in `simgrad.random`'s registry, held to one contract (STYLE.md item 9).

One row per family: how to draw it, a statistic with a closed-form expectation (moments
E[X], E[X²], a tail probability P(X > c) for the discrete ones), and one invalid value per
constrained parameter. Which parameters each estimator may differentiate is read from the
family's record (pathwise: continuous draws; the score function: every parameter that does
not move the support; stochastic triples: the parameters its proposal perturbs). All rows
run in ONE simulator per estimator and dtype — each family has its own key and its own θ
entries, so every entry of the gradient checks one family against the derivative of its
closed form, at 4 standard errors. A new family is one record and one row here.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from jax.scipy.special import gammaln, ndtr

import simgrad as sg
from simgrad._engine import estimate
from simgrad._src.program import output_depends_on
from simgrad._src.program.sites import DISTRIBUTIONS

R = sg.random
ESTIMATORS = {
    "pathwise": sg.Pathwise(),
    "score": sg.ScoreFunction(baseline="loo"),
    "hybrid": sg.Hybrid(),
    "triples": sg.StochasticTriples(),
}
# Compiling the samplers dominates this file's time (a gamma-based family costs 2-3 s of
# XLA compilation per estimator), so each estimator runs in one dtype and every family
# meets both: continuous ones through pathwise (float64) and score (float32), discrete ones
# through score and hybrid (float32) and triples (float64). That every estimator keeps
# either dtype is tests/estimators/test_contract.py's job. Hybrid differentiates a
# continuous draw exactly as Pathwise does (unscored, by AD): one continuous row checks
# that it mixes the two.
DTYPES = {"pathwise": jnp.float64, "score": jnp.float32, "hybrid": jnp.float32,
          "triples": jnp.float64}  # fmt: skip
HYBRID_CONTINUOUS = ("normal",)
N = 2**14


class Row(NamedTuple):
    draw: Callable  # (key, **params) -> x
    params: dict  # parameter values (θ entries where the estimator may differentiate them)
    stat: Callable  # x -> scalar
    mean: Callable  # params -> E[stat(X)], in closed form
    invalid: dict  # parameter -> an invalid value (the others as in ``params``)
    family: str | None = None  # the record, when it differs from the row's name


def _pmf_sum(pmf, ks):
    return sum(pmf(k) for k in ks)


def _tn_moments(lower, upper, loc, scale):
    a, b = (lower - loc) / scale, (upper - loc) / scale
    phi = lambda z: jnp.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = ndtr(b) - ndtr(a)
    m = (phi(a) - phi(b)) / z
    var = scale**2 * (1 + (a * phi(a) - b * phi(b)) / z - m**2)
    mean = loc + scale * m
    return mean, var + mean**2


def _binomial_tail(n, p, c):  # P(X > c)
    return _pmf_sum(lambda k: math.comb(n, k) * p**k * (1 - p) ** (n - k), range(c + 1, n + 1))


def _nb_pmf(k, n, p):
    return jnp.exp(gammaln(k + n) - gammaln(n) - math.lgamma(k + 1)) * p**n * (1 - p) ** k


CAT_MASK = np.array([True, False, True, True, False])
CAT_VALUES = np.array([0.5, 50.0, -1.0, 2.0, 80.0])  # bait where the mask forbids
PROB_MASK = np.array([1.0, 1.0, 0.0, 1.0])
PROB_VALUES = np.array([1.0, -0.5, 30.0, 0.7])


def _masked_logits(logits):
    return jnp.where(CAT_MASK, logits, -jnp.inf)


def _masked(probs):
    return probs * jnp.asarray(PROB_MASK, probs.dtype)


def _above(x, c):
    return (x > c).astype(x.dtype)


def _take(values, x):
    return jnp.take(jnp.asarray(values, x.dtype), x.astype(jnp.int32), axis=-1)


ROWS = {
    # --- continuous ---
    "normal": Row(
        R.normal,
        dict(loc=0.7, scale=1.3),
        lambda x: x + 0.2 * x**2,
        lambda p: p["loc"] + 0.2 * (p["loc"] ** 2 + p["scale"] ** 2),
        dict(scale=-1.0),
    ),
    "lognormal": Row(
        R.lognormal,
        dict(mu=0.1, sigma=0.4),
        lambda x: x + 0.2 * x**2,
        lambda p: (
            jnp.exp(p["mu"] + p["sigma"] ** 2 / 2)
            + 0.2 * jnp.exp(2 * p["mu"] + 2 * p["sigma"] ** 2)
        ),
        dict(sigma=0.0),
    ),
    "uniform": Row(
        R.uniform,
        dict(minval=-0.5, maxval=1.5),
        lambda x: x + 0.5 * x**2,
        lambda p: (
            (p["minval"] + p["maxval"]) / 2
            + 0.5 * (p["minval"] ** 2 + p["minval"] * p["maxval"] + p["maxval"] ** 2) / 3
        ),
        dict(maxval=-0.5),
    ),
    "exponential": Row(
        R.exponential,
        dict(rate=1.5),
        lambda x: x + 0.2 * x**2,
        lambda p: 1 / p["rate"] + 0.4 / p["rate"] ** 2,
        dict(rate=0.0),
    ),
    "gamma": Row(
        R.gamma,
        dict(a=2.5, rate=1.7),
        lambda x: x + 0.2 * x**2,
        lambda p: p["a"] / p["rate"] + 0.2 * p["a"] * (p["a"] + 1) / p["rate"] ** 2,
        dict(a=-1.0, rate=0.0),
    ),
    "beta": Row(
        R.beta,
        dict(a=1.5, b=2.5),
        lambda x: x + x**2,
        lambda p: (
            p["a"] / (p["a"] + p["b"])
            + p["a"] * (p["a"] + 1) / ((p["a"] + p["b"]) * (p["a"] + p["b"] + 1))
        ),
        dict(a=0.0, b=-2.0),
    ),
    "dirichlet": Row(
        R.dirichlet,
        dict(alpha=np.array([1.2, 0.8, 2.0])),
        lambda x: x[0] + 2 * x[1] + x[0] ** 2,
        lambda p: (
            (a := p["alpha"])[0] / (s := a.sum()) + 2 * a[1] / s + a[0] * (a[0] + 1) / (s * (s + 1))
        ),
        dict(alpha=np.array([1.0, 0.0, 1.0])),
    ),
    "t": Row(
        R.t,
        dict(df=9.0, loc=0.3, scale=0.8),
        lambda x: x + 0.2 * x**2,
        lambda p: p["loc"] + 0.2 * (p["loc"] ** 2 + p["scale"] ** 2 * p["df"] / (p["df"] - 2)),
        dict(df=0.0, scale=-1.0),
    ),
    "laplace": Row(
        R.laplace,
        dict(loc=0.2, scale=0.7),
        lambda x: x + 0.2 * x**2,
        lambda p: p["loc"] + 0.2 * (p["loc"] ** 2 + 2 * p["scale"] ** 2),
        dict(scale=0.0),
    ),
    "weibull_min": Row(
        R.weibull_min,
        dict(scale=1.2, concentration=1.8),
        lambda x: x + 0.2 * x**2,
        lambda p: (
            p["scale"] * jnp.exp(gammaln(1 + 1 / p["concentration"]))
            + 0.2 * p["scale"] ** 2 * jnp.exp(gammaln(1 + 2 / p["concentration"]))
        ),
        dict(scale=-1.0, concentration=0.0),
    ),
    "truncated_normal": Row(
        R.truncated_normal,
        dict(lower=-0.5, upper=1.2, loc=0.3, scale=0.9),
        lambda x: x + x**2,
        lambda p: sum(_tn_moments(p["lower"], p["upper"], p["loc"], p["scale"])),
        dict(upper=-0.5, scale=0.0),
    ),
    "multivariate_normal": Row(
        R.multivariate_normal,
        dict(loc=np.array([0.3, -0.2]), scale_tril=np.array([[1.0, 0.0], [0.4, 0.8]])),
        lambda x: x[0] + 0.5 * x[1] + 0.3 * x[0] * x[1],
        lambda p: (
            p["loc"][0]
            + 0.5 * p["loc"][1]
            + 0.3 * (p["loc"][0] * p["loc"][1] + p["scale_tril"][0, 0] * p["scale_tril"][1, 0])
        ),
        dict(scale_tril=np.array([[1.0, 0.0], [0.4, -0.8]])),
    ),
    # --- discrete ---
    "bernoulli": Row(R.bernoulli, dict(p=0.35), lambda x: x, lambda p: p["p"], dict(p=1.5)),
    "categorical": Row(
        lambda key, logits: R.categorical(key, _masked_logits(logits)),
        dict(logits=np.array([0.2, 0.9, -0.4, 0.5, 0.1])),
        lambda x: _take(CAT_VALUES, x),
        lambda p: jnp.sum(jax.nn.softmax(_masked_logits(p["logits"])) * CAT_VALUES),
        dict(logits=np.array([np.nan, 0.0, 0.0, 0.0, 0.0])),
    ),
    "categorical_probs": Row(
        lambda key, probs: R.categorical(key, probs=_masked(probs)),
        dict(probs=np.array([0.3, 0.5, 0.2, 0.6])),
        lambda x: _take(PROB_VALUES, x),
        lambda p: jnp.sum(p["probs"] * PROB_MASK * PROB_VALUES) / jnp.sum(p["probs"] * PROB_MASK),
        dict(probs=np.array([0.3, -0.5, 0.2, 0.6])),
    ),
    "poisson": Row(
        R.poisson,
        dict(rate=2.3),
        lambda x: x + 0.2 * x**2 + _above(x, 2),
        lambda p: (r := p["rate"]) + 0.2 * (r + r**2) + 1 - jnp.exp(-r) * (1 + r + r**2 / 2),
        dict(rate=-1.0),
    ),
    "binomial": Row(
        lambda key, p: R.binomial(key, 8.0, p),
        dict(p=0.4),
        lambda x: x + 0.1 * x**2 + _above(x, 3),
        lambda p: 8 * (q := p["p"]) + 0.1 * (8 * q * (1 - q) + 64 * q**2) + _binomial_tail(8, q, 3),
        dict(p=-0.1),
    ),
    "negative_binomial": Row(
        R.negative_binomial,
        dict(n=2.5, p=0.45),
        lambda x: x + 0.1 * x**2 + _above(x, 2),
        lambda p: (
            (m := p["n"] * (1 - p["p"]) / p["p"])
            + 0.1 * (m / p["p"] + m**2)
            + 1
            - _pmf_sum(lambda k: _nb_pmf(k, p["n"], p["p"]), range(3))
        ),
        dict(n=0.0, p=0.0),
    ),
    "geometric": Row(
        R.geometric,
        dict(p=0.3),
        lambda x: 0.3 * x + 0.05 * x**2 + _above(x, 3),
        lambda p: 0.3 / (q := p["p"]) + 0.05 * (2 - q) / q**2 + (1 - q) ** 3,
        dict(p=0.0),
    ),
    "multinomial": Row(
        lambda key, n, probs: R.multinomial(key, n, _masked(probs)),
        dict(n=6.0, probs=np.array([0.2, 0.5, 0.3, 0.4])),
        lambda x: jnp.sum(x * jnp.asarray(PROB_VALUES, x.dtype)) + 0.1 * x[0] * x[1],
        lambda p: (
            6 * jnp.sum((q := _masked(p["probs"]) / jnp.sum(_masked(p["probs"]))) * PROB_VALUES)
            + 0.1 * 30 * q[0] * q[1]
        ),
        dict(n=2.5, probs=np.array([0.0, 0.0, 0.0, 0.0])),
    ),
    "randint": Row(
        R.randint,
        dict(minval=-1.0, maxval=4.0),
        lambda x: x + 0.1 * x**2,
        lambda p: 1.0 + 0.1 * 3.0,  # {-1, …, 3}: E X = 1, E X² = 3
        dict(minval=0.5, maxval=-1.0),
    ),
    # binomial's n and randint's bounds are counts: every estimator's derivative is zero
    "counts": Row(
        lambda key, n, minval, maxval: (
            R.binomial(key, n, 0.4) + R.randint(jax.random.fold_in(key, 1), minval, maxval)
        ),
        dict(n=5.0, minval=-1.0, maxval=4.0),
        lambda x: x + 0.1 * x**2,
        # X = B + U, B ~ Bin(5, 0.4), U uniform on {-1, …, 3}: E X = 2 + 1, E X² = E B² + 2·2·1 + 3
        lambda p: jnp.asarray(3.0 + 0.1 * (5 * 0.4 * 0.6 + 4.0 + 4.0 + 3.0)),
        {},
        family="randint",
    ),
    "choice": Row(
        lambda key, a, p: R.choice(key, a, p=p),
        dict(a=np.array([1.0, 2.5, -0.5]), p=np.array([0.2, 0.5, 0.3])),
        lambda x: x,
        lambda p: jnp.sum(p["a"] * p["p"]) / jnp.sum(p["p"]),
        {},
        family="categorical_probs",
    ),
}


def claimed(method: str, row: Row, name: str) -> list[str]:
    """The parameters of ``row`` that ``method`` differentiates, read from the record."""
    if name == "choice":  # a's values enter pathwise; p through the categorical draw
        return {"pathwise": ["a"]}.get(method, ["a", "p"])
    if name == "counts":
        return list(row.params)
    d = DISTRIBUTIONS[row.family or name]
    free = [p for p in d.params if not p.count]
    if method == "pathwise":
        return [p.name for p in free] if d.reparameterised else []
    if method == "score":
        return [p.name for p in free if not p.moves_support]
    if method == "hybrid":
        return [p.name for p in free] if not d.reparameterised or name in HYBRID_CONTINUOUS else []
    if d.reparameterised:  # triples on continuous draws are forward-mode AD: tested apart
        return []
    return [p.name for p in free if p.name in d.proposal_params]


def test_every_family_has_a_row():
    assert {row.family or name for name, row in ROWS.items()} == set(DISTRIBUTIONS)
    assert set(R.__all__) <= set(ROWS)  # and every public draw


def _cast(tree, dtype):
    return jax.tree.map(lambda v: jnp.asarray(v, dtype), tree)


def _simulator(method: str):
    """One simulator drawing every family the estimator claims (a parameter of it in θ)."""
    theta = {}
    for name, row in ROWS.items():
        names = claimed(method, row, name)
        if names:
            theta[name] = {k: row.params[k] for k in names}

    def sim(th, key):
        dtype = jax.tree.leaves(th)[0].dtype
        keys = jax.random.split(key, len(th))
        total = jnp.zeros((), dtype)
        for k, (name, params) in zip(keys, th.items(), strict=True):
            row = ROWS[name]
            params = {**_cast(row.params, dtype), **params}
            total = total + row.stat(row.draw(k, **params)).astype(dtype)
        return total

    return sim, theta


SIMULATORS = {method: _simulator(method) for method in ESTIMATORS}


@pytest.mark.parametrize("method", ESTIMATORS)
def test_unbiased_for_every_family_it_claims(method, key):
    sim, theta = SIMULATORS[method]
    dtype = DTYPES[method]
    est = sg.gradient(sim, _cast(theta, dtype), key, method=ESTIMATORS[method], n_samples=N)
    rounding = 0 if dtype == jnp.float64 else 1e-4
    # the value: every family's draws have the right moments
    value = sum(float(ROWS[name].mean(_cast(ROWS[name].params, jnp.float64))) for name in theta)
    assert abs(float(est.value) - value) <= 4 * float(est.value_stderr) + rounding * value
    failures = []
    for name, params in theta.items():
        row = ROWS[name]
        full = lambda p, row=row: row.mean({**_cast(row.params, jnp.float64), **p})  # noqa: E731
        exact = jax.grad(full)(_cast(params, jnp.float64))
        for p in params:
            got, se = np.asarray(est.grad[name][p]), np.asarray(est.grad_stderr[name][p])
            assert got.dtype == dtype
            want = np.asarray(exact[p])
            if np.any(np.abs(got - want) > 4 * se + rounding * (1 + np.abs(want))):
                failures.append(f"{name}.{p}: {got} ± {se}, exact {want}")
    assert not failures, failures


@pytest.mark.parametrize("name", [n for n, d in DISTRIBUTIONS.items() if d.discrete])
def test_discrete_draws_have_no_pathwise_derivative(name, key):
    # Structurally: the draw's tangent is a symbolic zero (its sampler stops gradients).
    row = ROWS[name]
    draw = lambda params: row.stat(row.draw(key, **params))  # noqa: E731
    assert output_depends_on(draw, (_cast(row.params, jnp.float64),)) == [False]


# --- log-probabilities: the right density, finite gradients at the edges ------------------

LOG_PROB_CASES = {
    "normal": ([-1.0, 0.3, 2.0], (0.5, 1.5), st.norm(0.5, 1.5).logpdf),
    "lognormal": ([0.2, 1.0, 3.0], (0.1, 0.5), st.lognorm(0.5, scale=math.exp(0.1)).logpdf),
    "uniform": ([0.2, 1.0, 3.0], (0.0, 4.0), st.uniform(0, 4).logpdf),
    "exponential": ([0.2, 1.0, 3.0], (2.0,), st.expon(scale=0.5).logpdf),
    "gamma": ([0.2, 1.0, 3.0], (2.5, 2.0), st.gamma(2.5, scale=0.5).logpdf),
    "beta": ([0.1, 0.5, 0.95], (1.5, 2.5), st.beta(1.5, 2.5).logpdf),
    "t": ([-2.0, 0.3, 4.0], (4.5, 0.3, 1.2), st.t(4.5, 0.3, 1.2).logpdf),
    "laplace": ([-2.0, 0.3, 4.0], (0.3, 1.2), st.laplace(0.3, 1.2).logpdf),
    "weibull_min": ([0.2, 1.0, 3.0], (1.2, 1.8), st.weibull_min(1.8, scale=1.2).logpdf),
    "truncated_normal": (
        [-0.4, 0.3, 1.1],
        (-0.5, 1.2, 0.3, 0.9),
        st.truncnorm((-0.5 - 0.3) / 0.9, (1.2 - 0.3) / 0.9, 0.3, 0.9).logpdf,
    ),
    "bernoulli": ([0.0, 1.0], (0.3,), st.bernoulli(0.3).logpmf),
    "poisson": ([0.0, 1.0, 7.0], (2.5,), st.poisson(2.5).logpmf),
    "binomial": ([0.0, 3.0, 9.0], (9.0, 0.3), st.binom(9, 0.3).logpmf),
    "negative_binomial": ([0.0, 3.0, 9.0], (2.5, 0.4), st.nbinom(2.5, 0.4).logpmf),
    "geometric": ([1.0, 3.0, 9.0], (0.3,), st.geom(0.3).logpmf),
    "randint": ([-1.0, 0.0, 3.0], (-1.0, 4.0), st.randint(-1, 4).logpmf),
    "categorical": (
        [0.0, 2.0],
        (np.array([0.1, -1.0, 2.0]),),
        lambda x: np.log(st.rv_discrete(values=([0, 1, 2], _softmax([0.1, -1.0, 2.0]))).pmf(x)),
    ),
    "categorical_probs": (
        [0.0, 2.0],
        (np.array([1.0, 0.0, 3.0]),),
        lambda x: np.log(np.array([0.25, 0.0, 0.75])[np.asarray(x, int)]),
    ),
}


def _softmax(z):
    z = np.exp(np.asarray(z) - np.max(z))
    return z / z.sum()


@pytest.mark.parametrize("name", LOG_PROB_CASES)
def test_log_prob_matches_scipy(name):
    x, params, reference = LOG_PROB_CASES[name]
    x = np.asarray(x)
    got = DISTRIBUTIONS[name].log_prob(jnp.asarray(x), *map(jnp.asarray, params))
    np.testing.assert_allclose(got, reference(x), rtol=1e-10)


def test_multivariate_log_probs_match_scipy():
    d = DISTRIBUTIONS
    x = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    alpha = np.array([1.2, 0.8, 2.0])
    np.testing.assert_allclose(
        d["dirichlet"].log_prob(jnp.asarray(x), jnp.asarray(alpha)),
        [st.dirichlet(alpha).logpdf(xi) for xi in x],
        rtol=1e-10,
    )
    loc, tril = np.array([0.3, -0.2]), np.array([[1.0, 0.0], [0.4, 0.8]])
    y = np.array([[0.1, 0.2], [-1.0, 2.0]])
    np.testing.assert_allclose(
        d["multivariate_normal"].log_prob(jnp.asarray(y), jnp.asarray(loc), jnp.asarray(tril)),
        st.multivariate_normal(loc, tril @ tril.T).logpdf(y),
        rtol=1e-10,
    )
    counts, probs = np.array([[1.0, 3.0, 2.0], [0.0, 6.0, 0.0]]), np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(
        d["multinomial"].log_prob(jnp.asarray(counts), 6.0, jnp.asarray(2 * probs)),
        st.multinomial(6, probs).logpmf(counts),
        rtol=1e-10,
    )


# (family, x, parameters): parameters on the edge of their range, x a value that occurs.
EDGES = [
    ("poisson", 0.0, (0.0,)),
    ("bernoulli", 0.0, (0.0,)),
    ("bernoulli", 1.0, (1.0,)),
    ("binomial", 0.0, (4.0, 0.0)),
    ("binomial", 4.0, (4.0, 1.0)),
    ("geometric", 1.0, (1.0,)),
    ("negative_binomial", 0.0, (2.5, 1.0)),
    ("categorical", 0.0, (np.array([0.3, -np.inf, 1.0]),)),
    ("categorical_probs", 0.0, (np.array([0.3, 0.0, 1.0]),)),
    ("multinomial", np.array([2.0, 0.0, 1.0]), (3.0, np.array([0.3, 0.0, 1.0]))),
    ("truncated_normal", 0.9, (-np.inf, 1.0, 0.3, 0.8)),  # an infinite bound
    ("truncated_normal", 0.9, (0.5, np.inf, 0.3, 0.8)),
]


@pytest.mark.parametrize("name, x, params", EDGES)
def test_log_prob_gradient_is_finite_at_the_edges(name, x, params):
    d = DISTRIBUTIONS[name]
    params = [jnp.asarray(p) for p in params]
    value, grads = jax.value_and_grad(
        lambda ps: jnp.sum(d.log_prob(jnp.asarray(x), *ps)), allow_int=True
    )(params)
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))), (name, grads)


# --- invalid parameters: named, with the valid range --------------------------------------


INVALID = [(name, p, v) for name, row in ROWS.items() for p, v in row.invalid.items()]


@pytest.mark.parametrize("name, param, bad", INVALID)
def test_invalid_parameter_is_named_with_its_valid_range(name, param, bad, key):
    row = ROWS[name]
    constraint = next(p.valid for p in DISTRIBUTIONS[row.family or name].params if p.name == param)
    params = {**row.params, param: bad}
    with pytest.raises(ValueError) as error:
        row.draw(key, **params)
    message = str(error.value)
    assert f"{param} must be {constraint.text}" in message, message
    assert f"got {param}=" in message


@pytest.mark.parametrize("name", ["geometric", "categorical_probs", "truncated_normal"])
def test_invalid_traced_parameter_fails_at_run_time(name, key):
    row = ROWS[name]
    param, bad = next(iter(row.invalid.items()))
    f = jax.jit(lambda v: row.draw(key, **{**row.params, param: v}))
    f(jnp.asarray(row.params[param]))  # valid: runs
    with pytest.raises(Exception, match=f"{param} must be"):
        jax.block_until_ready(f(jnp.asarray(bad, jnp.float64)))


def _falling_rate(rate, key):
    """Three Poisson draws whose rate falls by 1 each step; the threshold would hide NaN."""

    def step(r, k):
        return r - 1.0, jnp.where(R.poisson(k, r) > 1, 1.0, 0.0)

    return jnp.sum(jax.lax.scan(step, rate, jax.random.split(key, 3))[1])


def _falling_scale(scale, key):
    def step(s, k):
        return s - 1.0, jnp.where(R.normal(k, 0.0, s) > 0, s, 0.0)

    return jnp.sum(jax.lax.scan(step, scale, jax.random.split(key, 3))[1])


@pytest.mark.parametrize(
    "sim, method, param",
    [(_falling_rate, sg.ScoreFunction(), "rate must be non-negative and finite"),
     (_falling_rate, sg.StochasticTriples(), "rate must be non-negative and finite"),
     (_falling_scale, sg.Pathwise(), "scale must be positive")],
)  # fmt: skip
def test_engine_names_an_invalid_traced_parameter(sim, method, param, key):
    # valid at every step from θ = 2.5; the third draw's parameter is -0.5 from θ = 1.5
    est = sg.gradient(sim, 2.5, key, method=method, n_samples=8)
    assert np.isfinite(float(est.grad))
    with pytest.raises(sg.SimulationError, match=param):
        sg.gradient(sim, 1.5, key, method=method, n_samples=8).raise_if_failed()


def test_engine_checks_draws_without_host_callbacks(key):
    # Host callbacks keep JAX from caching a compiled program on disk (issue 16): the
    # engine's run reads validity off the draw sites instead; a plain jit still raises.
    run = lambda t, k: estimate(_falling_rate, t, k, method=sg.ScoreFunction(), n_samples=8)  # noqa: E731
    assert "callback" not in str(jax.make_jaxpr(lambda t, k: run(t, k).status)(2.5, key))
    assert "callback" in str(jax.make_jaxpr(_falling_rate)(2.5, key))


# --- samplers off the beaten track ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_truncated_normal_far_in_a_tail(dtype, key):
    # jax.random.truncated_normal returns inf here in float32; the mean is φ(a)/(1 - Φ(a)).
    for lower in (4.0, 8.0):
        x = np.asarray(R.truncated_normal(key, lower, jnp.inf, shape=(4000,), dtype=dtype))
        assert np.all(np.isfinite(x)) and np.all(x >= lower)
        mean = st.norm.pdf(lower) / st.norm.sf(lower)
        assert abs(x.mean() - mean) < 4 * x.std() / math.sqrt(x.size)
    with pytest.raises(ValueError, match="upper must be greater than lower"):
        R.truncated_normal(key, 60.0, jnp.inf, dtype=dtype)


def test_multivariate_shapes_and_event_checks(key):
    shape = lambda f, *args, **kw: jax.eval_shape(lambda k: f(k, *args, **kw), key).shape  # noqa: E731
    assert shape(R.dirichlet, jnp.ones(3), shape=(4,)) == (4, 3)
    assert shape(R.multinomial, 5.0, jnp.ones((2, 3))) == (2, 3)
    assert shape(R.multivariate_normal, jnp.zeros((4, 2)), jnp.eye(2)) == (4, 2)
    assert shape(R.choice, jnp.ones((5, 2)), shape=(3,), axis=0) == (3, 2)
    assert shape(R.categorical, probs=jnp.ones((3, 4)), axis=0) == (4,)
    counts = R.multinomial(key, 7.0, jnp.array([0.2, 0.0, 0.8]), shape=(50,))
    assert np.all(counts.sum(-1) == 7) and np.all(counts[:, 1] == 0)
    with pytest.raises(ValueError, match="scale_tril must be square"):
        R.multivariate_normal(key, jnp.zeros(3), jnp.eye(2))
    with pytest.raises(ValueError, match="replace=False"):
        R.choice(key, 3, replace=False)
    with pytest.raises(ValueError, match=r"p must have shape \(3,\)"):
        R.choice(key, 3, p=jnp.ones(4) / 4)
    with pytest.raises(TypeError, match="exactly one of logits= and probs="):
        R.categorical(key)
