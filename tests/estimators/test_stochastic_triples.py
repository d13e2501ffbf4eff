"""Stochastic triples against exact answers: closed forms for the discrete families, exact
dynamic programming for the state-dependent walk, a moment recursion for birth–death, and
control flow on perturbed values (cond, where, while with a random trip count)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import simgrad as sg
from simgrad._src.program import evaluate, trace
from simgrad._src.program.sites import DISTRIBUTIONS
from simgrad._src.program.triples import Triple, Triples

N = 20_000


def within(est, exact, sigmas=4.0):
    error = np.abs(np.asarray(est.grad) - np.asarray(exact))
    return np.all(error <= sigmas * np.asarray(est.grad_stderr) + 1e-12)


def _categorical_exact(logits):
    f = lambda z: jnp.sum(jax.nn.softmax(z) * (jnp.arange(3.0) - 0.5) ** 2)  # noqa: E731
    return jax.grad(f)(logits)


CLOSED_FORMS = {
    # name: (sim, theta, exact gradient)
    "poisson x²": (lambda r, k: sg.random.poisson(k, r) ** 2, 3.0, 7.0),
    "poisson, rate falling": (lambda r, k: sg.random.poisson(k, 6.0 - r) ** 2, 3.0, -7.0),
    "bernoulli toy": (lambda p, k: (sg.random.bernoulli(k, p) - 0.45) ** 2, 0.3, 0.1),
    "bernoulli, p falling": (
        lambda p, k: (sg.random.bernoulli(k, 1 - p) - 0.45) ** 2,
        0.3,
        -0.1,
    ),
    # E[X²] = np(1 - p) + n²p²; n = 10
    "binomial x²": (lambda p, k: sg.random.binomial(k, 10.0, p) ** 2, 0.3, 10 * 0.4 + 200 * 0.3),
    "binomial, p falling": (
        lambda p, k: sg.random.binomial(k, 10.0, 1 - p) ** 2,
        0.3,
        -(10 * (1 - 1.4) + 200 * 0.7),
    ),
    # E[X²] = (2 - p)/p², derivative (p - 4)/p³
    "geometric x²": (lambda p, k: sg.random.geometric(k, p) ** 2, 0.3, (0.3 - 4) / 0.3**3),
    "geometric, p falling": (
        lambda p, k: sg.random.geometric(k, 1 - p) ** 2,
        0.3,
        -(0.7 - 4) / 0.7**3,
    ),
    "categorical": (
        lambda z, k: (sg.random.categorical(k, z) - 0.5) ** 2,
        jnp.array([0.1, 0.5, -0.3]),
        _categorical_exact(jnp.array([0.1, 0.5, -0.3])),
    ),
    # a continuous (pathwise) and a discrete draw together: E = θ², gradient 2θ
    "normal × poisson": (
        lambda t, k: sg.random.normal(jax.random.fold_in(k, 1), t, 1.0) * sg.random.poisson(k, t),
        1.5,
        3.0,
    ),
}


@pytest.mark.parametrize("case", CLOSED_FORMS)
def test_unbiased_against_closed_forms(case, key):
    sim, theta, exact = CLOSED_FORMS[case]
    est = sg.gradient(sim, theta, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, exact), (est.grad, est.grad_stderr, exact)


def test_gallery_toys(key):
    for model in (sg.models.PoissonToy(), sg.models.BernoulliToy(), sg.models.RandomWalk()):
        theta = model.default_theta()
        est = sg.gradient(model, theta, key, method=sg.StochasticTriples(), n_samples=8192)
        assert within(est, model.exact_grad(theta)), model.name


def test_state_dependent_walk_exact_dp_and_low_variance(key):
    # d/dp E[X_n²] by exact dynamic programming; per-sample std at or below StochasticAD's
    # published 0.99 (n = 10) and 3.42 (n = 50), and well below the score function's.
    for n, published in ((10, 0.99), (50, 3.42)):
        walk = sg.models.StateDependentWalk(n_steps=n)
        p = walk.default_theta()
        h = 1e-4  # the DP derivative is checked against a difference of the DP values
        fd = (walk.exact_value(p + h) - walk.exact_value(p - h)) / (2 * h)
        assert walk.exact_grad(p) == pytest.approx(fd, rel=1e-7)
        est = sg.gradient(walk, p, key, method=sg.StochasticTriples(), n_samples=8192)
        assert within(est, walk.exact_grad(p))
        assert abs(float(est.value) - walk.exact_value(p)) <= 4 * float(est.value_stderr)
        assert float(est.grad_std) < 1.05 * published
        score = sg.gradient(walk, p, key, method=sg.ScoreFunction(baseline="cv"), n_samples=8192)
        assert float(est.grad_std) < 0.6 * float(score.grad_std)


def test_walk_dp_matches_enumeration_of_all_paths():
    # An independent truth for the DP: all 2^8 step sequences, their probability and X_n².
    n, p = 8, 3.0
    walk = sg.models.StateDependentWalk(n_steps=n)

    def expectation(p):
        total = 0.0
        for steps in itertools.product((1, -1), repeat=n):
            x, prob = 0, 1.0
            for s in steps:
                up = math.exp(-x / p)
                prob *= up if s == 1 else 1 - up
                x += s
            total += prob * x**2
        return total

    h = 1e-5
    assert walk.exact_value(p) == pytest.approx(expectation(p), rel=1e-12)
    slope = (expectation(p + h) - expectation(p - h)) / (2 * h)
    assert walk.exact_grad(p) == pytest.approx(slope, rel=1e-7)


def test_birth_death_two_directions(key):
    model = sg.models.BirthDeath()
    theta = model.default_theta()
    est = sg.gradient(model, theta, key, method=sg.StochasticTriples(), n_samples=4096)
    assert est.grad.shape == (2,)
    assert within(est, model.exact_grad(theta))
    assert abs(float(est.value) - model.exact_value(theta)) <= 4 * float(est.value_stderr)


def test_pytree_theta_with_discrete_draws(key):
    def sim(theta, key):  # E = a + b·c, gradient (1, c, b)
        k1, k2 = jax.random.split(key)
        return sg.random.poisson(k1, theta["a"]) + theta["c"] * sg.random.poisson(k2, theta["b"])

    theta = {"a": 2.0, "b": 1.5, "c": 0.5}
    est = sg.gradient(sim, theta, key, method=sg.StochasticTriples(), n_samples=8192)
    for name, exact in (("a", 1.0), ("b", 0.5), ("c", 1.5)):
        assert abs(float(est.grad[name]) - exact) <= 4 * float(est.grad_stderr[name]) + 1e-12


# --- control flow on perturbed values ----------------------------------------------------


def test_cond_on_a_perturbed_value(key):
    def sim(p, key):  # E = p (3 + p) + (1 - p) p², gradient 3 + 2p + 2p - 3p²
        b = sg.random.bernoulli(key, p)
        return lax.cond(b > 0.5, lambda: 3.0 + p, lambda: p**2)

    p = 0.4
    est = sg.gradient(sim, p, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, 3 + 4 * p - 3 * p**2)


def test_cond_with_draws_inside_branches(key):
    def sim(p, key):  # heads: Poisson(4p); tails: 1. E = p·4p + (1 - p), gradient 8p - 1
        k1, k2 = jax.random.split(key)
        b = sg.random.bernoulli(k1, p)
        return lax.cond(b > 0.5, lambda: sg.random.poisson(k2, 4 * p), lambda: 1.0)

    p = 0.4
    est = sg.gradient(sim, p, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, 8 * p - 1)


def test_threshold_with_where(key):
    def sim(rate, key):  # P(X ≥ 3), derivative P(X = 2)
        return jnp.where(sg.random.poisson(key, rate) >= 3, 1.0, 0.0)

    rate = 2.0
    est = sg.gradient(sim, rate, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, math.exp(-rate) * rate**2 / 2)


def test_fori_loop_with_traced_bounds(key):
    def sim(rate, key):  # Σ of 5 Poisson(rate) squared: E = 5 rate + 25 rate², grad 5 + 50 rate
        n = jnp.asarray(5) + jnp.asarray(0) * jnp.int32(rate)  # traced trip count: a while loop

        def body(i, total):
            return total + sg.random.poisson(jax.random.fold_in(key, i), rate)

        return lax.fori_loop(0, n, body, jnp.zeros_like(rate)) ** 2

    rate = 1.0
    est = sg.gradient(sim, rate, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, 5 + 50 * rate)


def test_while_loop_whose_trip_count_depends_on_a_draw(key):
    def sim(p, key):  # trials until the first success: E = 1/p, gradient -1/p²
        def body(c):
            k, n, _ = c
            k, sub = jax.random.split(k)
            return k, n + 1, sg.random.bernoulli(sub, p)

        _, n, _ = lax.while_loop(lambda c: c[2] < 0.5, body, (key, 0.0, 0.0))
        return n

    p = 0.4
    est = sg.gradient(sim, p, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, -1 / p**2)


def test_draw_in_while_condition_is_refused_naming_the_loop(key):
    def sim(p, key):
        def cond(c):
            return sg.random.bernoulli(jax.random.fold_in(key, c.astype(jnp.int32)), p) < 0.5

        return lax.while_loop(cond, lambda c: c + 1, 0.0)

    with pytest.raises(NotImplementedError, match="while_loop"):
        sg.gradient(sim, 0.5, key, method=sg.StochasticTriples(), n_samples=4)


def test_no_discrete_draws_is_forward_mode(key):
    def sim(theta, key):
        return jnp.sum(jnp.sin(theta) * sg.random.normal(key, theta, 1.0))

    theta = jnp.array([0.3, -1.2])
    triples = sg.gradient(sim, theta, key, method=sg.StochasticTriples(), n_samples=64)
    forward = sg.gradient(sim, theta, key, method=sg.Pathwise(mode="forward"), n_samples=64)
    np.testing.assert_allclose(triples.grad, forward.grad, rtol=1e-12)


def test_interpretation_without_proposals_is_forward_mode_on_each_path(key):
    # With no proposals the alternative path is never created: alt == primal, weight 0,
    # and the tangent is the pathwise (forward-mode) derivative through scan and cond.
    def sim(theta, key):
        def step(x, k):
            b = sg.random.bernoulli(k, 0.5)
            return lax.cond(b > 0, lambda: x * theta, lambda: x + theta), None

        x, _ = lax.scan(step, theta, jax.random.split(key, 4))
        return x

    program = trace(sim, 0.7, key)
    interp = Triples(key, jnp.float64, propose=False)
    state = interp.initial_state()
    args = [Triple(jnp.asarray(0.7), jnp.asarray(1.0), None, state.tag)]
    args.append(Triple(key, None, None, state.tag))
    (out,), state = evaluate(program, args, interp, state)
    value, tangent = jax.jvp(lambda t: sim(t, key), (0.7,), (1.0,))
    np.testing.assert_allclose(out.primal, value, rtol=1e-12)
    np.testing.assert_allclose(out.tangent, tangent, rtol=1e-12)
    assert out.alt is None and float(state.weight) == 0.0  # nothing computed twice
    with_proposals = {name for name, d in DISTRIBUTIONS.items() if d.proposal is not None}
    assert with_proposals == {name for name, d in DISTRIBUTIONS.items() if d.discrete} - {"randint"}
