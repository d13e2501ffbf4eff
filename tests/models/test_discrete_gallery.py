"""The gallery models added with the score function: closed forms checked independently."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.models import GALLERY, digital_call

NEW = ["digital", "mm1", "poisson", "bernoulli", "random_walk", "bandit"]


@pytest.mark.parametrize("name", NEW)
def test_models_are_registered_and_documented(name):
    model = GALLERY[name]
    assert model.name == name and model.stochastic and model.summary
    assert model.__doc__ and 2 <= model.n_samples <= 2**15


@pytest.mark.parametrize("name", ["mm1", "poisson", "bernoulli", "random_walk"])
def test_exact_grad_is_the_derivative_of_exact_value(name):
    model = GALLERY[name]
    t, h = float(model.default_theta()) * 0.9, 1e-6
    fd = (model.exact_value(t + h) - model.exact_value(t - h)) / (2 * h)
    assert model.exact_grad(t) == pytest.approx(fd, rel=1e-6)


def test_digital_greeks_are_derivatives_of_its_price():
    S0, sigma, K, r, T, h = 95.0, 0.3, 100.0, 0.02, 0.5, 1e-5
    price = lambda s, v: digital_call(s, v, K, r, T)[0]  # noqa: E731
    _, delta, vega = digital_call(S0, sigma, K, r, T)
    assert delta == pytest.approx((price(S0 + h, sigma) - price(S0 - h, sigma)) / (2 * h), rel=1e-7)
    assert vega == pytest.approx((price(S0, sigma + h) - price(S0, sigma - h)) / (2 * h), rel=1e-7)
    # digital = -∂(call)/∂K: check against the Black–Scholes call by differencing in K
    call = lambda k: sg.models.black_scholes_call(S0, sigma, k, r, T)[0]  # noqa: E731
    assert price(S0, sigma) == pytest.approx(-(call(K + h) - call(K - h)) / (2 * h), rel=1e-6)


def test_random_walk_sums_match_brute_force_enumeration():
    model = sg.models.RandomWalk(n_steps=6)
    p = 0.35
    value = sum(
        max(sum(s), 0) * math.prod(p if x > 0 else 1 - p for x in s)
        for s in itertools.product((1, -1), repeat=6)
    )
    assert model.exact_value(p) == pytest.approx(value, rel=1e-12)


def test_bandit_gradient_is_the_softmax_policy_gradient():
    model = GALLERY["bandit"]
    theta = np.array([0.3, -0.2, 0.8])
    means = jnp.asarray(model.means)
    value = lambda t: jax.nn.softmax(t) @ means  # noqa: E731
    assert model.exact_value(theta) == pytest.approx(float(value(jnp.asarray(theta))), rel=1e-12)
    np.testing.assert_allclose(model.exact_grad(theta), jax.grad(value)(jnp.asarray(theta)))


def test_mm1_pathwise_is_ipa_and_unbiased(key):
    model = GALLERY["mm1"]
    est = sg.gradient(model, 2.0, key, method=sg.Pathwise(), n_samples=2**13)
    assert abs(est.grad - model.exact_grad(2.0)) < 4 * est.grad_stderr
    assert abs(est.value - model.exact_value(2.0)) < 4 * est.value_stderr


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "random_walk", "bandit"])
def test_pathwise_misses_discrete_draws(name, key):
    model = GALLERY[name]
    est = sg.gradient(model, model.default_theta(), key, method=sg.Pathwise(), n_samples=16)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(est.grad))
    assert any(
        np.any(np.asarray(g) != 0) for g in jax.tree.leaves(model.exact_grad(model.default_theta()))
    )
