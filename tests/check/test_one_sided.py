"""sg.one_sided: exact one-sided derivatives on a table of kinked functions, and JAX's jvp
away from kinks (hypothesis)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simgrad as sg

# (name, f, theta, direction, exact left derivative, exact right derivative)
TABLE = [
    ("min(θ², 2θ) at 2", lambda t: jnp.minimum(t**2, 2 * t), 2.0, 1.0, 4.0, 2.0),
    ("min(θ², 2θ) at 0", lambda t: jnp.minimum(t**2, 2 * t), 0.0, 1.0, 2.0, 0.0),
    ("max(θ², 2θ) at 2", lambda t: jnp.maximum(t**2, 2 * t), 2.0, 1.0, 2.0, 4.0),
    ("|θ| at 0", jnp.abs, 0.0, 1.0, -1.0, 1.0),
    ("|θ| at 0, h = -2", jnp.abs, 0.0, -2.0, -2.0, 2.0),
    ("relu at 0", jax.nn.relu, 0.0, 1.0, 0.0, 1.0),
    ("clip(θ, 0, 1) at 1", lambda t: jnp.clip(t, 0.0, 1.0), 1.0, 1.0, 1.0, 0.0),
    ("clip(θ, 0, 1) at 0", lambda t: jnp.clip(t, 0.0, 1.0), 0.0, 1.0, 0.0, 1.0),
    ("where(θ > 0, θ, -θ) at 0", lambda t: jnp.where(t > 0, t, -t), 0.0, 1.0, -1.0, 1.0),
    ("where(θ >= 1, 3θ, θ + 2) at 1", lambda t: jnp.where(t >= 1, 3 * t, t + 2), 1.0, 1.0, 1.0, 3.0),  # noqa: E501
    ("max of a vector at a tie", lambda t: jnp.max(jnp.stack([t, 2 * t - 1, 1.0])), 1.0, 1.0, 0.0, 2.0),  # noqa: E501
    ("|sin θ| at fl(π)", lambda t: jnp.abs(jnp.sin(t)), np.pi, 1.0, -1.0, -1.0),
    ("min inside a scan", lambda t: jax.lax.scan(lambda c, _: (jnp.minimum(c, 1.0) * t, None), t, None, length=2)[0], 1.0, 1.0, 3.0, 1.0),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize("name, f, theta, h, left, right", TABLE, ids=[r[0] for r in TABLE])
def test_one_sided_equals_the_analytic_derivatives(name, f, theta, h, left, right):
    d = sg.one_sided(f, theta, h)
    # |sin θ| at fl(π): sin is 1.2e-16 there, not 0 — the kink is just beside, not at θ.
    np.testing.assert_allclose([float(d.left), float(d.right)], [left, right], atol=1e-12)
    np.testing.assert_allclose(float(d.value), float(f(jnp.asarray(theta))), atol=1e-15)
    assert d.kink == (abs(left - right) > 0)


def test_textbook_kink_pytree_theta_and_direction():
    d = sg.one_sided(lambda p: jnp.minimum(p["a"] ** 2, 2 * p["b"]), {"a": 2.0, "b": 2.0},
                     {"a": 1.0, "b": 1.0})  # fmt: skip
    assert (float(d.left), float(d.right)) == (4.0, 2.0)


PIECEWISE = [
    lambda t: jnp.minimum(t**2, 2 * t) + jnp.abs(t - 0.3),
    lambda t: jnp.clip(jnp.sin(3 * t), -0.5, 0.5) * jax.nn.relu(t),
    lambda t: jnp.where(t > 0.1, jnp.exp(t), 1.0 + t) + jnp.max(jnp.stack([t, -t, t**3])),
]


@settings(max_examples=40, deadline=None)
@given(
    i=st.integers(0, len(PIECEWISE) - 1),
    theta=st.floats(-2.0, 2.0, allow_nan=False),
    h=st.floats(0.1, 3.0) | st.floats(-3.0, -0.1),
)
def test_one_sided_agrees_with_jvp_away_from_kinks(i, theta, h):
    f = PIECEWISE[i]
    # Stay away from the kinks: 0, 0.1, 0.3, 2, ±1 and where |sin 3θ| = 0.5.
    kinks = np.array([0.0, 0.1, 0.3, 2.0, -1.0, 1.0])
    sin_kinks = np.array(
        [(a + np.pi * k) / 3 for a in (np.pi / 6, 5 * np.pi / 6) for k in range(-3, 4)]
    )
    if np.min(np.abs(np.concatenate([kinks, sin_kinks]) - theta)) < 1e-6:
        return
    d = sg.one_sided(f, theta, h)
    _, tangent = jax.jvp(f, (jnp.asarray(theta),), (jnp.asarray(h),))
    np.testing.assert_allclose(float(d.right), float(tangent), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(d.left), float(tangent), rtol=1e-12, atol=1e-12)
    assert not d.kink


def test_one_sided_validates_its_input():
    with pytest.raises(TypeError, match="f must be a function"):
        sg.one_sided(3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="direction must have theta's structure"):
        sg.one_sided(jnp.abs, {"a": 1.0}, 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        sg.one_sided(jnp.abs, 1, 1)


def test_one_sided_through_a_while_loop_with_a_comparison_in_its_condition():
    """f(t) = t · (number of halvings of t until below 0.1): piecewise linear in t."""

    def f(t):
        n, _ = jax.lax.while_loop(
            lambda c: c[1] > 0.1, lambda c: (c[0] + 1.0, c[1] * 0.5), (0.0, t)
        )
        return n * t

    d = sg.one_sided(f, 0.7, 1.0)  # 0.7 → 0.35 → 0.175 → 0.0875: n = 3 on both sides
    assert (float(d.left), float(d.right)) == (3.0, 3.0)
    # Below 0.4 one halving fewer is needed: n = 2 on both sides of 0.3.
    d = sg.one_sided(f, 0.3, 1.0)
    assert (float(d.left), float(d.right)) == (2.0, 2.0)


def test_one_sided_at_a_singular_point_says_so_instead_of_nan():
    """sqrt(θ²) = |θ| at 0: forward mode meets ∞ · 0; the sides come from difference
    quotients, exactly -1 and 1, flagged as not exact, naming sqrt."""
    d = sg.one_sided(lambda t: jnp.sqrt(t**2), 0.0, 1.0)
    assert (float(d.left), float(d.right), d.kink, d.exact) == (-1.0, 1.0, True, False)
    assert "sqrt at" in d.note and "singular point" in d.note
    d = sg.one_sided(jnp.sqrt, 0.0, 1.0)  # infinite slope on the right, undefined on the left
    assert float(d.right) == np.inf and np.isnan(float(d.left)) and d.kink
