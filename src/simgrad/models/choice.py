"""A discrete choice: the textbook case for the Gumbel-softmax relaxation."""

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as sgr
from ..relax import gumbel_softmax
from .base import AbstractModel


class DiscreteChoice(AbstractModel):
    r"""Pick option $k \sim \mathrm{Categorical}(\mathrm{softmax}(\theta))$, receive $r_k$.

    $\mathbb E = p \cdot r$ with $p = \mathrm{softmax}(\theta)$, gradient
    $p \odot (r - p\cdot r)$. With ``tau = 0`` the choice is a `simgrad.random.categorical`
    draw (pathwise gradient zero; the score function is unbiased). With ``tau > 0`` the
    one-hot choice is relaxed by `simgrad.relax.gumbel_softmax`: the reward becomes
    $\mathrm{softmax}((\theta + g)/\tau)\cdot r$, differentiable, biased by an amount
    that vanishes as ``tau → 0`` while its variance grows.
    """

    rewards: tuple = (1.0, 2.0, 0.5)
    tau: float = 0.0

    name = "choice"
    summary = "discrete choice r[k], k ~ Categorical(softmax θ): Gumbel-softmax relaxes it"
    stochastic = True
    n_samples = 2**14

    def __call__(self, theta, key):
        r = jnp.asarray(self.rewards, jnp.result_type(theta))
        if self.tau == 0:
            return r[sgr.categorical(key, theta).astype(jnp.int32)]
        return gumbel_softmax(key, theta, self.tau) @ r

    def default_theta(self):
        return jnp.array([0.0, -0.5, 0.3])

    def exact_value(self, theta):
        p = np.asarray(jax.nn.softmax(jnp.asarray(theta)))
        return float(p @ np.asarray(self.rewards))

    def exact_grad(self, theta):
        p = np.asarray(jax.nn.softmax(jnp.asarray(theta)))
        r = np.asarray(self.rewards)
        return p * (r - p @ r)
