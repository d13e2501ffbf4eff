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
from simgrad._src.program.triples import Triple, Triples, _prune, _uniform

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


# --- stochastic pruning: one uniform per proposal -----------------------------------------


def test_one_uniform_prunes_with_the_law_of_a_keep_coin_and_a_pick():
    # Over a fine grid of u, candidate k replaces the current alternative (weight W) for a
    # share w_k / (W + Σw) of the u's, zero weights never; nothing to propose never wins.
    weights = jnp.array([0.2, 0.0, 0.5, 0.1, 0.0])
    m = 100_000
    grid = (jnp.arange(m, dtype=jnp.float64) + 0.5) / m
    for w in (0.0, 0.7):
        win, pick, merged = jax.vmap(lambda u, w=w: _prune(u, jnp.asarray(w), weights))(grid)
        shares = [float(jnp.mean(win & (pick == k))) for k in range(weights.size)]
        np.testing.assert_allclose(shares, weights / (w + 0.8), rtol=0, atol=2 / m)
        assert float(merged[0]) == pytest.approx(w + 0.8, rel=1e-15)
    assert not bool(_prune(jnp.asarray(0.0), jnp.asarray(0.7), jnp.zeros(3))[0])


def test_pruning_uniforms_are_uniform_and_independent_across_counters(key):
    # Block `counter` of a Threefry stream: in [0, 1), distinct, Kolmogorov–Smirnov and
    # lag-1 correlation at the 0.1 % level (fixed seed: deterministic), a seed of its own.
    seed = jax.random.bits(key, (2,), jnp.uint32)
    u = np.asarray(jax.vmap(lambda c: _uniform(seed, c))(jnp.arange(1, 4097, dtype=jnp.int32)))
    assert u.dtype == np.float64 and u.min() >= 0.0 and u.max() < 1.0
    assert len(np.unique(u)) == u.size
    ranked = np.sort(u)
    steps = np.arange(1, u.size + 1) / u.size
    assert np.max(np.maximum(steps - ranked, ranked - steps + 1 / u.size)) < 1.95 / 64
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 3.3 / 64
    other = jax.random.bits(jax.random.fold_in(key, 1), (2,), jnp.uint32)
    assert float(_uniform(other, jnp.int32(1))) != float(u[0])


def test_pruning_picks_among_a_vector_draws_candidates_and_across_steps(key):
    # Each step draws three Bernoullis at once (one site, three candidates) and f weighs
    # every draw differently: a pick not proportional to the weights, or a keep coin other
    # than w / (W + w), would be biased by O(1) against a standard error of ~0.04.
    coeff = jnp.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    slopes = jnp.arange(1.0, 4.0)

    def sim(theta, key):
        def step(total, inputs):
            c, k = inputs
            return total + jnp.sum(c * sg.random.bernoulli(k, jax.nn.sigmoid(theta * slopes))), None

        zero = jnp.zeros((), jnp.result_type(theta))
        return lax.scan(step, zero, (coeff, jax.random.split(key, 2)))[0]

    exact = jax.grad(lambda t: jnp.sum(coeff * jax.nn.sigmoid(t * slopes)))(0.3)
    est = sg.gradient(sim, 0.3, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, exact), (est.grad, est.grad_stderr, exact)


# --- categories that cannot occur: skipped over (StochasticAD.jl's test/triples.jl) ------


def _julia_categoricals(p):
    """StochasticAD.jl's categorical test cases (0-based here), as probabilities."""
    one = jnp.ones_like(p)
    return [
        jnp.stack([p**2, 1 - p**2]),
        jnp.stack([0 * p, p**2, 0 * p, 0 * p, 1 - p**2]),  # "check that 0's are skipped over"
        jnp.stack([0.1 * one, jnp.exp(p)]) / (0.1 + jnp.exp(p)),  # StochasticAD.jl issue #38
    ]


def _julia_f(x):  # their f(x) = x, (x + 1)², √(x + 1) on 1-based categories, summed
    return (x + 1) + (x + 2) ** 2 + jnp.sqrt(x + 2)


def _julia_cases(theta, key, draw):
    # theta[i]: p of case i; cases 0-2 at p, cases 3-5 at 1 - p (the other side of p).
    total = jnp.zeros((), theta.dtype)
    for i in range(6):
        p = theta[i] if i < 3 else 1 - theta[i]
        total = total + _julia_f(draw(jax.random.fold_in(key, i), _julia_categoricals(p)[i % 3]))
    return total


def _julia_exact(theta):
    total = 0.0
    for i in range(6):
        p = theta[i] if i < 3 else 1 - theta[i]
        probs = _julia_categoricals(p)[i % 3]
        total = total + jnp.sum(probs * _julia_f(jnp.arange(probs.size, dtype=theta.dtype)))
    return total


JULIA_DRAWS = {
    "probs": lambda key, probs: sg.random.categorical(key, probs=probs),
    "logits": lambda key, probs: sg.random.categorical(key, jnp.log(probs)),  # log 0 = -inf
}


@pytest.mark.parametrize("how", JULIA_DRAWS)
def test_zero_probability_categories_are_skipped_over(how, key):
    theta = jnp.array([0.45, 0.3, 0.6, 0.45, 0.3, 0.6])
    sim = lambda th, k: _julia_cases(th, k, JULIA_DRAWS[how])  # noqa: E731
    est = sg.gradient(sim, theta, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, jax.grad(_julia_exact)(theta)), (est.grad, jax.grad(_julia_exact)(theta))


