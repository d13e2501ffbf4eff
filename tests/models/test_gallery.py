"""The gallery's closed forms, checked against independent computations."""

import math

import jax
import numpy as np
import pytest

import simgrad as sg
from simgrad.models import GALLERY, black_scholes_call


@pytest.mark.parametrize("name", GALLERY)
def test_every_model_runs_and_has_a_summary(name, key):
    model = GALLERY[name]
    theta = model.default_theta()
    value = model(jax.tree.map(np.asarray, theta), key)
    assert np.shape(value) == () and np.isfinite(value)
    assert model.summary and model.name == name and model.n_samples >= 2


def test_black_scholes_greeks_are_derivatives_of_the_price():
    S0, sigma, K, r, T = 95.0, 0.3, 100.0, 0.02, 0.5
    h = 1e-5
    price = lambda s, v: black_scholes_call(s, v, K, r, T)[0]  # noqa: E731
    _, delta, vega = black_scholes_call(S0, sigma, K, r, T)
    assert delta == pytest.approx((price(S0 + h, sigma) - price(S0 - h, sigma)) / (2 * h), rel=1e-7)
    assert vega == pytest.approx((price(S0, sigma + h) - price(S0, sigma - h)) / (2 * h), rel=1e-7)
    # put-call parity with the put priced by the same formula's symmetry: C - P = S0 - K e^{-rT}
    d1 = (math.log(S0 / K) + (r + sigma**2 / 2) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    Phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    put = K * math.exp(-r * T) * Phi(-d2) - S0 * Phi(-d1)
    assert price(S0, sigma) - put == pytest.approx(S0 - K * math.exp(-r * T), rel=1e-12)


WITH_EXACT_VALUE = [
    n for n, m in GALLERY.items() if m.stochastic and m.exact_value(m.default_theta()) is not None
]


@pytest.mark.parametrize("name", WITH_EXACT_VALUE)
def test_monte_carlo_mean_matches_exact_value(name, key):
    model = GALLERY[name]
    theta = model.default_theta()
    exact = model.exact_value(theta)
    est = sg.gradient(model, theta, key, method=sg.Pathwise(), n_samples=100_000)
    assert abs(est.value - exact) < 4 * est.value_stderr


def test_kink_has_no_exact_gradient_at_its_kinks_only():
    kink = sg.models.Kink()
    assert kink.exact_grad(2.0) is None and kink.exact_grad(0.0) is None
    assert kink.exact_grad(1.0) == 2.0 and kink.exact_grad(3.0) == 2.0
    assert kink.exact_value(2.0) == 4.0


def test_asian_call_geometric_limit_with_one_step_is_the_european(key):
    # With one averaging date the arithmetic Asian payoff is the European payoff at T.
    asian = sg.models.AsianCall(n_steps=1)
    theta = {"S0": 100.0, "sigma": 0.2}
    est = sg.gradient(asian, theta, key, method=sg.Pathwise(), n_samples=100_000)
    exact = sg.models.EuropeanCall().exact_grad(theta)
    for name in ("S0", "sigma"):
        assert abs(est.grad[name] - exact[name]) < 4 * est.grad_stderr[name]
