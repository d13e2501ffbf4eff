"""sg.smooth relaxes θ-dependent hard operations through the program core; its bias is
measured by sg.smooth_sweep against the exact delta of the digital call."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import simgrad as sg
from simgrad._src.program import depends_on, find, trace


def test_depends_on_follows_theta_through_calls_loops_and_branches(key):
    def sim(theta, key):
        a = jnp.where(theta > 1.0, 1.0, 0.0)  # θ-dependent comparison (inside jit _where)
        b = jnp.floor(jax.random.normal(key))  # θ-free
        c = lax.fori_loop(0, 3, lambda i, c: c + theta * i, 0.0)  # through a scan carry
        d = lax.cond(b > 0, lambda x: x * 2.0, lambda x: x, theta)
        return a + b + c + d

    program = trace(sim, 1.0, key)
    tainted = depends_on(program, [True, False])
    marked = lambda name: [  # noqa: E731
        any(isinstance(v, type(program.jaxpr.invars[0])) and v in tainted for v in e.invars)
        for e, _ in find(program, lambda e: e.primitive.name == name)
    ]
    assert marked("gt") == [True, False]  # theta > 1 is; b > 0 is not
    assert marked("floor") == [False]
    assert all(v in tainted for v in program.jaxpr.outvars)
    with pytest.raises(ValueError, match="flags"):
        depends_on(program, [True])


def test_smooth_relaxes_only_theta_dependent_operations(key):
    def sim(theta, key):
        u = jax.random.uniform(key)
        hard_noise = jnp.floor(10 * u)  # θ-free: must stay exact
        return jnp.where(theta > 0.5, 1.0, 0.0) + jnp.maximum(theta, 0.2) + hard_noise

    soft = sg.smooth(sim, tau=0.1)
    u = jax.random.uniform(key)
    expected = jax.nn.sigmoid((0.6 - 0.5) / 0.1) + 0.1 * jnp.logaddexp(6.0, 2.0) + jnp.floor(10 * u)
    np.testing.assert_allclose(soft(0.6, key), expected, rtol=1e-12)
    assert float(jax.grad(sim)(0.6, key)) == 1.0  # the hard one only sees max's slope
    g = float(jax.grad(soft)(0.6, key))
    s = jax.nn.sigmoid(1.0)
    np.testing.assert_allclose(g, s * (1 - s) / 0.1 + jax.nn.sigmoid(4.0), rtol=1e-10)


def test_smooth_handles_logic_round_abs_clip_and_reductions(key):
    def sim(theta, key):
        inside = (theta > 0.0) & (theta < 1.0)
        v = jnp.sum(jnp.where(inside, 1.0, 0.0)) + jnp.round(theta).sum()
        return v + jnp.abs(theta).max() + jnp.clip(theta, 0.0, 0.5).min()

    theta = jnp.array([0.3, 1.7, -0.4])
    for tau, tol in [(1e-2, 0.1), (1e-4, 1e-3)]:
        np.testing.assert_allclose(sg.smooth(sim, tau)(theta, key), sim(theta, key), atol=tol)
    assert float(jnp.abs(jax.grad(sg.smooth(sim, 0.1))(theta, key)).sum()) > 0


def test_smooth_validates():
    with pytest.raises(ValueError, match="positive"):
        sg.smooth(lambda t, k: t, 0.0)
    with pytest.raises(TypeError, match="function"):
        sg.smooth(3.0, 0.1)
    with pytest.raises(ValueError, match="taus"):
        sg.smooth_sweep(lambda t, k: t, 1.0, jax.random.key(0), [], n_samples=4)


@pytest.fixture(scope="module")
def sweep():
    model = sg.models.DigitalCall()
    theta = model.default_theta()
    taus = [0.3, 0.1, 0.03, 0.01, 0.003]
    result = sg.smooth_sweep(model, theta, jax.random.key(7), taus, n_samples=2**15)
    return model, theta, result


def test_smoothed_pathwise_bias_shrinks_with_tau_on_the_digital_call(sweep):
    model, theta, r = sweep
    exact = model.exact_grad(theta)["S0"]
    error = np.abs(r.grad["S0"] - exact)
    # Large tau: the bias dominates and is many standard errors; it falls as tau falls.
    assert error[0] > 20 * r.grad_stderr["S0"][0]
    assert np.all(np.diff(error[:4]) < 0)
    # The pathwise gradient of the *hard* program is exactly zero (the reason to smooth).
    hard = sg.gradient(model, theta, jax.random.key(1), method=sg.Pathwise(), n_samples=64)
    assert float(hard.grad["S0"]) == 0.0


def test_at_the_best_tau_the_error_is_within_the_bias_variance_budget(sweep):
    model, theta, r = sweep
    exact = model.exact_grad(theta)
    b = r.best
    for name in ("S0", "sigma"):
        budget = abs(r.bias[name][b]) + 4 * r.bias_stderr[name][b]
        assert abs(r.grad[name][b] - exact[name]) < budget
    # and the best tau is a genuinely small one: its error is a tenth of the largest tau's
    assert abs(r.grad["S0"][b] - exact["S0"]) < 0.1 * abs(r.grad["S0"][0] - exact["S0"])


def test_sweep_plot_writes_a_figure(sweep, tmp_path):
    _, _, r = sweep
    r.plot(path=tmp_path / "bv.png", title="digital call")
    assert (tmp_path / "bv.png").stat().st_size > 1000
    assert math.isfinite(float(r.rmse["S0"][r.best]))


def test_smoothing_the_digital_call_is_the_hand_written_sigmoid_payoff(key):
    model = sg.models.DigitalCall()
    theta = model.default_theta()

    def by_hand(theta, key):
        S0, sigma = theta["S0"], theta["sigma"]
        log_st = sg.random.normal(key, jnp.log(S0) + (model.r - 0.5 * sigma**2), sigma)
        return math.exp(-model.r) * jax.nn.sigmoid((log_st - math.log(model.K)) / 0.05)

    soft = sg.smooth(model, 0.05)
    np.testing.assert_allclose(soft(theta, key), by_hand(theta, key), rtol=1e-14)
    g1, g2 = jax.grad(soft)(theta, key), jax.grad(by_hand)(theta, key)
    for name in theta:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-12)


def test_smooth_reaches_inside_loops_and_hardens_booleans_entering_them(key):
    def sim(theta, key):
        def body(c, x):  # a θ-dependent threshold inside a scan body
            return c + jnp.where(theta * x > 1.0, 1.0, 0.0), None

        count, _ = lax.scan(body, 0.0, jnp.arange(1.0, 6.0))
        flag = theta > 0.3  # a relaxed boolean entering a loop carry: hardened
        out = lax.fori_loop(
            0, 2, lambda i, c: (c[0] + jnp.where(c[1], 1.0, 0.0), c[1]), (count, flag)
        )
        return out[0]

    theta = 0.45
    soft = sg.smooth(sim, 0.01)
    np.testing.assert_allclose(soft(theta, key), sim(theta, key), atol=1e-3)
    # d/dθ Σ_x σ((θx - 1)/τ): only x = 2 (θx = 0.9) contributes visibly.
    s = 1 / (1 + np.exp(-(theta * np.arange(1.0, 6.0) - 1) / 0.01))
    expected = float(np.sum(s * (1 - s) * np.arange(1.0, 6.0) / 0.01))
    np.testing.assert_allclose(jax.grad(soft)(theta, key), expected, rtol=1e-10)


def test_any_estimator_runs_on_the_smoothed_simulator(key):
    # Score function and pathwise are both unbiased for the *smoothed* expectation: agree.
    model = sg.models.DigitalCall()
    theta = model.default_theta()
    soft = sg.smooth(model, 0.05)
    pw = sg.gradient(soft, theta, key, method=sg.Pathwise(), n_samples=2**14)
    sf = sg.gradient(soft, theta, key, method=sg.ScoreFunction(), n_samples=2**14)
    for name in theta:
        se = math.hypot(float(pw.grad_stderr[name]), float(sf.grad_stderr[name]))
        assert abs(float(pw.grad[name]) - float(sf.grad[name])) < 4 * se
