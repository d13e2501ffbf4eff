"""The program core: one interpreter, every control-flow primitive, the extension points."""

import jax
import jax.numpy as jnp
import jax.scipy.stats as st
import numpy as np
import pytest

import simgrad as sg
from simgrad._src.program import (
    Interpretation,
    LogProb,
    draw_sites,
    evaluate,
    find,
    output_depends_on,
    trace,
)

R = sg.random


class Identity(Interpretation):
    def initial_state(self):
        return ()


def run_logprob(fn, theta, key):
    program = trace(fn, theta, key)
    interp = LogProb(lambda d: True, jnp.float64)
    outs, (log_prob, _) = evaluate(program, [theta, key], interp)
    return outs, log_prob


def normal_logpdf(x, loc):  # the draws below are normal(loc=t, scale=1): cheap to compile
    return float(np.sum(st.norm.logpdf(np.asarray(x), loc)))


# Each simulator returns its draws, so the test can recompute log p independently.
def in_scan(t, key):
    _, xs = jax.lax.scan(lambda c, k: (c, R.normal(k, t)), 0.0, jax.random.split(key, 4))
    return xs


def in_fori(t, key):  # static bounds: lowered to scan
    def body(i, xs):
        return xs.at[i].set(R.normal(jax.random.fold_in(key, i), t))

    return jax.lax.fori_loop(0, 3, body, jnp.zeros(3))


def in_while(t, key):
    def body(c):
        i, xs = c
        return i + 1, xs.at[i].set(R.normal(jax.random.fold_in(key, i), t))

    return jax.lax.while_loop(lambda c: c[0] < 3, body, (0, jnp.zeros(3)))[1]


def in_fori_dynamic(t, key):  # traced bounds: lowered to while
    n = jnp.asarray(3)
    body = lambda i, xs: xs.at[i].set(R.normal(jax.random.fold_in(key, i), t))  # noqa: E731
    return jax.lax.fori_loop(0, n, body, jnp.zeros(3))


def in_cond(t, key):
    x = R.normal(key, t)
    k2 = jax.random.fold_in(key, 1)
    y = jax.lax.cond(x > 2, lambda: R.normal(k2, t), lambda: jnp.zeros_like(t))
    return jnp.stack([x, y])


def in_switch(t, key):
    x = R.normal(key, t)
    k2 = jax.random.fold_in(key, 1)
    branches = [lambda: jnp.zeros_like(t), lambda: R.normal(k2, t), lambda: R.normal(k2, 2 * t)]
    y = jax.lax.switch(jnp.clip(jnp.floor(x), 0, 2).astype(int), branches)
    return jnp.stack([x, y])


def in_nested_jit(t, key):
    inner = jax.jit(lambda t, k: jax.jit(lambda t, k: R.normal(k, t, shape=(2,)))(t, k))
    return inner(t, key)


def in_custom_jvp(t, key):
    @jax.custom_jvp
    def f(t):
        return R.normal(key, t, shape=(2,))

    f.defjvp(lambda p, tan: (f(p[0]), jnp.zeros(2)))
    return f(t)


def in_custom_vjp(t, key):
    @jax.custom_vjp
    def f(t):
        return R.normal(key, t, shape=(2,))

    f.defvjp(lambda t: (f(t), None), lambda _, g: (jnp.zeros_like(t),))
    return f(t)


def in_checkpoint(t, key):
    return jax.checkpoint(lambda t: R.normal(key, t, shape=(2,)))(t)


def in_vmap(t, key):
    return jax.vmap(lambda k: R.normal(k, t))(jax.random.split(key, 3))


def expected_in_switch(xs, t):
    x, y = xs
    lp = normal_logpdf(x, t)
    i = int(np.clip(np.floor(x), 0, 2))
    return lp if i == 0 else lp + normal_logpdf(y, t if i == 1 else 2 * t)


def expected_in_cond(xs, t):
    x, y = xs
    return normal_logpdf(x, t) + (normal_logpdf(y, t) if x > 2 else 0.0)


CASES = {
    "scan": (in_scan, None),
    "fori_loop": (in_fori, None),
    "fori_loop_dynamic": (in_fori_dynamic, None),
    "while_loop": (in_while, None),
    "cond": (in_cond, expected_in_cond),
    "switch": (in_switch, expected_in_switch),
    "nested_jit": (in_nested_jit, None),
    "custom_jvp": (in_custom_jvp, None),
    "custom_vjp": (in_custom_vjp, None),
    "checkpoint": (in_checkpoint, None),
    "vmap": (in_vmap, None),
}


@pytest.mark.parametrize("name", CASES)
def test_log_prob_accumulates_through(name, key):
    fn, expected = CASES[name]
    theta = jnp.asarray(2.5)
    program = trace(fn, theta, key)
    assert draw_sites(program), "the draw must be visible"
    for k in (key, jax.random.key(7)):
        (xs,), log_prob = jax.jit(lambda t, k: run_logprob(fn, t, k))(theta, k)
        np.testing.assert_array_equal(xs, fn(theta, k))  # same draws as the program
        want = normal_logpdf(xs, 2.5) if expected is None else expected(np.asarray(xs), 2.5)
        np.testing.assert_allclose(log_prob, want, rtol=1e-10)


