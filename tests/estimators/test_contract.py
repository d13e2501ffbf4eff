"""Every registered estimator, held to the same contract (STYLE.md item 9).

Unbiased on cases with exact answers (to 4 standard errors plus the finite-difference
truncation allowance), float32 and float64 kept, pytree theta, no recompilation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.estimators import ESTIMATORS, AbstractScoreEstimator

from ..helpers import noisy_square, quadratic_tree, quadratic_tree_grad

DTYPES = [jnp.float32, jnp.float64]


def tolerance(dtype):
    """Relative allowance for deterministic error: ~20 √ε covers forward differences."""
    return 20 * float(jnp.finfo(dtype).eps) ** 0.5


def needs_draw_sites(method) -> bool:
    return isinstance(method, AbstractScoreEstimator) and method.needs_draw_sites


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_pytree_theta_exact_gradient(name, dtype, key):
    theta = {
        "x": jnp.array([0.5, -1.0, 2.0], dtype=dtype),
        "y": jnp.array([0.3, 1.5], dtype=dtype),
    }
    if needs_draw_sites(ESTIMATORS[name]):  # a deterministic program has no draw to score
        with pytest.raises(ValueError, match="Pathwise"):
            sg.gradient(quadratic_tree, theta, key, method=ESTIMATORS[name], n_samples=2)
        return
    method = ESTIMATORS[name]
    # Random directions (SPSA, Gaussian smoothing) stay random on a deterministic program:
    # unbiased within 4 standard errors; every other estimator is exact with error 0.
    n = 4000 if method.random_directions else 2
    est = sg.gradient(quadratic_tree, theta, key, method=method, n_samples=n)
    exact = quadratic_tree_grad(theta)
    assert jax.tree.structure(est.grad) == jax.tree.structure(theta)
    leaves = zip(*map(jax.tree.leaves, (est.grad, est.grad_stderr, exact)), strict=True)
    for got, stderr, want in leaves:
        assert got.dtype == dtype and got.shape == want.shape
        if method.random_directions:
            assert np.all(np.abs(got - want) <= 4 * stderr + 3 * tolerance(dtype))
            assert np.all(stderr > 0)
        else:
            np.testing.assert_allclose(got, want, rtol=tolerance(dtype), atol=tolerance(dtype))
            np.testing.assert_allclose(stderr, 0.0, atol=tolerance(dtype))  # deterministic


@pytest.mark.parametrize("name", ESTIMATORS)
def test_pytree_theta_stochastic(name, key):
    # E[Σ a_i X_i²] with X_i ~ N(x_i, 1) is Σ a_i (x_i² + 1): gradient 2 a x; y scales it.
    def sim(theta, key):
        x = sg.random.normal(key, theta["x"], 1.0)
        return jnp.sum(jnp.arange(1.0, 4.0) * x**2) * theta["y"]

    theta = {"x": jnp.array([0.5, -1.0, 2.0]), "y": jnp.asarray(0.7)}
    est = sg.gradient(sim, theta, key, method=ESTIMATORS[name], n_samples=20_000)
    a = np.arange(1.0, 4.0)
    exact = {"x": 2 * a * theta["x"] * 0.7, "y": np.sum(a * (theta["x"] ** 2 + 1))}
    assert jax.tree.structure(est.grad) == jax.tree.structure(theta)
    for part in ("x", "y"):
        error = np.abs(np.asarray(est.grad[part]) - exact[part])
        assert np.all(error <= 4 * np.asarray(est.grad_stderr[part]) + 1e-9), part


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_unbiased_on_stochastic_simulator(name, dtype, key):
    theta = jnp.asarray(1.5, dtype=dtype)
    est = sg.gradient(noisy_square, theta, key, method=ESTIMATORS[name], n_samples=20_000)
    assert est.grad.dtype == dtype and est.value.dtype == dtype
    assert abs(est.value - 1.5**2) <= 4 * est.value_stderr + tolerance(dtype)
    assert abs(est.grad - 3.0) <= 4 * est.grad_stderr + 3 * tolerance(dtype)
    assert est.n_samples == 20_000
    assert est.n_evals == 20_000 * ESTIMATORS[name].evals_per_sample(1)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_second_call_does_not_recompile(name, key):
    traces = []

    def sim(theta, key):
        traces.append(1)  # runs only while JAX traces
        return noisy_square(theta, key)

    method = ESTIMATORS[name]
    sg.gradient(sim, jnp.asarray(1.0), key, method=method, n_samples=64)
    first = len(traces)
    assert first > 0
    sg.gradient(sim, jnp.asarray(2.0), jax.random.key(1), method=method, n_samples=64)
    assert len(traces) == first


@pytest.mark.parametrize("name", ESTIMATORS)
def test_batched_in_chunks_equals_all_at_once(name, key):
    method = ESTIMATORS[name]
    whole = sg.gradient(noisy_square, jnp.asarray(0.7), key, method=method, n_samples=96)
    chunked = sg.gradient(
        noisy_square, jnp.asarray(0.7), key, method=method, n_samples=96, batch_size=32
    )
    np.testing.assert_allclose(chunked.grad, whole.grad, rtol=1e-12)
    np.testing.assert_allclose(chunked.grad_std, whole.grad_std, rtol=1e-10)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_works_under_jit(name, key):
    method = ESTIMATORS[name]

    @jax.jit
    def grad_at(theta):
        return sg.gradient(noisy_square, theta, key, method=method, n_samples=64).grad

    eager = sg.gradient(noisy_square, jnp.asarray(0.3), key, method=method, n_samples=64)
    np.testing.assert_allclose(grad_at(jnp.asarray(0.3)), eager.grad, rtol=1e-9)
