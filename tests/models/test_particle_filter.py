"""The particle filter's likelihood gradients against the Kalman filter's exact ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.models.applications import (
    GompertzParticleFilter,
    RickerParticleFilter,
    grid_log_likelihood,
    kalman_log_likelihood,
)

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


def test_grid_filter_is_the_kalman_filter_on_the_linear_model():
    # The nonlinear model's reference (quadrature on a grid), checked where it has an
    # exact answer: on the Gompertz model it must give the Kalman filter's likelihood.
    mu, sigma, tau, m0, s0, b = 3.3, 0.3, 0.2, 3.3, 0.4, 0.6
    ys = jnp.asarray(PF.observed)
    grid = jnp.linspace(0.5, 6.0, 600)

    def terms(grid):
        mean = mu + b * (grid - mu)
        transition = jnp.exp(-0.5 * ((grid[None, :] - mean[:, None]) / sigma) ** 2)
        transition = transition / (sigma * np.sqrt(2 * np.pi))
        log_obs = lambda y: -0.5 * ((y - grid) / tau) ** 2 - np.log(tau * np.sqrt(2 * np.pi))  # noqa: E731
        return transition, log_obs

    exact = kalman_log_likelihood(b, ys, mu, sigma, tau, m0, s0)
    assert float(grid_log_likelihood(terms, grid, m0, s0, ys)) == pytest.approx(
        float(exact), rel=1e-10
    )


# The nonlinear model on its first five years, its likelihood scaled to order 1.
RICKER = RickerParticleFilter(
    n_particles=8, observed=RickerParticleFilter().observed[:5], log_scale=-19.5
)


@pytest.mark.parametrize("pf", [PF, RICKER], ids=["gompertz-kalman", "ricker-quadrature"])
def test_unbiased_route_matches_the_exact_gradient(pf, key):
    # E[p̂] = p(y | b), so ∂E[p̂] = p ∂ log p: both within 4.5 standard errors.
    log_p = float(pf.exact_log_likelihood(B))
    exact = np.exp(log_p - pf.log_scale)
    exact_grad = exact * float(jax.grad(pf.exact_log_likelihood)(B))
    est = sg.gradient(pf.simulator, B, key, method=pf.method(), n_samples=6000)
    assert est.claim == "unbiased"
    assert abs(float(est.value) - exact) < 4.5 * float(est.value_stderr)
    assert abs(float(est.grad) - exact_grad) < 4.5 * float(est.grad_stderr)


def test_consistent_route_is_biased_at_few_particles_and_less_at_more(key):
    # The stop-gradient correction: consistent as N grows, biased at finite N. Measured
    # (5 years, b = 0.5, exact -1.489): bias -0.43 ± 0.05 at N = 4, -0.07 ± 0.02 at N = 16.
    exact = float(jax.grad(PF.exact_log_likelihood)(B))
    bias, stderr = {}, {}
    for n_particles in (4, 16):
        pf = GompertzParticleFilter(n_particles=n_particles, observed=PF.observed)
        with pytest.warns(sg.BiasWarning, match="categorical"):  # θ reaches the ancestors
            est = sg.gradient(
                lambda b, k, pf=pf: pf.log_likelihood(b, k, correction=True),
                B,
                key,
                method=sg.Pathwise(),
                n_samples=4000,
            )
        assert est.claim == "biased"
        bias[n_particles] = float(est.grad) - exact
        stderr[n_particles] = float(est.grad_stderr)
    assert abs(bias[4]) > 4.5 * stderr[4]
    assert abs(bias[16]) + 4.5 * stderr[16] < abs(bias[4]) - 4.5 * stderr[4]
