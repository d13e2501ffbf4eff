"""Simulators with exact answers shared by the tests."""

import jax.numpy as jnp

import simgrad as sg


def noisy_square(theta, key):
    """``X² - 1``, X ~ N(θ, 1): E = θ², ∇E = 2θ (per-sample pathwise std 2).

    The draw goes through `simgrad.random`, so every estimator — the score function too —
    can see it.
    """
    return sg.random.normal(key, theta, 1.0) ** 2 - 1


def quadratic_tree(theta, key):
    """Deterministic on a pytree: Σ a·x² + sin(y)·b, exact gradient below."""
    x, y = theta["x"], theta["y"]
    return jnp.sum(jnp.arange(1, x.size + 1, dtype=x.dtype) * x**2) + jnp.sin(y[0]) * y[1]


def quadratic_tree_grad(theta):
    x, y = theta["x"], theta["y"]
    return {
        "x": 2 * jnp.arange(1, x.size + 1, dtype=x.dtype) * x,
        "y": jnp.stack([jnp.cos(y[0]) * y[1], jnp.sin(y[0])]),
    }
