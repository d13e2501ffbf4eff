"""Programs with known defects, one per kind, for the checker's tests (and `simgrad check`).

Each marked line carries a ``# DEFECT: kind`` comment; the tests read the line numbers
from this file, so the checker must point at exactly that line.
"""

import jax
import jax.numpy as jnp
from jax import lax

import simgrad as sg


def threshold(t, key):
    return jnp.where(t > 1.0, t**2, 0.0)  # DEFECT: threshold


def accept_reject(t, key):
    u = jax.random.uniform(key, (64,))
    x = jax.random.uniform(jax.random.split(key)[0], (64,))
    accepted = u < jnp.exp(-t * x)  # DEFECT: threshold
    return jnp.mean(jnp.where(accepted, x, 0.0))


def rounding(t, key):
    return jnp.floor(3.0 * t) + t  # DEFECT: rounding


def integer_cast(t, key):
    n = (t * 4.0).astype(jnp.int32)  # DEFECT: rounding
    return jnp.sin(t) * n.astype(t.dtype)


def kinks(t, key):
    a = jnp.abs(t - 1.0)  # DEFECT: kink
    b = jax.nn.relu(t - 2.0)  # DEFECT: kink
    c = jnp.clip(t, 0.0, 3.0)  # DEFECT: kink
    return a + b + c


def choices(t, key):
    x = jnp.stack([t, 2.0 - t, 0.5 * t])
    i = jnp.argmax(x)  # DEFECT: discrete_choice
    s = jnp.sort(x)  # DEFECT: kink (sorted values are continuous)
    return s[0] + i.astype(t.dtype)


def while_trip_count(t, key):
    def body(c):
        return c[0] + 1.0, c[1] * 0.5

    return lax.while_loop(lambda c: c[1] > 0.1, body, (0.0, t))[0]  # DEFECT: while_loop


def discrete_draws(t, key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    a = sg.random.poisson(k1, t)  # DEFECT: discrete_draw
    b = jax.random.bernoulli(k2, t / 10.0)  # DEFECT: discrete_draw
    c = jax.random.categorical(k3, jnp.stack([t, 1.0]))  # DEFECT: discrete_draw
    d = jax.random.randint(k4, (), 0, (t * 10.0).astype(jnp.int32))  # DEFECT: discrete_draw
    return a + b.astype(t.dtype) + c.astype(t.dtype) + d.astype(t.dtype)


def eigen(t, key):
    a = jnp.array([[t, 0.0], [0.0, 1.0]])
    w, v = jnp.linalg.eigh(a)  # DEFECT: eigen
    return w[0] + v[0, 0] ** 2


def nan_where(t, key):
    return jnp.where(t > 0.0, jnp.sqrt(t), 0.0)  # DEFECT: nan_where


def double_where(t, key):
    safe = jnp.where(t > 0.0, t, 1.0)
    return jnp.where(t > 0.0, jnp.sqrt(safe), 0.0)


def threshold_in_scan(t, key):
    def step(c, x):
        return c + jnp.where(c > x, 1.0, 0.0) * t, None  # DEFECT: threshold

    return lax.scan(step, t, jnp.arange(3.0))[0]


def dead_defect(t, key):
    _ = jnp.floor(t)  # never reaches the output
    return t**2


def theta_free_defect(t, key):
    z = jax.random.normal(key)
    return t * jnp.maximum(z, 0.0) + jnp.floor(z)


def smooth_ode(t, key):
    def rhs(y, _):
        return y + 0.01 * (-t * y + jnp.sin(y)), None

    return lax.scan(rhs, 1.0, None, length=50)[0]


def black_scholes(theta, key):
    s0, sigma = theta[0], theta[1]
    k, r, T = 100.0, 0.05, 1.0
    d1 = (jnp.log(s0 / k) + (r + 0.5 * sigma**2) * T) / (sigma * jnp.sqrt(T))
    d2 = d1 - sigma * jnp.sqrt(T)
    cdf = lambda x: 0.5 * (1.0 + jax.scipy.special.erf(x / jnp.sqrt(2.0)))  # noqa: E731
    return s0 * cdf(d1) - k * jnp.exp(-r * T) * cdf(d2)


def smooth_library(t, key):
    """Smooth functions that branch inside for accuracy: norm.cdf, softplus, logsumexp."""
    x = jax.scipy.stats.norm.cdf(t) + jax.nn.softplus(t) + jax.nn.sigmoid(t)
    return x + jax.scipy.special.logsumexp(jnp.stack([t, 2.0 * t])) + jnp.logaddexp(t, 1.0)
