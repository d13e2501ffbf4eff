"""ODE gradients: every adjoint against exact answers, finite differences and the Taylor test."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import simgrad as sg
from simgrad.adjoint import ODEProblem, ode_gradient, taylor_test

ADJOINTS = ("discrete", "continuous", "interpolated")


def decay():
    return ODEProblem(lambda t, y, k: -k * y, jnp.array([1.0]), 0.0, 1.0, lambda y, k: y[0])


def lotka_volterra():
    """Predator–prey with a pytree theta; the objective mixes the final state and theta."""

    def field(t, y, p):
        return jnp.stack([p["a"] * y[0] - p["b"] * y[0] * y[1], p["b"] * y[0] * y[1] - 0.8 * y[1]])

    return ODEProblem(
        field, jnp.array([1.0, 0.5]), 0.0, 3.0, lambda y, p: y[0] * y[1] + 0.1 * p["a"] ** 2
    )


@pytest.mark.parametrize("adjoint", ADJOINTS)
def test_decay_matches_exact(adjoint):
    k = jnp.array(2.0)
    result = ode_gradient(decay(), k, adjoint)
    assert float(result.value) == pytest.approx(math.exp(-2.0), rel=1e-8)
    assert float(result.grad) == pytest.approx(-math.exp(-2.0), rel=1e-6)
    assert result.adjoint == adjoint and result.seconds > 0 and result.temp_bytes >= 0


@pytest.mark.parametrize("adjoint", ADJOINTS)
def test_pytree_theta_matches_finite_differences_and_taylor(adjoint, key):
    problem = lotka_volterra()
    theta = {"a": jnp.array(1.1), "b": jnp.array(0.6)}
    result = ode_gradient(problem, theta, adjoint)
    fd = sg.gradient(
        lambda th, k: problem(th), theta, key, method=sg.FiniteDifference(), n_samples=2
    )
    for name in theta:
        assert float(result.grad[name]) == pytest.approx(float(fd.grad[name]), rel=1e-5)
    taylor = taylor_test(problem, theta, result.grad)
    assert taylor.passed, taylor


def test_wrong_gradient_fails_taylor():
    problem = lotka_volterra()
    theta = {"a": jnp.array(1.1), "b": jnp.array(0.6)}
    good = ode_gradient(problem, theta).grad
    bad = jax.tree.map(lambda g: 1.01 * g, good)
    assert taylor_test(problem, theta, good).passed
    result = taylor_test(problem, theta, bad)
    assert not result.passed and result.rate < 1.3


def test_fixed_steps_discrete_is_exact_gradient_of_the_scheme():
    """With a constant step the discrete gradient is the gradient of the computed value."""
    problem = ODEProblem(
        lambda t, y, k: -k * y**2, jnp.array([1.0]), 0.0, 1.0, lambda y, k: y[0], n_steps=8
    )
    k = jnp.array(0.7)
    discrete = ode_gradient(problem, k, "discrete")
    exact_ad = eqx.filter_jit(lambda kk: jax.grad(problem)(kk))(k)
    assert float(discrete.grad) == pytest.approx(float(exact_ad), rel=1e-12)
    # the true derivative of y(1) = 1 / (1 + k) is -1 / (1 + k)^2; eight Tsit5 steps are close
    assert float(discrete.grad) == pytest.approx(-1 / 1.7**2, rel=1e-5)


def test_robertson_gradient():
    problem = sg.adjoint.robertson(t1=10.0)
    k = jnp.asarray(sg.adjoint.ROBERTSON_RATES)
    discrete = ode_gradient(problem, k, "discrete", repeats=1)
    assert float(discrete.value) == pytest.approx(0.841370, abs=1e-5)  # Hairer–Wanner table
    interpolated = ode_gradient(problem, k, "interpolated", repeats=1)
    for d, c in zip(discrete.grad, interpolated.grad, strict=True):
        assert float(c) == pytest.approx(float(d), rel=1e-5)
    # the Taylor test along relative perturbations of the rates stands in for finite differences
    assert taylor_test(problem, k, discrete.grad, direction=k).passed


def test_backsolve_on_stiff_problem_says_what_to_use():
    problem = sg.adjoint.robertson(t1=1.0, max_steps=500)
    with pytest.raises(RuntimeError, match="interpolated"):
        ode_gradient(problem, jnp.asarray(sg.adjoint.ROBERTSON_RATES), "continuous", repeats=1)


def test_input_validation():
    problem = decay()
    with pytest.raises(ValueError, match="discrete"):
        ode_gradient(problem, jnp.array(1.0), "backwards")
    with pytest.raises(TypeError, match="ODEProblem"):
        ode_gradient(lambda k: k, jnp.array(1.0))
    with pytest.raises(TypeError, match="floating"):
        ode_gradient(problem, jnp.array(1))
    with pytest.raises(ValueError, match="finite"):
        ode_gradient(problem, jnp.array(jnp.nan))
    with pytest.raises(ValueError, match="checkpoints"):
        ode_gradient(problem, jnp.array(1.0), "continuous", checkpoints=4)
    with pytest.raises(ValueError, match="t0 < t1"):
        ODEProblem(lambda t, y, k: y, jnp.array([1.0]), 1.0, 0.0, lambda y, k: y[0])
    with pytest.raises(TypeError, match="y0"):
        ODEProblem(lambda t, y, k: y, [1.0], 0.0, 1.0, lambda y, k: y[0])


def test_checkpointing_memory_grows_slower_than_steps():
    """Storing every step grows linearly in the steps; √n checkpoints and backsolve do not."""

    def problem(n_steps):
        return ODEProblem(
            lambda t, y, k: -k * jnp.sin(y), jnp.linspace(0.1, 1.0, 32), 0.0, 1.0,
            lambda y, k: jnp.sum(y), n_steps=n_steps,
        )  # fmt: skip

    k = jnp.array(0.7)
    small, large = problem(64), problem(1024)  # 16 times the steps
    store_all = [
        ode_gradient(p, k, checkpoints=p.n_steps, repeats=1).temp_bytes for p in (small, large)
    ]
    sqrt_n = [ode_gradient(p, k, repeats=1).temp_bytes for p in (small, large)]
    backsolve = [ode_gradient(p, k, "continuous", repeats=1).temp_bytes for p in (small, large)]
    assert store_all[1] / store_all[0] > 8
    assert sqrt_n[1] / sqrt_n[0] < 5 and sqrt_n[1] < store_all[1] / 4
    assert backsolve[1] == backsolve[0]