@pytest.mark.parametrize("name", ["scan", "cond", "nested_jit", "vmap"])
def test_log_prob_is_differentiable_in_theta(name, key):
    fn, expected = CASES[name]
    score = jax.grad(lambda t: run_logprob(fn, t, key)[1])(2.5)
    (xs,), _ = run_logprob(fn, 2.5, key)
    h = 1e-6
    want = (
        (normal_logpdf(xs, 2.5 + h) - normal_logpdf(xs, 2.5 - h)) / (2 * h)
        if expected is None
        else (expected(np.asarray(xs), 2.5 + h) - expected(np.asarray(xs), 2.5 - h)) / (2 * h)
    )
    np.testing.assert_allclose(score, want, rtol=1e-6, atol=1e-6)


def test_identity_interpretation_reproduces_the_program(key):
    def sim(t, key):
        x = R.normal(key, t, 2.0, shape=(3,))
        y, _ = jax.lax.scan(lambda c, xi: (c * 0.5 + jnp.sin(xi), None), 0.0, x)
        return jax.lax.cond(y > 0, jnp.exp, jnp.cos, y) + jax.nn.relu(x).sum()

    program = trace(sim, 0.3, key)
    (out,), state = evaluate(program, [0.3, key], Identity())
    assert state == () and out == sim(0.3, key)
    g = jax.grad(lambda t: evaluate(program, [t, key], Identity())[0][0])(0.3)
    np.testing.assert_allclose(g, jax.grad(sim)(0.3, key), rtol=1e-12)


def test_sub_programs_without_sites_keep_their_custom_rules(key):
    @jax.custom_jvp
    def f(x):
        return x

    f.defjvp(lambda p, t: (p[0], 42.0 * t[0]))  # a deliberately unusual rule

    def sim(t, key):
        return f(t) + R.normal(key, t)

    program = trace(sim, 1.0, key)
    g = jax.grad(lambda t: evaluate(program, [t, key], Identity())[0][0])(1.0)
    assert g == 43.0


def test_wants_and_apply_replace_any_primitive_and_thread_state(key):
    class CountAndSoften(Interpretation):
        """Counts executed comparisons (through a loop) and turns ``gt`` into a sigmoid."""

        def initial_state(self):
            return jnp.zeros((), jnp.int32)

        def wants(self, eqn):
            return eqn.primitive.name == "gt"

        def apply(self, eqn, invals, state):
            a, b = invals
            return [jax.nn.sigmoid(a - b)], state + 1

    def sim(t, key):
        def body(c, x):
            return c + (x > t).astype(x.dtype), None

        return jax.lax.scan(body, 0.0, jnp.arange(5.0))[0]

    program = trace(sim, 2.0, key)
    (out,), count = evaluate(program, [2.0, key], CountAndSoften())
    assert count == 5
    np.testing.assert_allclose(out, jax.nn.sigmoid(jnp.arange(5.0) - 2.0).sum())


def test_dead_draws_are_marked_not_live(key):
    seen = []

    class Record(Identity):
        def draw(self, site, state):
            seen.append((site.distribution.name, site.live))
            return site.sample(), state

    def sim(t, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        _unused = R.bernoulli(k1, 0.5)
        pair = jax.jit(lambda t: (R.poisson(k3, t), R.geometric(k4, 0.5)))(t)
        return R.normal(k2, t) + pair[1]

    evaluate(trace(sim, 1.0, key), [1.0, key], Record())
    assert seen == [("bernoulli", False), ("poisson", False), ("geometric", True), ("normal", True)]


def test_find_reports_context(key):
    found = find(trace(in_cond, 2.5, key), lambda e: e.primitive.name == "cond")
    assert [ctx for _, ctx in found] == [()]
    assert [ctx for _, ctx in draw_sites(trace(in_cond, 2.5, key))] == [(), ("cond",)]
    assert [ctx for _, ctx in draw_sites(trace(in_scan, 2.5, key))] == [("scan",)]


def test_output_depends_on(key):
    def f(t):
        return t * 2.0, jnp.zeros(()), jax.lax.stop_gradient(t), jnp.sin(t) * 0.0

    assert output_depends_on(f, (1.0,)) == [True, False, False, True]


def test_draw_in_while_condition_is_refused(key):
    def sim(t, key):
        return jax.lax.while_loop(lambda c: c + R.normal(key, t) < 3.0, lambda c: c + 1.0, 0.0)

    with pytest.raises(NotImplementedError, match="condition of a while_loop"):
        evaluate(trace(sim, 1.0, key), [1.0, key], Identity())


def test_evaluate_checks_the_number_of_inputs(key):
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        evaluate(trace(in_scan, 1.0, key), [1.0], Identity())