def test_issue_example_categorical_with_zeros(key):
    # Categorical([0, p², 0, 0, 1 - p²]), f(k) = k: the derivative is 2p(1 - 4) = -2.7 at
    # p = 0.45; moving only to k ± 1 (into a category that cannot occur) gave 2p(3 - 4).
    def sim(p, key):
        return sg.random.categorical(key, probs=jnp.stack([0 * p, p**2, 0 * p, 0 * p, 1 - p**2]))

    for method in (sg.StochasticTriples(), sg.ScoreFunction()):
        est = sg.gradient(sim, 0.45, key, method=method, n_samples=N)
        assert within(est, -2.7), (method, est.grad, est.grad_stderr)


def test_probability_growing_from_zero_is_a_one_sided_derivative(key):
    # probs (0.5, θ, 0.5 - θ) at θ = 0: category 1 cannot occur yet, but mass flows into it
    # from category 2 as θ grows. Right derivative of E f: f(1) - f(2); of a multinomial's
    # E[N·v + N₀N₁]: n(v₁ - v₂) + n(n - 1)/2.
    v = jnp.array([1.0, 10.0, 3.0])

    def sim(theta, key):
        probs = jnp.stack([0.5 + 0 * theta, theta, 0.5 - theta])
        k1, k2 = jax.random.split(key)
        x = sg.random.categorical(k1, probs=probs)
        counts = sg.random.multinomial(k2, 4.0, probs)
        return v[x.astype(jnp.int32)] + jnp.sum(counts * v) + counts[0] * counts[1]

    est = sg.gradient(sim, 0.0, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, (10.0 - 3.0) + 4 * (10.0 - 3.0) + 4 * 3 / 2)


def test_nested_binomials(key):
    # StochasticAD.jl: Binomial(Binomial(10, p), p) ~ Binomial(10, p²); here E[X²].
    def sim(p, key):
        k1, k2 = jax.random.split(key)
        return sg.random.binomial(k2, sg.random.binomial(k1, 10.0, p), p) ** 2

    q = lambda p: p**2  # noqa: E731
    exact = jax.grad(lambda p: 10 * q(p) * (1 - q(p)) + 100 * q(p) ** 2)(0.6)
    est = sg.gradient(sim, 0.6, key, method=sg.StochasticTriples(), n_samples=N)
    assert within(est, exact)


# --- a masked-action policy (REINFORCE-style), against the exact sum over episodes -------

K, T = 5, 3
MASKS = jnp.array([[1, 0, 1, 1, 0], [1, 1, 0, 1, 0], [0, 1, 1, 0, 1]], bool)
REWARDS = jnp.array(
    [[1.0, 100.0, -0.5, 2.0, 100.0], [0.3, 1.5, 100.0, -1.0, 100.0], [100.0, 0.8, 2.5, 100.0, -0.7]]
)  # 100 where the action is masked: a draw that lands there is a large, visible bias


def _policy_logits(theta, state, mask):
    feature = state * jnp.arange(K, dtype=theta["w"].dtype)
    return jnp.where(mask, theta["logits"] + theta["w"] * feature, -jnp.inf)


def _episode(theta, key, how):
    def step(carry, inputs):
        state, total = carry
        mask, reward, k = inputs
        logits = _policy_logits(theta, state, mask)
        if how == "logits":
            action = sg.random.categorical(k, logits)
        else:
            action = sg.random.categorical(k, probs=jax.nn.softmax(logits))
        return (state + action / K, total + reward[action.astype(jnp.int32)]), None

    zero = jnp.zeros((), theta["w"].dtype)
    (_, total), _ = lax.scan(step, (zero, zero), (MASKS, REWARDS, jax.random.split(key, T)))
    return total


def _episode_exact(theta):
    actions = jnp.array(list(itertools.product(range(K), repeat=T)))  # every episode
    state, log_p, total = jnp.zeros(len(actions)), jnp.zeros(len(actions)), 0.0
    for t in range(T):
        logits = _policy_logits(theta, state[:, None], MASKS[t])
        log_p = (
            log_p + jnp.take_along_axis(jax.nn.log_softmax(logits), actions[:, t : t + 1], 1)[:, 0]
        )
        total = total + REWARDS[t, actions[:, t]]
        state = state + actions[:, t].astype(jnp.float64) / K
    return jnp.sum(jnp.exp(log_p) * total)


@pytest.mark.parametrize("how", ["logits", "probs"])
def test_masked_action_policy(how, key):
    theta = {"logits": jnp.array([0.2, -0.3, 0.5, 0.1, 0.4]), "w": jnp.asarray(0.7)}
    exact = jax.grad(_episode_exact)(theta)
    sim = lambda th, k: _episode(th, k, how)  # noqa: E731
    for method in (sg.StochasticTriples(), sg.ScoreFunction()):
        est = sg.gradient(sim, theta, key, method=method, n_samples=N)
        assert abs(float(est.value) - float(_episode_exact(theta))) <= 4 * float(est.value_stderr)
        for part in ("logits", "w"):
            error = np.abs(np.asarray(est.grad[part]) - np.asarray(exact[part]))
            assert np.all(error <= 4 * np.asarray(est.grad_stderr[part]) + 1e-12), (method, part)


def test_negative_binomial_n_depending_on_theta_is_refused(key):
    def sim(n, key):
        return sg.random.negative_binomial(key, n, 0.4)

    with pytest.raises(ValueError, match="parameter 'n' depends on theta.*ScoreFunction"):
        sg.gradient(sim, 2.5, key, method=sg.StochasticTriples(), n_samples=4)
