"""Discrete toys with closed-form derivatives: Poisson, Bernoulli, a random walk."""

import math

import jax.numpy as jnp

from .. import random as sgr
from .base import AbstractModel


class PoissonToy(AbstractModel):
    r"""$x^2$ for $x \sim \mathrm{Poisson}(\lambda)$, with exact mean and gradient.

    $\mathbb E = \lambda + \lambda^2$, gradient $1 + 2\lambda$. Each sample path
    is constant in λ (the count jumps), so the pathwise gradient is zero.
    """

    name = "poisson"
    summary = "x² with x ~ Poisson(rate): E = rate + rate², gradient 1 + 2·rate; pathwise gives 0"
    stochastic = True
    n_samples = 2**14

    def __call__(self, theta, key):
        return sgr.poisson(key, theta) ** 2

    def default_theta(self):
        return 3.0

    def exact_value(self, theta):
        return float(theta) + float(theta) ** 2

    def exact_grad(self, theta):
        return 1 + 2 * float(theta)


class BernoulliToy(AbstractModel):
    r"""$(b - t)^2$ for $b \sim \mathrm{Bernoulli}(p)$, $t = 0.45$: gradient $1 - 2t = 0.1$.

    The classic hard case for discrete gradient estimators (Tucker et al., REBAR, 2017):
    a small gradient next to a large value, so the vanilla score function is noisy.
    """

    target: float = 0.45

    name = "bernoulli"
    summary = "(b - 0.45)² with b ~ Bernoulli(p): gradient 0.1, small next to the value"
    stochastic = True
    n_samples = 2**14

    def __call__(self, theta, key):
        return (sgr.bernoulli(key, theta) - self.target) ** 2

    def default_theta(self):
        return 0.3

    def exact_value(self, theta):
        p, t = float(theta), self.target
        return p * (1 - t) ** 2 + (1 - p) * t**2

    def exact_grad(self, theta):
        return (1 - self.target) ** 2 - self.target**2


class RandomWalk(AbstractModel):
    r"""$\max(S_n, 0)$ for a ±1 random walk of ``n_steps`` steps, up with probability $p$.

    $S_n = 2K - n$, $K \sim \mathrm{Binomial}(n, p)$ (drawn as ``n`` Bernoulli steps);
    $\mathbb E$ and $\partial_p \mathbb E$ are finite sums over the binomial law.
    """

    n_steps: int = 20

    name = "random_walk"
    summary = "max(S_n, 0) of a ±1 random walk with up-probability p, 20 Bernoulli steps"
    stochastic = True
    n_samples = 2**13

    def __call__(self, theta, key):
        steps = 2 * sgr.bernoulli(key, theta, shape=(self.n_steps,)) - 1
        return jnp.maximum(jnp.sum(steps), 0.0)

    def default_theta(self):
        return 0.5

    def _sums(self, p):
        n, value, grad = self.n_steps, 0.0, 0.0
        for k in range(n + 1):
            payoff = max(2 * k - n, 0)
            c = math.comb(n, k)
            value += payoff * c * p**k * (1 - p) ** (n - k)
            dpmf = c * (k * p ** (k - 1) * (1 - p) ** (n - k) if k else 0.0)
            dpmf -= c * ((n - k) * p**k * (1 - p) ** (n - k - 1) if k < n else 0.0)
            grad += payoff * dpmf
        return value, grad

    def exact_value(self, theta):
        return self._sums(float(theta))[0]

    def exact_grad(self, theta):
        return self._sums(float(theta))[1]
