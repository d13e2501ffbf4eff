"""Finite differences: the step, the truncation error, the cost, and common random numbers."""

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
def test_truncation_error_has_the_textbook_leading_term(scheme, order, key):
    # f = exp: forward error h/2·f'', central error h²/6·f''' — exactly the Taylor terms.
    theta, h = 0.3, 1e-3
    est = sg.gradient(
        lambda t, k: jnp.exp(t),
        theta,
        key,
        method=sg.FiniteDifference(scheme=scheme, step=h),
        n_samples=2,
    )
    leading = np.exp(theta) * (h / 2 if order == 1 else h**2 / 6)
    np.testing.assert_allclose(float(est.grad) - np.exp(theta), leading, rtol=2e-3)


@pytest.mark.parametrize("scheme, per_sample", [("central", 2 * 5), ("forward", 5 + 1)])
def test_evaluations_are_counted_honestly(scheme, per_sample, key):
    calls = []

    def sim(theta, key):
        calls.append(1)
        return jnp.sum(theta**2)

    est = sg.gradient(sim, jnp.ones(5), key, method=sg.FiniteDifference(scheme=scheme), n_samples=3)
    assert est.n_evals == 3 * per_sample
    np.testing.assert_allclose(est.grad, 2 * np.ones(5), rtol=1e-6)


def test_default_step_scales_with_theta(key):
    # at θ = 1e6 an absolute step of ε^(1/3) would be lost in rounding; the relative one is not
    est = sg.gradient(lambda t, k: t**2, 1e6, key, method=sg.FiniteDifference(), n_samples=2)
    np.testing.assert_allclose(est.grad, 2e6, rtol=1e-8)


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
