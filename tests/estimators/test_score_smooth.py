"""ScoreFunction(baseline="smooth"): the smoothed program as control variate (LAX).

Unbiased against exact answers (the digital call; a threshold on a scan of normal steps
with a dict θ; a Bernoulli times a threshold on a normal), a large variance cut where the
output jumps after a continuous draw, refusal where smoothing leaves a jump, and the notes
and argument checks.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.scipy.stats import norm

import simgrad as sg
from simgrad.models import DigitalCall

from .test_score_function import assert_unbiased

R = sg.random
N = 2**12
SMOOTH = sg.ScoreFunction(baseline="smooth")


def test_digital_call_exact_delta_and_vega_with_a_large_variance_cut(key):
    model = DigitalCall()
    theta = model.default_theta()
    est = sg.gradient(model, theta, key, method=SMOOTH, n_samples=N)
    assert_unbiased(est, model.exact_grad(theta))
    vanilla = sg.gradient(model, theta, key, method=sg.ScoreFunction(baseline=None), n_samples=N)
    ratio = {k: float(vanilla.grad_std[k] / est.grad_std[k]) ** 2 for k in theta}
    # measured on 2^16 samples: 314× (delta) and 35× (vega); the best constant baseline
    # ("cv") reaches 3.7× and 1.9×
    assert ratio["S0"] > 100 and ratio["sigma"] > 15, ratio
    assert est.n_evals == N * (1 + 2 * 2)  # one run, and two per default temperature
    assert "tau = 0.03, 0.3 " in est.notes[0]


def threshold_after_a_walk(theta, key):
    """Written as a user would: a dict θ, a log-scale, lax.scan over normal steps."""
    sigma = jnp.exp(theta["log_sigma"])

    def step(s, k):
        return s + R.normal(k, theta["drift"], sigma), None

    s, _ = lax.scan(step, jnp.zeros(()), jax.random.split(key, 4))
    return jnp.where(s > 1.5, 2.0, 0.0) + 0.5 * theta["drift"]  # θ also reaches it directly


def test_threshold_on_a_scan_of_normal_steps_matches_the_closed_form(key):
    theta = {"drift": 0.2, "log_sigma": math.log(0.6)}
    # S_4 ~ N(4·drift, 4σ²): E = 2 Φ(z) + drift / 2 with z = (4 drift - 1.5) / (2σ)
    sigma = 0.6
    z = (4 * 0.2 - 1.5) / (2 * sigma)
    exact = {
        "drift": 2 * norm.pdf(z) * 4 / (2 * sigma) + 0.5,
        "log_sigma": 2 * norm.pdf(z) * -z,  # ∂z/∂log σ = -z
    }
    est = sg.gradient(threshold_after_a_walk, theta, key, method=SMOOTH, n_samples=N)
    assert_unbiased(est, exact)
    cv = sg.gradient(
        threshold_after_a_walk, theta, key, method=sg.ScoreFunction(baseline="cv"), n_samples=N
    )
    for k in theta:  # far below the best constant baseline
        assert est.grad_std[k] < 0.4 * cv.grad_std[k], k


def test_discrete_draws_stay_scored_and_unbiased(key):
    # E = p Φ(mu): ∂p = Φ(mu), ∂mu = p φ(mu); the Bernoulli's score is on both sides
    def sim(theta, key):
        k1, k2 = jax.random.split(key)
        return R.bernoulli(k1, theta[0]) * jnp.where(R.normal(k2, theta[1]) > 0, 1.0, 0.0)

    theta = jnp.array([0.3, 0.4])
    est = sg.gradient(sim, theta, key, method=SMOOTH, n_samples=N)
    assert_unbiased(est, np.array([norm.cdf(0.4), 0.3 * norm.pdf(0.4)]))
    assert any("discrete draws are scored on both sides" in n for n in est.notes)


def test_only_discrete_draws_is_the_cv_baseline_and_says_so(key):
    sim = lambda p, k: R.binomial(k, 10, p) ** 2  # noqa: E731
    est = sg.gradient(sim, 0.3, key, method=SMOOTH, n_samples=256)
    cv = sg.gradient(sim, 0.3, key, method=sg.ScoreFunction(baseline="cv"), n_samples=256)
    np.testing.assert_allclose(est.grad, cv.grad, rtol=1e-6)
    assert any("this is baseline='cv'" in n for n in est.notes)


def test_a_jump_smoothing_cannot_relax_is_refused(key):
    def with_cond(theta, key):  # lax.cond on a draw: smoothing hardens its predicate
        x = R.normal(key, theta, 1.0)
        return lax.cond(x > 0, lambda: 1.0, lambda: 0.0)

    with pytest.raises(ValueError, match="smoothing leaves a jump.*lax.cond"):
        sg.gradient(with_cond, 0.1, key, method=SMOOTH, n_samples=16)


def test_nothing_to_smooth_says_pathwise_would_do(key):
    sim = lambda mu, k: R.normal(k, mu, 1.0) ** 2  # noqa: E731  (E = mu² + 1)
    est = sg.gradient(
        sim, 0.5, key, method=sg.ScoreFunction(baseline="smooth", tau=1.0), n_samples=N
    )
    assert_unbiased(est, 1.0)
    assert any("sg.Pathwise() is unbiased here" in n for n in est.notes)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau": 0.1}, "pass baseline='smooth'"),
        ({"baseline": "smooth", "tau": 0.0}, "positive finite"),
        ({"baseline": "smooth", "tau": -1.0}, "positive finite"),
        ({"baseline": "smooth", "tau": float("inf")}, "positive finite"),
        ({"baseline": "smooth", "tau": ()}, "positive finite"),
        ({"baseline": "smooth", "tau": (0.1, "a")}, "positive finite"),
        ({"baseline": "smooth", "tau": True}, "positive finite"),
        ({"baseline": "lax"}, "baseline must be one of"),
    ],
)
def test_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sg.ScoreFunction(**kwargs)


def test_hybrid_has_no_smooth_baseline():
    with pytest.raises(ValueError, match="baseline must be one of"):
        sg.Hybrid(baseline="smooth")
    assert sg.ScoreFunction(baseline="smooth", tau=[0.1, 1]).tau == (0.1, 1.0)
