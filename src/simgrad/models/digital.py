"""A digital (cash-or-nothing) call: a hard threshold, where pathwise derivatives are zero."""

import math

import jax.numpy as jnp

from .. import random as sgr
from .base import AbstractModel


def digital_call(S0, sigma, K, r, T):
    r"""Cash-or-nothing call price $e^{-rT}\Phi(d_2)$, its delta and its vega (payout 1).

    delta $= e^{-rT}\varphi(d_2)/(S_0\sigma\sqrt T)$, vega $= -e^{-rT}\varphi(d_2)\,d_1/\sigma$,
    with $d_{1,2} = [\ln(S_0/K) + (r \pm \sigma^2/2)T]/\sigma\sqrt T$.
    """
    sqrt_t = math.sqrt(T)
    d1 = (math.log(S0 / K) + (r + 0.5 * sigma**2) * T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    disc = math.exp(-r * T)
    phi = math.exp(-0.5 * d2**2) / math.sqrt(2 * math.pi)
    price = disc * 0.5 * (1 + math.erf(d2 / math.sqrt(2)))
    return price, disc * phi / (S0 * sigma * sqrt_t), -disc * phi * d1 / sigma


class DigitalCall(AbstractModel):
    r"""A digital call paying 1 at $T$ if $S_T > K$: $e^{-rT}\,\mathbf 1\{S_T > K\}$.

    $\ln S_T \sim N(\ln S_0 + (r - \sigma^2/2)T,\ \sigma^2 T)$, drawn with
    `simgrad.random.normal` so that estimators see its distribution. ``theta`` is
    ``{"S0", "sigma"}``; price, delta and vega are known exactly (`digital_call`).

    Every sample path is flat in θ except at the threshold, so the pathwise gradient is
    exactly zero — and wrong. The score function differentiates the density of
    $\ln S_T$ instead and is unbiased.
    """

    K: float = 100.0
    r: float = 0.05
    T: float = 1.0

    name = "digital"
    summary = "digital (cash-or-nothing) call: payoff 1{S_T > K}; pathwise gives 0, wrongly"
    stochastic = True
    n_samples = 2**14

    def __call__(self, theta, key):
        S0, sigma = theta["S0"], theta["sigma"]
        loc = jnp.log(S0) + (self.r - 0.5 * sigma**2) * self.T
        log_st = sgr.normal(key, loc, sigma * math.sqrt(self.T))
        paid = jnp.where(log_st > math.log(self.K), 1.0, 0.0).astype(log_st.dtype)
        return math.exp(-self.r * self.T) * paid

    def default_theta(self):
        return {"S0": 100.0, "sigma": 0.2}

    def exact_value(self, theta):
        return digital_call(float(theta["S0"]), float(theta["sigma"]), self.K, self.r, self.T)[0]

    def exact_grad(self, theta):
        _, delta, vega = digital_call(
            float(theta["S0"]), float(theta["sigma"]), self.K, self.r, self.T
        )
        return {"S0": delta, "sigma": vega}
