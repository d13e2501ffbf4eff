"""A failing ODE solve is one clear RuntimeError, without JAX's callback log on stderr."""

import jax.numpy as jnp
import pytest

import simgrad as sg


def test_failed_solve_raises_one_line_and_logs_nothing(caplog):
    decay = sg.adjoint.ODEProblem(
        lambda t, y, k: -k * y, jnp.array([1.0]), 0.0, 1.0, lambda y, k: y[0], max_steps=2
    )
    with pytest.raises(RuntimeError, match="maximum number of solver steps"):
        sg.adjoint.ode_gradient(decay, jnp.array(2.0), "continuous")
    logged = [r.getMessage() for r in caplog.records]
    assert not any("callback failed" in m for m in logged), logged
