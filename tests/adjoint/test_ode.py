"""ODE gradients: every method against exact answers (the matrix exponential, closed forms),
the Taylor test and each other; the automatic choice; no recompilation on a second call; memory.

The problems live at module level and are shared, so each (method, problem) pair
compiles once for the whole file (`ode_gradient` keeps its compiled solves).
"""

import collections
import math

import diffrax as dfx
import jax
import jax.numpy as jnp
import pytest

import simgrad as sg
from simgrad.adjoint import ODEProblem, ode_gradient, taylor_test
from simgrad.adjoint._ode import _choose

METHODS = ("forward", "discrete", "continuous", "interpolated")


def _linear_field(t, y, p):
    return _matrix(p) @ y


def _matrix(p):
    """Non-symmetric, so that a transposed Jacobian in an adjoint would show."""
    return jnp.array([[-p["a"], p["b"]], [0.3, -0.5 * p["a"]]])


def _mixed_objective(y, p):
    return y[0] * y[1] + 0.1 * p["a"] ** 2


# y' = A(theta) y, J = y0(3) y1(3) + 0.1 a²: exact through the matrix exponential
LINEAR = ODEProblem(_linear_field, jnp.array([1.0, 0.5]), 0.0, 3.0, _mixed_objective)
THETA = {"a": jnp.array(0.4), "b": jnp.array(0.7)}


def exact_linear(p):
    return _mixed_objective(jax.scipy.linalg.expm(3.0 * _matrix(p)) @ LINEAR.y0, p)


def _decay_field(t, y, p):
    return -jnp.sum(p["k"]) * y


def _scaled_first(y, p):
    return p["c"] * y[0]


def _general_field(t, y, m):
    return m @ y


def _sum(y, m):
    return jnp.sum(y)


# y' = M y with the whole 3 x 3 matrix as theta: 9 parameters
GENERAL = ODEProblem(_general_field, jnp.array([1.0, -0.5, 0.25]), 0.0, 1.0, _sum)
M = jnp.array([[-0.5, 0.2, 0.0], [0.1, -0.3, 0.4], [0.0, -0.2, -0.1]])

TRACES = collections.Counter()


def _counting_field(t, y, k):
    TRACES["field"] += 1  # runs once per trace, never inside a compiled call
    return -k * y**2


def _first(y, k):
    return y[0]


def fixed_steps(y0=1.0):
    """y' = -k y², y(1) = y0 / (1 + k y0), eight Tsit5 steps."""
    return ODEProblem(_counting_field, jnp.array([y0]), 0.0, 1.0, _first, n_steps=8)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_exact_gradient_and_taylor(method):
    result = ode_gradient(LINEAR, THETA, method)
    assert float(result.value) == pytest.approx(float(exact_linear(THETA)), rel=1e-8)
    exact = jax.grad(exact_linear)(THETA)
    for name in THETA:
        assert float(result.grad[name]) == pytest.approx(float(exact[name]), rel=1e-6)
    assert result.adjoint == method and result.reason.startswith("requested")
    assert result.seconds > 0 and result.compile_seconds >= 0 and result.temp_bytes >= 0
    taylor = taylor_test(LINEAR, THETA, result.grad)
    assert taylor.passed, taylor


def test_wrong_gradient_fails_taylor():
    good = ode_gradient(LINEAR, THETA).grad
    bad = jax.tree.map(lambda g: 1.01 * g, good)
    assert taylor_test(LINEAR, THETA, good).passed
    result = taylor_test(LINEAR, THETA, bad)
    assert not result.passed and result.rate < 1.3


def test_auto_chooses_forward_for_few_parameters_and_reverse_for_many():
    few = ode_gradient(LINEAR, THETA)
    assert few.adjoint == "forward" and "p = 2 parameters, n = 2 states" in few.reason
    many = ode_gradient(GENERAL, M)
    assert many.adjoint == "discrete" and "up to p = 8 at this n" in many.reason
    exact = jax.grad(lambda m: jnp.sum(jax.scipy.linalg.expm(m) @ GENERAL.y0))(M)
    assert jnp.allclose(many.grad, exact, rtol=1e-6, atol=1e-12)
    # a small problem's every step fits in memory: the discrete adjoint stores them all
    assert "every step stored" in many.reason


def test_auto_keeps_forward_mode_for_fewer_parameters_on_large_states():
    """Above 512 state entries a tangent costs 2–3 forward solves: forward up to p = 2."""

    def choose(states, parameters):
        problem = ODEProblem(_decay_field, jnp.ones(states), 0.0, 1.0, _scaled_first)
        return _choose(problem, {"k": jnp.ones(parameters - 1), "c": jnp.array(1.0)})[0]

    assert [choose(512, p) for p in (2, 8, 9)] == ["forward", "forward", "discrete"]
    assert [choose(513, p) for p in (2, 3)] == ["forward", "discrete"]


