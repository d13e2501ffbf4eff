"""Measure-valued derivatives against exact answers: every family with a weak derivative in
one compiled program (a jump or a nonlinearity after each draw), the per-sample variances
of the Gaussian decompositions against their closed forms (Mohamed et al. 2020, section 6,
with their coupling), `sg.optimize`, and the refusals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simgrad as sg

R = sg.random
MU, SIGMA, K = 0.3, 1.2, 1.0  # N(MU, SIGMA²); thresholds and squares at K
RATE, BETA, LAM, P_BERN, P_BIN = 1.5, 1.0, 3.0, 0.3, 0.35
LOGITS = np.array([0.2, -0.1, 0.4])
VALUES = np.array([1.0, -2.0, 4.0])


def _families(theta, key):
    """One output per family, each from its own draw; θ = (μ, σ, rate, β, λ, p, q, logits)."""
    mu, sigma, rate, beta, lam, p, q = (theta[i] for i in range(7))
    k = jax.random.split(key, 7)
    x = R.normal(k[0], mu, sigma)
    c = R.categorical(k[6], theta[7:]).astype(jnp.int32)
    return jnp.stack([
        jnp.where(x > K, 1.0, 0.0),  # P(X > K) = Φ((μ - K)/σ)
        (x - K) ** 2,  # (μ - K)² + σ²
        jnp.where(R.exponential(k[1], rate) > 1.0, 1.0, 0.0),  # e^{-rate}
        jnp.where(R.gamma(k[2], 2.0, beta) > 1.0, 1.0, 0.0),  # e^{-β}(1 + β)
        R.poisson(k[3], lam) ** 2,  # λ² + λ
        3.0 * R.bernoulli(k[4], p),  # 3p
        R.binomial(k[5], 5, q) ** 2,  # 5q(1 - q) + 25q²
        jnp.asarray(VALUES)[c],  # softmax(logits)·v
    ])  # fmt: skip


def _families_exact():
    z = (MU - K) / SIGMA
    phi = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    pi = np.exp(LOGITS) / np.exp(LOGITS).sum()
    jac = np.zeros((8, 10))
    jac[0, :2] = phi / SIGMA, -phi * z / SIGMA
    jac[1, :2] = 2 * (MU - K), 2 * SIGMA
    jac[2, 2] = -math.exp(-RATE)
    jac[3, 3] = -BETA * math.exp(-BETA)
    jac[4, 4] = 2 * LAM + 1
    jac[5, 5] = 3.0
    jac[6, 6] = 5 * (1 - 2 * P_BIN) + 50 * P_BIN
    jac[7, 7:] = pi * (VALUES - pi @ VALUES)
    return jac


@pytest.fixture(scope="module")
def families():
    theta = jnp.asarray([MU, SIGMA, RATE, BETA, LAM, P_BERN, P_BIN, *LOGITS])
    key = jax.random.key(20261207)
    return sg.gradient(_families, theta, key, method=sg.MeasureValued(), n_samples=20_000)


def test_every_family_within_4_5_standard_errors(families):
    grad, stderr = np.asarray(families.grad), np.asarray(families.grad_stderr)
    exact = _families_exact()
    assert families.claim == "unbiased"
    assert np.all(np.abs(grad - exact) <= 4.5 * stderr + 1e-12), (grad - exact) / stderr
    moved = exact != 0  # every estimate is noisy, except 3·Bernoulli's (f(1) - f(0) = 3)
    moved[5, 5] = False
    assert np.all(stderr[moved] > 0)
    assert np.all(stderr[~moved] == 0) and np.all(grad[~moved] == exact[~moved])


def test_gaussian_variances_match_the_closed_forms(families):
    """(X - K)², X ~ N(μ, σ²), a = μ - K. In μ: c(f(μ + σW) - f(μ - σW)) = 4aW/√(2π), W
    Weibull(√2, 2) (E W² = 2, E W = √(π/2)): variance a²(16/π - 4). In σ, M double-sided
    Maxwell and U uniform: 2aM(1 - U) + σM²(1 - U²), variance 4a² + 4σ²."""
    a = MU - K
    want = np.array([a * a * (16 / math.pi - 4), 4 * a * a + 4 * SIGMA**2])
    got = np.asarray(families.grad_std)[1, :2] ** 2
    np.testing.assert_allclose(got, want, rtol=0.10)


def test_optimize_finds_the_threshold_probability_maximum():
    """Maximise P(N(θ, 1) ∈ [0, 1]): θ* = 1/2, a target pathwise AD sees as flat."""

    def sim(theta, key):
        x = R.normal(key, theta, 1.0)
        return jnp.where((x > 0) & (x < 1), 1.0, 0.0)

    result = sg.optimize(
        sim, -1.0, jax.random.key(3), steps=40, n_samples=256, method=sg.MeasureValued(),
        optimizer=optax.sgd(2.0), maximize=True, progress=False,
    )  # fmt: skip
    assert abs(float(result.theta) - 0.5) < 0.15


def test_expectation_differentiates_with_it_under_jit():
    """jit(grad(E)) of P(N(μ, σ²) > 1): (φ(z)/σ, -φ(z) z/σ), z = (μ - 1)/σ; per-sample
    standard deviations below 0.5, so 0.04 is over 4.5 standard errors at 2000 samples."""

    def sim(t, key):
        return jnp.where(R.normal(key, t[0], t[1]) > 1.0, 1.0, 0.0)

    E = sg.expectation(sim, method=sg.MeasureValued(), n_samples=2000)
    grad = jax.jit(jax.grad(E))(jnp.asarray([MU, SIGMA]), jax.random.key(5))
    np.testing.assert_allclose(grad, _families_exact()[0, :2], atol=0.04)


def test_refuses_theta_outside_a_draw_before_a_jump():
    def sim(theta, key):
        return jnp.where(theta + R.normal(key) > 1.0, 1.0, 0.0)

    with pytest.raises(ValueError, match=r"MeasureValued: theta reaches a threshold .* "
                       r"Put theta in the draw's distribution"):  # fmt: skip
        sg.gradient(sim, 0.3, jax.random.key(0), method=sg.MeasureValued(), n_samples=8)


def test_refuses_a_parameter_with_no_weak_derivative():
    def sim(theta, key):
        return R.negative_binomial(key, theta, 0.5)

    with pytest.raises(ValueError, match="no weak derivative for"):
        sg.gradient(sim, 2.0, jax.random.key(0), method=sg.MeasureValued(), n_samples=8)
