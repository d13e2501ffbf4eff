"""Forward mode (`Dual`) against `jax.jvp` and the textbook rules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference_programs import inputs, programs, run

from simgrad.reference import Dual, count_ops, jvp

PROPERTY = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def close(actual, expected, rtol=1e-12):
    """Relative 1e-12; the 1e-300 floor only absorbs subnormals, which XLA flushes to zero."""
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=1e-300
    )


def jax_jvp(program, xs, ts):
    f = lambda *a: run(program, a, jnp)  # noqa: E731
    out, tangent = jax.jvp(f, tuple(jnp.asarray(x) for x in xs), tuple(jnp.asarray(t) for t in ts))
    return float(out), float(tangent)


def finite(*xs, bound=1e8):
    return all(np.all(np.isfinite(x)) and np.all(np.abs(x) < bound) for x in xs)


@PROPERTY
@given(programs(), inputs, inputs)
def test_dual_matches_jax_jvp(program, xs, ts):
    n = program[0]
    xs, ts = xs[:n], ts[:n]
    value, tangent = jax_jvp(program, xs, ts)
    assume(finite(value, tangent))
    ours = run(program, [Dual(x, t) for x, t in zip(xs, ts, strict=True)], np)
    close(ours.value, value)
    close(ours.deriv, tangent)


@PROPERTY
@given(programs(), inputs)
def test_many_directions_in_one_pass_match_jax_jacobian(program, xs):
    n = program[0]
    xs = xs[:n]
    f = lambda *a: run(program, a, jnp)  # noqa: E731
    jac = jax.jacfwd(f, argnums=tuple(range(n)))(*(jnp.asarray(x) for x in xs))
    assume(finite(*jac))
    seeds = np.eye(n)
    ours = run(program, [Dual(x, seeds[i]) for i, x in enumerate(xs)], np)
    assert ours.directions == (n,)
    close(ours.deriv, [float(j) for j in jac])


@settings(PROPERTY, max_examples=40)
@given(programs(max_inputs=2, max_len=5), st.integers(1, 4))
def test_arrays_with_broadcasting_match_jax(program, size):
    rng = np.random.default_rng(size)
    n = program[0]
    xs = [rng.uniform(-2, 2, size) if i == 0 else rng.uniform(-2, 2) for i in range(n)]
    ts = [rng.normal(size=np.shape(x)) for x in xs]
    f = lambda *a: run(program, a, jnp)  # noqa: E731
    out, tangent = jax.jvp(f, tuple(map(jnp.asarray, xs)), tuple(map(jnp.asarray, ts)))
    assume(finite(out, tangent))
    ours = run(program, [Dual(x, t) for x, t in zip(xs, ts, strict=True)], np)
    close(ours.value, np.broadcast_to(out, np.shape(ours.value)))
    close(ours.deriv, np.broadcast_to(tangent, np.shape(ours.deriv)))


def test_textbook_rules():
    u, v = Dual(3.0, 0.5), Dual(-2.0, 4.0)
    assert (u + v).value == 1.0 and (u + v).deriv == 4.5
    assert (u * v).value == -6.0 and (u * v).deriv == 0.5 * -2.0 + 3.0 * 4.0
    assert (u / v).deriv == pytest.approx((0.5 * -2.0 - 3.0 * 4.0) / 4.0, rel=1e-15)
    assert np.exp(u).deriv == pytest.approx(math.exp(3.0) * 0.5, rel=1e-15)


def test_euler_example_gives_minus_h_y0_squared():
    p, y0, h = Dual(0.7, 1.0), Dual(1.5, 0.0), Dual(0.05, 0.0)
    y1 = y0 - h * p * y0**2
    assert y1.value == pytest.approx(1.5 - 0.05 * 0.7 * 1.5**2, rel=1e-15)
    assert y1.deriv == pytest.approx(-0.05 * 1.5**2, rel=1e-15)


def test_each_elementary_function_matches_jax():
    x, t = 0.37, 1.3
    for name in ["sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "abs"]:
        ours = getattr(np, name)(Dual(x, t))
        value, tangent = jax.jvp(getattr(jnp, name), (jnp.asarray(x),), (jnp.asarray(t),))
        close(ours.value, value)
        close(ours.deriv, tangent)
    for name in ["minimum", "maximum", "power"]:
        ours = getattr(np, name)(Dual(x, t), Dual(0.8, -0.4))
        fun = getattr(jnp, name)
        value, tangent = jax.jvp(fun, (jnp.asarray(x), jnp.asarray(0.8)), (t, -0.4))
        close(ours.value, value)
        close(ours.deriv, tangent)


def test_ties_and_kinks_follow_jax():
    tie = np.minimum(Dual(1.0, 1.0), Dual(1.0, 3.0))
    assert tie.deriv == 2.0  # half of each, as jax
    assert abs(Dual(0.0, 1.0)).deriv == 1.0  # jax.grad(jnp.abs)(0.0) == 1
    assert np.where(Dual(2.0, 1.0) > 1.0, Dual(2.0, 1.0), 0.0).deriv == 1.0
    assert min(Dual(1.0, 1.0), Dual(2.0, 5.0)).deriv == 1.0  # builtins branch on values


def test_jvp_function_and_constant_output():
    assert jvp(lambda p, y0, h: y0 - h * p * y0**2, (0.5, 2.0, 0.1), (1.0, 0.0, 0.0)) == (
        1.8,
        -0.4,
    )
    assert jvp(lambda x: 3.0, (1.0,), (1.0,)) == (3.0, 0.0)


def test_count_ops_counts_primal_and_tangent_work():
    with count_ops() as n:
        Dual(3.0, 1.0) * Dual(2.0, 0.0) + 1.0
    assert (n.primal, n.tangent) == (2, 3)
    with count_ops() as n:
        np.sin(Dual(np.zeros(4), np.ones((2, 4))))  # 4 elements, 2 directions
    assert (n.primal, n.tangent) == (4, 4 * (1 + 2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: np.arcsinh(Dual(1.0, 1.0)), "numpy.arcsinh"),
        (lambda: np.mean(Dual(np.ones(2), np.ones(2))), "numpy.mean"),
        (lambda: np.add.reduce(Dual(np.ones(2), np.ones(2))), "numpy.add.reduce"),
        (lambda: np.sin(Dual(1.0, 1.0), dtype=np.float32), "keyword arguments"),
        (lambda: float(Dual(1.0, 1.0)), "float"),
        (lambda: bool(Dual(1.0, 1.0)), "truth value"),
        (lambda: np.asarray(Dual(1.0, 1.0)), "numpy array"),
        (lambda: Dual("1.0"), "Dual value"),
        (lambda: Dual(True), "Dual value"),
        (lambda: Dual(1.0, 1j), "Dual deriv"),
        (lambda: Dual(Dual(1.0)), "nested"),
        (lambda: Dual(1.0, 1.0) + "a", "unsupported operand"),
        (lambda: np.where(Dual(1.0, 1.0), 1.0, 2.0), "condition"),
        (lambda: Dual(1.0, 1.0)[0], "scalar Dual cannot be indexed"),
        (lambda: jvp(3, (1.0,), (1.0,)), "callable"),
        (lambda: jvp(np.sin, 1.0, 1.0), "tuples"),
    ],
)
def test_unsupported_raises_type_error_naming_it(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Dual(np.ones(3), np.ones(2)), "shape"),
        (lambda: Dual(1.0, [1.0, 0.0]) + Dual(1.0, 1.0), "directions"),
        (lambda: jvp(np.sin, (1.0,), (1.0, 2.0)), "one tangent per primal"),
    ],
)
def test_misuse_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_arrays_and_scalars_on_either_side():
    x = Dual(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    for y in (np.array([3.0, 4.0]) * x, x * np.array([3.0, 4.0]), np.float64(3.0) * x + 0 * x):
        assert isinstance(y, Dual)
    assert (np.array([3.0, 4.0]) * x).deriv.tolist() == [3.0, 0.0]
    assert (np.float64(2.0) ** x).deriv[0] == pytest.approx(2.0 * np.log(2.0), rel=1e-15)
