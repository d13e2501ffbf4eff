"""sg.taylor_test: rate 2 for a right gradient, 1 for a wrong one; dot-product test."""

import jax
import jax.numpy as jnp
import pytest

import simgrad as sg


def test_rate_two_for_the_right_gradient_and_one_for_a_wrong_one():
    f = lambda x: jnp.sum(jnp.exp(x) * x[::-1])  # noqa: E731
    x = jnp.array([0.3, -0.2, 1.1])
    good = sg.taylor_test(f, x, jax.grad(f)(x))
    assert good.passed and abs(good.rate - 2.0) < 0.05
    assert len(good.eps) == 6
    bad = sg.taylor_test(f, x, jax.grad(f)(x) * 1.01)
    assert not bad.passed and abs(bad.rate - 1.0) < 0.05


def test_taylor_steps_are_halved_from_one_hundredth():
    r = sg.taylor_test(lambda x: jnp.sum(x**3), jnp.ones(2), 3 * jnp.ones(2), jnp.ones(2))
    assert r.eps == tuple(1e-2 / 2**i for i in range(6))
    assert r.passed


def test_the_adjoint_package_uses_the_same_taylor_test():
    assert sg.adjoint.taylor_test is sg.taylor_test


def test_dot_product_test_passes_for_jax_and_fails_for_a_wrong_adjoint():
    f = lambda x: jnp.sin(x) * jnp.cumsum(x)  # noqa: E731
    assert sg.dot_product_test(f, jnp.arange(1.0, 5.0)).passed

    @jax.custom_vjp
    def g(x):
        return 2.0 * x

    g.defvjp(lambda x: (2.0 * x, None), lambda _, ct: (3.0 * ct,))  # wrong: should be 2
    result = sg.dot_product_test(g, jnp.arange(1.0, 5.0))
    assert not result.passed
    assert result.reverse == pytest.approx(1.5 * result.forward, rel=1e-8)

    @jax.custom_vjp
    def h(x):
        return 2.0 * x

    h.defvjp(lambda x: (2.0 * x, None), lambda _, ct: (2.0 * ct,))
    assert sg.dot_product_test(h, jnp.arange(1.0, 5.0)).passed


def test_dot_product_test_validates_its_input():
    with pytest.raises(TypeError, match="f must be a function"):
        sg.dot_product_test(1.0, jnp.ones(2))


def test_taylor_test_fails_with_a_reason_on_non_finite_values():
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    x = jnp.array([0.5, 1.0])
    r = sg.taylor_test(f, x, jnp.array([jnp.nan, 2.0]))
    assert not r.passed and "gradient is not finite" in r.reason and r.rates == ()
    r = sg.taylor_test(lambda x: jnp.sum(jnp.log(x)), jnp.array([1e-3]), jnp.array([1e3]),
                       jnp.array([-1.0]))  # fmt: skip
    assert not r.passed and "domain" in r.reason
    r = sg.taylor_test(f, x, 2 * x * 1.01)
    assert not r.passed and "rate 1.0" in r.reason
    assert sg.taylor_test(f, x, 2 * x).reason == ""
