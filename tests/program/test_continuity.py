"""A `jnp.where` whose branches meet where its comparison flips is a kink, not a jump
(`simgrad._src.program.continuity`): read through `sg.check`, as a user sees it, and
against the truth of each program (continuous or not), decided here by hand."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import simgrad as sg


def _kinds(sim, theta) -> set[str]:
    return {finding.kind for finding in sg.check(sim, theta).findings}


CONTINUOUS = {
    # the call payoff, S computed once and the strike a Python number
    "call_payoff": lambda t, k: (lambda s: jnp.where(s > 1.0, s - 1.0, 0.0))(
        t * jnp.exp(0.2 * jax.random.normal(k))
    ),
    # S computed twice (no common subexpression in the program): the same atom
    "call_payoff_recomputed": lambda t, k: jnp.where(
        t * jnp.exp(jax.random.normal(k)) > 1.0, t * jnp.exp(jax.random.normal(k)) - 1.0, 0.0
    ),
    "relu_as_where": lambda t, k: jnp.where(t > 0, t, 0.0),
    "leaky_relu": lambda t, k: jax.nn.leaky_relu(t, 0.1),
    "min_as_where": lambda t, k: jnp.where(t < 2.0, t, 2.0),
    "square_above_zero": lambda t, k: jnp.where(t < 0, 0.0, t**2),
    "scaled_payoff": lambda t, k: jnp.where(t > 1, (t - 1) * jnp.exp(t), 0.0),
    "vector_strikes": lambda t, k: jnp.sum(
        jnp.where(t > jnp.array([1.0, 2.0]), t - jnp.array([1.0, 2.0]), 0.0)
    ),
    "inside_scan": lambda t, k: lax.scan(
        lambda c, _: (c + jnp.where(c > 1.0, c - 1.0, 0.0), None), t, None, length=3
    )[0],
}

JUMPS = {
    "step_of_half": lambda t, k: jnp.where(t > 0.5, t, 0.0),  # jumps by 0.5
    "indicator": lambda t, k: jnp.where(t > 0, 1.0, 0.0),
    "mismatched_strikes": lambda t, k: jnp.sum(
        jnp.where(t > jnp.array([1.0, 2.0]), t - jnp.array([2.0, 1.0]), 0.0)
    ),
    "other_draw": lambda t, k: jnp.where(
        t + jax.random.normal(k) > 0, t + jax.random.normal(jax.random.fold_in(k, 1)), 0.0
    ),
    # one comparison used twice: by a meeting where, and as a 0/1 factor (a jump)
    "used_twice": lambda t, k: (lambda c: c.astype(t.dtype) + jnp.where(c, t, 0.0))(t > 0),
    "carried_on": lambda t, k: lax.scan(
        lambda c, _: (jnp.where(c > 1.0, c, 0.0) + 1.0, None), t, None, length=3
    )[0],
}


@pytest.mark.parametrize("name", CONTINUOUS)
def test_branches_that_meet_are_a_kink(name):
    assert _kinds(CONTINUOUS[name], 0.7) == {"kink"}


@pytest.mark.parametrize("name", JUMPS)
def test_branches_that_do_not_meet_are_a_threshold(name):
    assert "threshold" in _kinds(JUMPS[name], 0.7)


def test_sorted_values_are_continuous_and_the_order_is_not():
    x = jnp.array([0.3, -0.2, 0.5])
    assert _kinds(lambda t, k: jnp.sum(jnp.sort(t) * jnp.arange(3.0)), x) == {"kink"}
    assert _kinds(lambda t, k: jnp.median(t), x) == {"kink"}
    assert _kinds(lambda t, k: lax.top_k(t, 2)[0].sum(), x) == {"kink"}
    order = _kinds(lambda t, k: t[jnp.argsort(t)[0]], x)
    assert "discrete_choice" in order


def test_pathwise_through_a_meeting_where_is_unbiased_and_says_so():
    """E[max(θ + Z - 1, 0)] written with where: d/dθ = P(θ + Z > 1) = Φ(θ - 1)."""
    from scipy.special import ndtr

    def sim(theta, key):
        x = theta + jax.random.normal(key)
        return jnp.where(x > 1.0, x - 1.0, 0.0)

    est = sg.gradient(sim, 0.5, jax.random.key(3), method=sg.Pathwise(), n_samples=2**14)
    assert est.claim == "unbiased"
    assert abs(float(est.grad) - ndtr(-0.5)) < 4.5 * float(est.grad_stderr)
