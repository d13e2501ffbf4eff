"""Finite differences: the step, the truncation error and its estimate, the cost, the
domain, and common random numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.estimators.finite_difference import default_relative_step

from ..helpers import noisy_square


def test_default_steps_are_the_textbook_powers_of_epsilon():
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    assert default_relative_step(jnp.float64, "central") == pytest.approx(eps64 ** (1 / 3))
    assert default_relative_step(jnp.float64, "forward") == pytest.approx(eps64 ** (1 / 2))
    assert default_relative_step(jnp.float32, "central") == pytest.approx(eps32 ** (1 / 3))


@pytest.mark.parametrize("scheme, order", [("forward", 1), ("central", 2)])
def test_truncation_error_and_its_estimate(scheme, order, key):
    # f = exp: forward error h/2·f'', central error h²/6·f''' — exactly the Taylor terms;
    # the Richardson estimate from the same runs at 2h matches them to the next order.
    theta, h = 0.3, 1e-3
    est = sg.gradient(
        lambda t, k: jnp.exp(t),
        theta,
        key,
        method=sg.FiniteDifference(scheme=scheme, step=h),
        n_samples=2,
    )
    actual = float(est.grad) - np.exp(theta)
    leading = np.exp(theta) * (h / 2 if order == 1 else h**2 / 6)
    np.testing.assert_allclose(actual, leading, rtol=2e-3)
    np.testing.assert_allclose(float(est.grad_bias), actual, rtol=5e-3 if order == 1 else 5e-2)
    assert f"(truncation ≈ {abs(float(est.grad_bias)):.2g})" in repr(est)


@pytest.mark.parametrize("scheme, per_sample", [("central", 4 * 5 + 1), ("forward", 2 * 5 + 1)])
def test_evaluations_are_counted_honestly(scheme, per_sample, key):
    calls = []

    def sim(theta, key):
        calls.append(1)
        return jnp.sum(theta**2)

    est = sg.gradient(sim, jnp.ones(5), key, method=sg.FiniteDifference(scheme=scheme), n_samples=3)
    assert est.n_evals == 3 * per_sample
    np.testing.assert_allclose(est.grad, 2 * np.ones(5), rtol=1e-6)
    assert len(calls) <= 2  # all runs are one batched evaluation, traced once (twice: shapes)


def test_default_step_scales_with_large_theta(key):
    # at θ = 1e6 an absolute step of ε^(1/3) would be lost in rounding; the relative one is not
    est = sg.gradient(lambda t, k: t**2, 1e6, key, method=sg.FiniteDifference(), n_samples=2)
    np.testing.assert_allclose(est.grad, 2e6, rtol=1e-8)


def test_default_step_scales_with_small_theta(key):
    # sin(1e6·a) at a = 3e-7: a step of ε^(1/3)·max(1, |a|) = 6e-6 spans 6 radians and gave
    # -35618 "± 0"; relative to |a| it is exact, with an honest truncation estimate.
    exact = 1e6 * np.cos(0.3)
    sim = lambda a, k: jnp.sin(1e6 * a)  # noqa: E731
    est = sg.gradient(sim, 3e-7, key, method=sg.FiniteDifference(), n_samples=2)
    np.testing.assert_allclose(float(est.grad), exact, rtol=1e-8)
    assert abs(float(est.grad_bias)) < 1e-8 * exact
    np.testing.assert_allclose(
        sg.gradient(sim, 3e-7, key, method=sg.FiniteDifference(scheme="forward"), n_samples=2).grad,
        exact,
        rtol=1e-6,
    )


def test_rounding_that_swamps_the_difference_is_reported(key):
    # sin(1e6·t0) beside t1² = 1e12: a step in t0 moves the output by 1e-8, far below its
    # rounding (1e12·ε = 2e-4), and both quotients are exactly 0. The error estimate
    # reports the rounding bound ε·|f|/h instead of a silent "0 ± 0".
    both = sg.gradient(
        lambda t, k: jnp.sin(1e6 * t[0]) + t[1] ** 2,
        jnp.array([3e-7, 1e6]),
        key,
        method=sg.FiniteDifference(),
        n_samples=2,
    )
    assert float(both.grad[0]) == 0.0  # wrong: the exact value is 955336
    assert float(both.grad_bias[0]) > 1e6  # and the error estimate says so
    np.testing.assert_allclose(both.grad[1], 2e6, rtol=1e-8)


def test_a_wrong_step_shows_in_the_truncation_estimate_never_as_plus_minus_zero(key):
    sim = lambda a, k: jnp.sin(1e6 * a)  # noqa: E731
    est = sg.gradient(sim, 3e-7, key, method=sg.FiniteDifference(step=1e-6), n_samples=2)
    error = abs(float(est.grad) - 1e6 * np.cos(0.3))
    assert error > 1e5  # 1e6·h = 1 radian: badly wrong
    assert abs(float(est.grad_bias)) > 0.3 * error  # and the estimate says so
    assert float(est.grad_stderr) == 0.0
    assert f"± 0 (truncation ≈ {abs(float(est.grad_bias)):.2g})" in repr(est)


def test_a_step_across_the_domain_boundary_is_named(key):
    # log at 2e-6 with a step of 1e-5: θ - h < 0, outside log's domain
    sim = lambda a, k: jnp.log(a)  # noqa: E731
    bad = sg.FiniteDifference(step=1e-5)
    with pytest.raises(sg.SimulationError, match=r"crossed a domain boundary.*step=") as info:
        float(sg.gradient(sim, 2e-6, key, method=bad, n_samples=2).grad)
    assert "in 2 of 2 samples (the gradient only)" in str(info.value)
    # the default step, relative to θ, stays inside
    est = sg.gradient(sim, 2e-6, key, method=sg.FiniteDifference(), n_samples=2)
    np.testing.assert_allclose(float(est.grad), 5e5, rtol=1e-8)


def per_sample_std(crn, step, key, n=20_000):
    est = sg.gradient(
        noisy_square, 1.0, key, method=sg.FiniteDifference(step=step, crn=crn), n_samples=n
    )
    return float(est.grad_std)


def test_without_crn_the_standard_deviation_grows_like_one_over_step(key):
    # Independent runs: Var[(f+ - f-)/2h] = 2 Var[f] / 4h² with Var[(θ+Z)²] = 4θ² + 2 = 6,
    # so std = √3 / h: 173 at h = 1e-2 and 1732 at h = 1e-3, ten times more.
    coarse, fine = per_sample_std(False, 1e-2, key), per_sample_std(False, 1e-3, key)
    rel = 4 / np.sqrt(2 * 20_000)  # 4 standard errors of a sample standard deviation
    assert abs(coarse - np.sqrt(3) / 1e-2) < rel * np.sqrt(3) / 1e-2
    assert abs(fine / coarse - 10) < 10 * 2 * rel


def test_with_crn_the_standard_deviation_stays_bounded(key):
    # Shared key: (f+ - f-)/2h = 2(θ + Z) exactly, whatever h: std 2 at every step.
    for step in (1e-1, 1e-2, 1e-3, 1e-4):
        assert abs(per_sample_std(True, step, key) - 2.0) < 2.0 * 4 / np.sqrt(2 * 20_000)


def test_crn_false_draws_a_key_per_run(key):
    # with a shared key the central value averages identical noise; without, it does not
    sim = lambda t, k: jax.random.normal(k, dtype=t.dtype) + 0 * t  # noqa: E731
    shared = sg.gradient(sim, 1.0, key, method=sg.FiniteDifference(crn=True), n_samples=2)
    own = sg.gradient(sim, 1.0, key, method=sg.FiniteDifference(crn=False, step=0.1), n_samples=2)
    assert float(shared.grad) == 0.0
    assert float(own.grad) != 0.0


def _bracket_tax(params, key):
    # outside-style code: a dict θ, a deterministic threshold on a parameter, noise after it
    income, rate = params["income"], params["rate"]
    tax = jnp.where(income > 1.0, rate * income, 0.0)  # the bracket: a jump at income = 1
    return tax + 0.1 * jax.random.normal(key, dtype=income.dtype)


def test_a_threshold_in_theta_is_noted_once_per_compilation(key):
    calls = []

    def sim(params, key):
        calls.append(1)
        return _bracket_tax(params, key)

    fd = sg.FiniteDifference(step=1e-3)
    at_jump = {"income": jnp.array(1.0), "rate": jnp.array(0.3)}
    est = sg.gradient(sim, at_jump, key, method=fd, n_samples=4)
    # θ ± h straddles the jump: the quotient is (0.3·1.001 - 0) / 2e-3 = 150.15, no derivative
    np.testing.assert_allclose(float(est.grad["income"]), 0.3 * 1.001 / 2e-3, rtol=1e-9)
    (note,) = est.notes
    line = _bracket_tax.__code__.co_firstlineno + 3
    assert note.startswith(f"threshold at {__file__}:{line}: a jump in θ itself")
    assert f"note: {note}" in repr(est)
    traced = len(calls)
    away = sg.gradient(sim, {"income": jnp.array(2.0), "rate": jnp.array(0.3)}, key, method=fd,
                       n_samples=4)  # fmt: skip
    assert len(calls) == traced  # the fast path: no trace, the notes come with the compilation
    assert away.notes == est.notes
    np.testing.assert_allclose(float(away.grad["income"]), 0.3, rtol=1e-9)  # fine away from it
    # AD's estimators say nothing here (sg.check does): a jump in θ itself, not after a draw.
    assert sg.gradient(sim, at_jump, key, method=sg.Pathwise(), n_samples=4).notes == ()
    # A threshold after a draw: only the samples whose draw falls within h of it see the
    # jump, so with a small step the estimate is 0 ± 0 or one spike: claimed biased, said.
    digital = lambda s, k: jnp.where(s + jax.random.normal(k, dtype=s.dtype) > 1.0, 1.0, 0.0)  # noqa: E731
    with pytest.warns(sg.BiasWarning, match="threshold"):
        est = sg.gradient(digital, 1.0, key, method=fd, n_samples=4)
    assert est.claim == "biased" and "sg.ScoreFunction()" in est.notes[0]
