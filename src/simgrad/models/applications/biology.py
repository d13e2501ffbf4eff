"""Biology: calibrate an epidemic's transmission rate to an observed outbreak size."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import random
from ...estimators import ScoreFunction
from .base import AbstractApplication


class ChainBinomialEpidemic(AbstractApplication):
    r"""Calibrate the transmission rate β of a Reed–Frost (chain-binomial) SIR epidemic.

    A population of $N = 50$ with one infective. In each generation every susceptible
    escapes all $I_t$ infectives with probability $e^{-\beta I_t / N}$, so
    $I_{t+1} \sim \mathrm{Binomial}(S_t, 1 - e^{-\beta I_t/N})$, $S_{t+1} = S_t - I_{t+1}$.
    The outbreak's final size is $Z = N - S_\infty$. Calibration by simulated moments:
    choose β to minimise $\mathbb{E}[(Z(\beta) - z_{obs})^2]$ for an observed $z_{obs} = 30$.

    $Z$ is an integer: every sample path is flat in β and pathwise AD returns 0. The
    score function (leave-one-out baseline) differentiates the binomial log-probabilities
    instead. The *independent* answer: exact enumeration of the chain's distribution over
    $(S, I)$ by dynamic programming gives $\mathbb{E}[(Z - z_{obs})^2]$ for any β without
    Monte Carlo; its minimiser (bounded scalar search) is β* = 2.1149.
    """

    population: int = 50
    initial_infected: int = 1
    observed_final_size: float = 30.0

    name = "epidemic"
    summary = (
        "biology: calibrate a chain-binomial SIR epidemic's transmission rate to an observed "
        "outbreak size (discrete draws: score function)"
    )
    maximize = False
    steps = 300
    n_samples = 256
    tolerance = 0.01

    def final_size(self, beta, key):
        """One outbreak's final size: generations of binomial infections, by `lax.scan`."""
        n = self.population

        def generation(state, k):
            s, i = state
            new = random.binomial(k, s, 1 - jnp.exp(-beta * i / n))
            return (s - new, new), None

        start = (
            jnp.asarray(n - self.initial_infected, beta.dtype),
            jnp.asarray(self.initial_infected, beta.dtype),
        )
        (s, _), _ = jax.lax.scan(generation, start, jax.random.split(key, n))
        return n - s

    def simulator(self, theta, key):
        return (self.final_size(theta, key) - self.observed_final_size) ** 2

    def theta0(self):
        return 1.0

    def method(self):
        return ScoreFunction(baseline="loo")

    def optimizer(self):
        return optax.adam(0.05)

    def optimum(self):
        return 2.114879  # scipy's bounded search on exact_objective, to 1e-6

    def final_size_distribution(self, beta: float) -> np.ndarray:
        """``P(Z = z)`` for z = 0…N, exactly: dynamic programming over ``(S, I)``."""
        from scipy.stats import binom  # scipy.stats costs a second to import: only here

        n, i0 = self.population, self.initial_infected
        mass = np.zeros((n - i0 + 1, n + 1))  # mass[s, i]
        mass[n - i0, i0] = 1.0
        final = np.zeros(n + 1)
        # for every pair k <= s: step[pair, i] = P(k of s susceptibles infected | i infectives)
        s, k = np.nonzero(np.tri(n - i0 + 1, dtype=bool))
        step = binom.pmf(k[:, None], s[:, None], 1 - np.exp(-beta * np.arange(n + 1) / n))
        for _ in range(n + 1):
            ended = mass[:, 0]
            final[n - np.arange(len(ended))] += ended
            mass[:, 0] = 0.0
            if not mass.any():
                break
            nxt = np.zeros_like(mass)
            np.add.at(nxt, (s - k, k), np.sum(mass[s] * step, axis=1))
            mass = nxt
        return final

    def exact_objective(self, theta):
        z = np.arange(self.population + 1)
        pmf = self.final_size_distribution(float(theta))
        return float(np.sum(pmf * (z - self.observed_final_size) ** 2))
