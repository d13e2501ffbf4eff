"""Reverse mode (`Tape`) against `jax.grad`, and the one-sweep property."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference_programs import inputs, programs, run

from simgrad.reference import Dual, Tape, count_ops, grad

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


def finite(*xs, bound=1e8):
    return all(np.all(np.isfinite(x)) and np.all(np.abs(x) < bound) for x in xs)


@PROPERTY
@given(programs(), inputs)
def test_tape_matches_jax_grad(program, xs):
    n = program[0]
    xs = xs[:n]
    f = lambda *a: run(program, a, jnp)  # noqa: E731
    value, grads = jax.value_and_grad(f, argnums=tuple(range(n)))(*map(jnp.asarray, xs))
    assume(finite(value, *grads))
    tape = Tape()
    out = run(program, [tape.var(x) for x in xs], np)
    close(out.value, value)
    close(tape.gradient(out), [float(g) for g in grads])


@settings(PROPERTY, max_examples=40)
@given(programs(max_inputs=2, max_len=5), st.integers(1, 4))
def test_tape_on_arrays_with_broadcasting_matches_jax(program, size):
    rng = np.random.default_rng(size)
    n = program[0]
    xs = [rng.uniform(-2, 2, size) if i == 0 else rng.uniform(-2, 2) for i in range(n)]

    def f(*a):
        return jnp.sum(run(program, a, jnp))

    value, grads = jax.value_and_grad(f, argnums=tuple(range(n)))(*map(jnp.asarray, xs))
    assume(finite(value, *grads))
    ours = grad(lambda *a: np.sum(run(program, a, np)))(*xs)
    for g, expected, x in zip(ours, grads, xs, strict=True):
        assert np.shape(g) == np.shape(x)
        close(g, expected)


@PROPERTY
@given(programs(), inputs)
def test_one_backward_sweep_equals_n_forward_passes(program, xs):
    n = program[0]
    xs = xs[:n]
    tape = Tape()
    out = run(program, [tape.var(x) for x in xs], np)
    reverse = tape.gradient(out)
    forward = [
        run(program, [Dual(x, float(i == j)) for j, x in enumerate(xs)], np).deriv for i in range(n)
    ]
    assume(finite(reverse, forward))
    close(reverse, forward)


def test_euler_example_all_three_derivatives_in_one_sweep():
    tape = Tape()
    p, y0, h = tape.var(0.5, "p"), tape.var(2.0, "y0"), tape.var(0.1, "h")
    y1 = y0 - h * p * y0**2
    with count_ops() as n:
        g = tape.gradient(y1)
    assert g == pytest.approx([-0.1 * 4.0, 1 - 2 * 0.1 * 0.5 * 2.0, -0.5 * 4.0], rel=1e-15)
    assert n.backward > 0 and n.primal == 0  # the sweep evaluates nothing of f again
    assert tape.gradient(y1, [h]) == pytest.approx([-2.0])


def test_backward_records_every_update_and_skips_unused_entries():
    tape = Tape()
    x, y = tape.var(3.0, "x"), tape.var(4.0, "y")
    unused = np.sin(y)
    z = x * x
    adjoint, updates = tape.backward(z)
    assert adjoint[x.index] == 6.0 and adjoint[y.index] == 0.0
    assert [(u.entry.op, tape.names[u.input]) for u in updates] == [
        ("multiply", "x"),
        ("multiply", "x"),
    ]
    assert unused.name == "v1" and str(tape) == "v1 = sin(y)\nv2 = multiply(x, x)"


def test_grad_of_a_constant_function_is_zero():
    assert grad(lambda x, y: 2.0)(1.0, np.ones(2))[1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: np.arcsinh(Tape().var(1.0)), "numpy.arcsinh"),
        (lambda: np.cumsum(Tape().var(np.ones(2))), "numpy.cumsum"),
        (lambda: float(Tape().var(1.0)), "float"),
        (lambda: Tape().var(np.ones(2))[0], "indexing"),
        (lambda: Tape().var("x"), "Tape.var value"),
        (lambda: Tape().var(1.0, name=3), "name"),
        (lambda: Tape().var(Tape().var(1.0)), "float or an array"),
        (lambda: Tape().gradient(1.0), "did not use its inputs"),
        (lambda: Tape().var(1.0) + Dual(1.0, 1.0), "unsupported operand"),
        (lambda: np.add(Tape().var(1.0), Dual(1.0, 1.0)), "cannot combine"),
        (lambda: grad(2.0), "callable"),
        (lambda: grad(np.sin)(), "at least one argument"),
        (lambda: Tape().gradient(Tape().var(1.0), wrt=3), "list of Vars"),
    ],
)
def test_unsupported_raises_type_error_naming_it(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_misuse_raises_value_error():
    a, b = Tape().var(1.0), Tape().var(2.0)
    with pytest.raises(ValueError, match="different tapes"):
        a + b
    with pytest.raises(ValueError, match="another tape"):
        a.tape.gradient(b)
    tape = Tape()
    x = tape.var(np.ones(3))
    with pytest.raises(ValueError, match="scalar output"):
        tape.gradient(x * 2.0)
