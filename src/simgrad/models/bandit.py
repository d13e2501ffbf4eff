"""A three-armed bandit with a softmax policy: the REINFORCE example."""

import jax
import jax.numpy as jnp
import numpy as np

from .. import random as sgr
from .base import AbstractModel


class Bandit(AbstractModel):
    r"""One pull of a bandit: arm $a \sim \mathrm{softmax}(\theta)$, reward $N(m_a, 1)$.

    $\mathbb E = \sum_a \pi_a m_a$ with $\pi = \mathrm{softmax}(\theta)$, and
    $\partial_{\theta_j}\mathbb E = \pi_j (m_j - \mathbb E)$ — the policy gradient that
    REINFORCE (the score function) estimates. The arm is a discrete draw, so the pathwise
    gradient is zero. ``theta`` is the logits, shape ``(3,)``.
    """

    means: tuple[float, ...] = (1.0, 2.0, 0.0)

    name = "bandit"
    summary = "3-armed bandit, softmax policy: REINFORCE policy gradient pi_j (m_j - E[reward])"
    stochastic = True
    n_samples = 2**14

    def __call__(self, theta, key):
        theta = jnp.asarray(theta)
        k_arm, k_reward = jax.random.split(key)
        arm = sgr.categorical(k_arm, theta)
        mean = jnp.asarray(self.means, theta.dtype)[arm.astype(jnp.int32)]
        return sgr.normal(k_reward, mean, 1.0)

    def default_theta(self):
        return np.array([0.0, 0.5, -0.5])

    def _policy(self, theta):
        theta = np.asarray(theta, dtype=float)
        pi = np.exp(theta - theta.max())
        return pi / pi.sum()

    def exact_value(self, theta):
        return float(self._policy(theta) @ np.asarray(self.means))

    def exact_grad(self, theta):
        pi, m = self._policy(theta), np.asarray(self.means)
        return pi * (m - pi @ m)
