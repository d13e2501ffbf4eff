"""Pathwise AD against exact answers: the textbook Euler step, Black–Scholes, the Asian call."""

import jax
import numpy as np
import pytest

import simgrad as sg


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_euler_derivative_to_machine_precision(mode, key):
    model = sg.models.EulerDecay(y0=1.3, h=0.05)
    est = sg.gradient(model, 0.7, key, method=sg.Pathwise(mode=mode), n_samples=2)
    assert float(est.grad) == pytest.approx(-0.05 * 1.3**2, rel=4 * np.finfo(float).eps)
    assert float(est.grad_stderr) == 0.0


@pytest.mark.parametrize(
    "method",
    [
        sg.Pathwise(),
        sg.Pathwise(mode="forward"),
        sg.FiniteDifference(),
        sg.FiniteDifference(scheme="forward"),
    ],
    ids=repr,
)
def test_black_scholes_delta_and_vega(method, key):
    model = sg.models.EuropeanCall()
    theta = {"S0": 105.0, "sigma": 0.25}
    est = sg.gradient(model, theta, key, method=method, n_samples=200_000)
    exact = model.exact_grad(theta)
    for name in ("S0", "sigma"):
        assert abs(est.grad[name] - exact[name]) < 4 * est.grad_stderr[name], name
    assert abs(est.value - model.exact_value(theta)) < 4 * est.value_stderr


def test_asian_call_pathwise_agrees_with_finite_differences_under_crn(key):
    # No closed form: two independent methods on the same keys must agree. With common
    # random numbers each sample's difference quotient tracks its pathwise derivative, so
    # the two agree far inside either's Monte Carlo error (up to paths at the strike).
    model = sg.models.AsianCall()
    theta = model.default_theta()
    pathwise = sg.gradient(model, theta, key, method=sg.Pathwise(), n_samples=4096)
    fd = sg.gradient(model, theta, key, method=sg.FiniteDifference(crn=True), n_samples=4096)
    for name in ("S0", "sigma"):
        assert abs(pathwise.grad[name] - fd.grad[name]) < 0.01 * pathwise.grad_stderr[name]
        assert abs(pathwise.grad[name] - fd.grad[name]) < 1e-5 * abs(pathwise.grad[name])


def test_forward_and_reverse_agree_per_sample(key):
    model = sg.models.AsianCall(n_steps=12)
    theta = model.default_theta()
    rev = sg.gradient(model, theta, key, method=sg.Pathwise(), n_samples=256)
    fwd = sg.gradient(model, theta, key, method=sg.Pathwise(mode="forward"), n_samples=256)
    for a, b in zip(jax.tree.leaves(rev.grad_std), jax.tree.leaves(fwd.grad_std), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
