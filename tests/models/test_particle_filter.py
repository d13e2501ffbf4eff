"""The particle filter's likelihood gradients against the Kalman filter's exact ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.models.applications import GompertzParticleFilter, kalman_log_likelihood

# Five years, eight particles: small enough for thousands of filter runs in a second.
PF = GompertzParticleFilter(n_particles=8, observed=GompertzParticleFilter().observed[:5])
B = 0.5


def test_kalman_filter_is_the_gaussian_density_of_the_observations():
    # Independently: y is Gaussian, with the AR(1) process's mean and covariance plus τ²I.
    mu, sigma, tau, m0, s0, b = 3.3, 0.3, 0.2, 3.0, 0.4, 0.6
    ys = np.array(PF.observed)
    t = np.arange(len(ys))
    mean = mu + b**t * (m0 - mu)
    var = b ** (2 * t) * s0**2 + sigma**2 * (1 - b ** (2 * t)) / (1 - b**2)  # Var x_t
    lag = np.abs(t[:, None] - t[None, :])
    cov = b**lag * var[np.minimum(t[:, None], t[None, :])] + tau**2 * np.eye(len(ys))
    resid = ys - mean
    direct = -0.5 * (
        len(ys) * np.log(2 * np.pi)
        + np.linalg.slogdet(cov)[1]
        + resid @ np.linalg.solve(cov, resid)
    )
    got = kalman_log_likelihood(b, jnp.asarray(ys), mu, sigma, tau, m0, s0)
    assert float(got) == pytest.approx(direct, rel=1e-12)


def test_unbiased_route_matches_the_kalman_gradient(key):
    # E[p̂] = p(y | b), so ∂E[p̂] = p ∂ log p: both within 4.5 standard errors.
    log_p = float(PF.exact_log_likelihood(B))
    exact = np.exp(log_p - PF.log_scale)
    exact_grad = exact * float(jax.grad(PF.exact_log_likelihood)(B))
    est = sg.gradient(PF.simulator, B, key, method=PF.method(), n_samples=10_000)
    assert est.claim == "unbiased"
    assert abs(float(est.value) - exact) < 4.5 * float(est.value_stderr)
    assert abs(float(est.grad) - exact_grad) < 4.5 * float(est.grad_stderr)


def test_consistent_route_is_biased_at_few_particles_and_the_naive_one_more(key):
    exact = float(jax.grad(PF.exact_log_likelihood)(B))
    got = {}
    for correction in (True, False):
        with pytest.warns(sg.BiasWarning, match="categorical"):  # θ reaches the ancestors
            est = sg.gradient(
                lambda b, k, c=correction: PF.log_likelihood(b, k, correction=c),
                B,
                key,
                method=sg.Pathwise(),
                n_samples=4000,
            )
        assert est.claim == "biased"
        got[correction] = (float(est.grad) - exact) / float(est.grad_stderr)
    # measured: bias -0.13 (stop-gradient) and -0.33 (ancestors fixed) at N = 8, 5 years
    assert 4.5 < abs(got[True]) < abs(got[False])
