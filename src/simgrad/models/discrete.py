r"""Discrete stochastic processes with exact derivatives: the benchmarks of stochastic triples.

* `StateDependentWalk`: the random walk of the StochasticAD.jl tutorial, whose step
  probability depends on its state (exact by dynamic programming over the state's law);
* `BirthDeath`: mRNA birth–death (production and degradation) on a fixed time grid
  (exact by a moment recursion).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import random as sgr
from .base import AbstractModel


class StateDependentWalk(AbstractModel):
    r"""$X_n^2$ for a walk that steps up with probability $e^{-X/p}$, down otherwise.

    $X_0 = 0$; at each of ``n_steps`` steps $X \mathrel{+}= 1$ with probability
    $e^{-X/p}$ and $X \mathrel{-}= 1$ otherwise (so $X \ge 0$: at 0 it always steps up).
    The tutorial problem of StochasticAD.jl, with $p = 2n$. Every step is a Bernoulli draw
    whose probability depends on the state, so the score of the whole path accumulates
    ``n`` terms; the exact $\mathbb E$ and $\partial_p \mathbb E$ come from dynamic
    programming over the law of $X$ with its derivative carried along (`exact_value`,
    `exact_grad`).

    Examples:
        >>> import jax, simgrad as sg
        >>> walk = sg.models.StateDependentWalk(n_steps=10)
        >>> round(walk.exact_grad(20.0), 6)
        1.489818
    """

    n_steps: int = 10

    name = "state_walk"
    summary = "X_n² of a walk stepping up w.p. exp(-X/p) (StochasticAD tutorial), p = 2n"
    stochastic = True
    n_samples = 2**12

    def __call__(self, theta, key):
        keys = jax.random.split(key, self.n_steps)

        def step(x, k):
            up = sgr.bernoulli(k, jnp.exp(-x / theta))
            return x + 2 * up - 1, None

        x, _ = lax.scan(step, jnp.zeros_like(jnp.asarray(theta)), keys)
        return x**2

    def default_theta(self):
        return 2.0 * self.n_steps

    def _dp(self, p: float) -> tuple[float, float]:
        n = self.n_steps
        x = np.arange(n + 2, dtype=np.float64)
        law, dlaw = np.zeros(n + 2), np.zeros(n + 2)
        law[0] = 1.0
        up = np.exp(-x / p)
        dup = up * x / p**2  # d/dp exp(-x/p)
        for _ in range(n):
            new, dnew = np.zeros_like(law), np.zeros_like(law)
            new[1:] += (law * up)[:-1]
            dnew[1:] += (dlaw * up + law * dup)[:-1]
            new[:-1] += (law * (1 - up))[1:]
            dnew[:-1] += (dlaw * (1 - up) - law * dup)[1:]
            law, dlaw = new, dnew
        return float(np.sum(law * x**2)), float(np.sum(dlaw * x**2))

    def exact_value(self, theta):
        return self._dp(float(theta))[0]

    def exact_grad(self, theta):
        return self._dp(float(theta))[1]


class BirthDeath(AbstractModel):
    r"""$N_T^2$ for mRNA made at rate $k$ and degraded at rate $\gamma$ each, on a time grid.

    $N_0 = 0$; on each of ``n_steps`` steps of length ``dt``, $B \sim
    \mathrm{Poisson}(k\,dt)$ molecules are made and each of the $N$ present is degraded with
    probability $\gamma\,dt$ ($D \sim \mathrm{Binomial}(N, \gamma\,dt)$): $N \mathrel{+}=
    B - D$ (a Gillespie-like process on a fixed grid). ``theta = [k, γ]``. The first two
    moments obey an exact linear recursion, so $\mathbb E[N_T^2]$ and its gradient are
    exact (`exact_value`, `exact_grad`).
    """

    n_steps: int = 20
    dt: float = 0.25

    name = "birth_death"
    summary = "N_T² of mRNA birth (Poisson) and death (binomial) on a time grid, theta = [k, γ]"
    stochastic = True
    n_samples = 2**12

    def __call__(self, theta, key):
        theta = jnp.asarray(theta)
        k, gamma = theta[0], theta[1]
        keys = jax.random.split(key, self.n_steps)

        def step(n, key):
            k_birth, k_death = jax.random.split(key)
            births = sgr.poisson(k_birth, k * self.dt)
            deaths = sgr.binomial(k_death, n, gamma * self.dt)
            return n + births - deaths, None

        n, _ = lax.scan(step, jnp.zeros((), theta.dtype), keys)
        return n**2

    def default_theta(self):
        return jnp.array([4.0, 0.5])

    def _moments(self, theta):
        k, gamma = theta[0], theta[1]
        lam, q = k * self.dt, gamma * self.dt
        m1 = m2 = jnp.zeros((), jnp.result_type(theta))
        for _ in range(self.n_steps):
            s1 = (1 - q) * m1  # survivors: Binomial(N, 1 - q)
            s2 = q * (1 - q) * m1 + (1 - q) ** 2 * m2
            m1, m2 = s1 + lam, s2 + 2 * lam * s1 + lam + lam**2
        return m2

    def exact_value(self, theta):
        return float(self._moments(jnp.asarray(theta, jnp.float64)))

    def exact_grad(self, theta):
        return np.asarray(jax.grad(self._moments)(jnp.asarray(theta, jnp.float64)))
