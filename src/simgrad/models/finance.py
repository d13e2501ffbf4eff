"""Option pricing under geometric Brownian motion: a European call and an arithmetic Asian call."""

import math

import jax
import jax.numpy as jnp

from .base import AbstractModel


def black_scholes_call(S0, sigma, K, r, T):
    r"""Black–Scholes call price, delta $\partial_{S_0} C$ and vega $\partial_\sigma C$.

    $C = S_0 \Phi(d_1) - K e^{-rT} \Phi(d_2)$, $d_{1,2} = [\ln(S_0/K) + (r \pm \sigma^2/2)T]
    / \sigma\sqrt T$; delta $= \Phi(d_1)$, vega $= S_0 \varphi(d_1) \sqrt T$.
    """
    sqrt_t = math.sqrt(T)
    d1 = (math.log(S0 / K) + (r + 0.5 * sigma**2) * T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    Phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    price = S0 * Phi(d1) - K * math.exp(-r * T) * Phi(d2)
    delta = Phi(d1)
    vega = S0 * math.exp(-0.5 * d1**2) / math.sqrt(2 * math.pi) * sqrt_t
    return price, delta, vega


class EuropeanCall(AbstractModel):
    r"""A European call under Black–Scholes: $e^{-rT}(S_T - K)^+$ with one lognormal draw.

    $S_T = S_0 \exp((r - \sigma^2/2) T + \sigma \sqrt T Z)$, $Z \sim N(0, 1)$. ``theta`` is
    ``{"S0": spot, "sigma": volatility}``; the gradient is (delta, vega), known exactly. The
    payoff has a kink at the strike but the sample path is continuous, so the pathwise
    estimator is unbiased.
    """

    K: float = 100.0
    r: float = 0.05
    T: float = 1.0

    name = "european"
    summary = "European call under Black–Scholes, one lognormal draw; exact delta and vega"
    stochastic = True
    n_samples = 2**16

    def __call__(self, theta, key):
        S0, sigma = theta["S0"], theta["sigma"]
        z = jax.random.normal(key, dtype=jnp.result_type(S0))
        ST = S0 * jnp.exp((self.r - 0.5 * sigma**2) * self.T + sigma * jnp.sqrt(self.T) * z)
        return jnp.exp(-self.r * self.T) * jnp.maximum(ST - self.K, 0.0)

    def default_theta(self):
        return {"S0": 100.0, "sigma": 0.2}

    def exact_value(self, theta):
        return black_scholes_call(
            float(theta["S0"]), float(theta["sigma"]), self.K, self.r, self.T
        )[0]

    def exact_grad(self, theta):
        _, delta, vega = black_scholes_call(
            float(theta["S0"]), float(theta["sigma"]), self.K, self.r, self.T
        )
        return {"S0": delta, "sigma": vega}


class AsianCall(AbstractModel):
    r"""An arithmetic-average Asian call over ``n_steps`` daily steps, simulated by `lax.scan`.

    $S_{i+1} = S_i \exp((r - \sigma^2/2)\Delta t + \sigma\sqrt{\Delta t} Z_i)$, payoff
    $e^{-rT}(\bar S - K)^+$ with $\bar S = \frac1n\sum_{i=1}^n S_i$. ``theta`` is
    ``{"S0", "sigma"}``. No closed form exists for the arithmetic average, so
    ``exact_value`` and ``exact_grad`` are ``None``: its gradient is checked by two
    independent estimators (pathwise and finite differences with common random numbers).
    """

    K: float = 100.0
    r: float = 0.05
    T: float = 1.0
    n_steps: int = 252

    name = "asian"
    summary = (
        "arithmetic Asian call, 252 daily steps by lax.scan; no closed form: compare the "
        "pathwise and finite-difference (CRN) rows"
    )
    stochastic = True
    n_samples = 2**12

    def __call__(self, theta, key):
        S0, sigma = theta["S0"], theta["sigma"]
        dt = self.T / self.n_steps
        z = jax.random.normal(key, (self.n_steps,), dtype=jnp.result_type(S0))
        drift = (self.r - 0.5 * sigma**2) * dt

        def step(log_s, z_i):
            log_s = log_s + drift + sigma * math.sqrt(dt) * z_i
            return log_s, jnp.exp(log_s)

        _, path = jax.lax.scan(step, jnp.log(S0), z)
        return jnp.exp(-self.r * self.T) * jnp.maximum(jnp.mean(path) - self.K, 0.0)

    def default_theta(self):
        return {"S0": 100.0, "sigma": 0.2}

    def exact_value(self, theta):
        return None

    def exact_grad(self, theta):
        return None