def test_fixed_steps_modes_agree_and_second_call_does_not_recompile():
    """With a constant step both AD modes differentiate the same computed numbers. A
    second call with the same functions and new values (a new problem object, another
    y0 and theta) traces nothing and uses the new values."""
    before = TRACES["field"]
    forward = ode_gradient(fixed_steps(), jnp.array(0.7), "forward")
    assert TRACES["field"] > before and forward.compile_seconds > 0  # this field's first use
    reverse = ode_gradient(fixed_steps(), jnp.array(0.7), "discrete")
    assert float(reverse.grad) == pytest.approx(float(forward.grad), rel=1e-12)
    # the true derivative of y(1) = 1 / (1 + k) is -1 / (1 + k)^2; eight Tsit5 steps are close
    assert float(reverse.grad) == pytest.approx(-1 / 1.7**2, rel=1e-5)
    traced = TRACES["field"]
    for method in ("forward", "discrete"):
        again = ode_gradient(fixed_steps(2.0), jnp.array(0.3), method)
        assert TRACES["field"] == traced and again.compile_seconds == 0.0
        assert float(again.value) == pytest.approx(2.0 / 1.6, rel=1e-5)
        assert float(again.grad) == pytest.approx(-4.0 / 1.6**2, rel=1e-5)


ROBERTSON = sg.adjoint.robertson(t1=10.0)


def test_robertson_gradient():
    """Forward sensitivities (auto's choice for 3 rates) against the continuous adjoint
    along the stored solution: two independent derivations agree on a stiff problem."""
    k = jnp.asarray(sg.adjoint.ROBERTSON_RATES)
    forward = ode_gradient(ROBERTSON, k)
    assert forward.adjoint == "forward"
    assert float(forward.value) == pytest.approx(0.841370, abs=1e-5)  # Hairer–Wanner table
    interpolated = ode_gradient(ROBERTSON, k, "interpolated")
    for f, c in zip(forward.grad, interpolated.grad, strict=True):
        assert float(c) == pytest.approx(float(f), rel=1e-5)


def _relaxation_field(t, y, k):
    return -k * (y - jnp.cos(t))


def test_backsolve_on_stiff_problem_says_what_to_use():
    """y' = -k (y - cos t) with k = 1000 relaxes fast forwards; solved backwards, every
    error grows like exp(1000 t): BacksolveAdjoint runs out of steps (Robertson does too,
    see docs/adjoint.md), and the error names the adjoints that work."""
    stiff = ODEProblem(_relaxation_field, jnp.array([0.0]), 0.0, 1.0, _first, max_steps=4096)
    with pytest.raises(RuntimeError, match="maximum number of solver steps.*'interpolated'"):
        ode_gradient(stiff, jnp.array(1e3), "continuous")


def test_input_validation():
    with pytest.raises(ValueError, match="'auto', 'forward'"):
        ode_gradient(LINEAR, THETA, "backwards")
    with pytest.raises(TypeError, match="ODEProblem"):
        ode_gradient(lambda k: k, jnp.array(1.0))
    with pytest.raises(TypeError, match="floating"):
        ode_gradient(LINEAR, {"a": jnp.array(1), "b": jnp.array(1.0)})
    with pytest.raises(ValueError, match="finite"):
        ode_gradient(LINEAR, {"a": jnp.array(jnp.nan), "b": jnp.array(1.0)})
    for method in ("auto", "continuous"):
        with pytest.raises(ValueError, match="checkpoints"):
            ode_gradient(LINEAR, THETA, method, checkpoints=4)
    with pytest.raises(ValueError, match="repeats"):
        ode_gradient(LINEAR, THETA, repeats=-1)
    with pytest.raises(ValueError, match="t0 < t1"):
        ODEProblem(lambda t, y, k: y, jnp.array([1.0]), 1.0, 0.0, lambda y, k: y[0])
    with pytest.raises(TypeError, match="y0"):
        ODEProblem(lambda t, y, k: y, [1.0], 0.0, 1.0, lambda y, k: y[0])


def _sine_field(t, y, k):
    return -k * jnp.sin(y)


def _total(y, k):
    return jnp.sum(y)


def test_memory_of_each_method_against_steps():
    """Storing every step grows linearly in the steps, √n checkpoints like √n, backsolve
    not at all. (Forward Euler: the law is the adjoint's, not the solver's, and Euler
    compiles fastest. Only the compiled calls' memory analysis is read.)"""

    def problem(n_steps):
        return ODEProblem(
            _sine_field, jnp.linspace(0.1, 1.0, 32), 0.0, 1.0, _total, solver=dfx.Euler(),
            n_steps=n_steps,
        )  # fmt: skip

    k = jnp.array(0.7)
    small, large = problem(64), problem(1024)  # 16 times the steps

    def temp_bytes(method, checkpoints=lambda n: None):
        """Temporary memory at 64 and 1024 steps; ``checkpoints`` a function of the steps."""
        return [
            ode_gradient(p, k, method, checkpoints=checkpoints(p.n_steps)).temp_bytes
            for p in (small, large)
        ]

    store_all = temp_bytes("discrete", lambda n: n)
    sqrt_n = temp_bytes("discrete", lambda n: math.isqrt(2 * n))
    assert store_all[1] / store_all[0] > 8
    assert sqrt_n[1] / sqrt_n[0] < 5 and sqrt_n[1] < store_all[1] / 4
    backsolve = temp_bytes("continuous")
    assert backsolve[1] == backsolve[0]
    # by default a problem this small stores every step (the same compiled solve)
    default = ode_gradient(small, k, "discrete")
    assert default.temp_bytes == store_all[0] and default.compile_seconds == 0.0
