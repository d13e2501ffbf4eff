"""AI: policy gradients on a small control task — REINFORCE against the pathwise gradient."""

import jax
import jax.numpy as jnp
import optax

from ... import random
from ...estimators import Pathwise, ScoreFunction
from .base import AbstractApplication


class _AbstractLinearQuadraticControl(AbstractApplication):
    r"""Learn a feedback gain for a noisy scalar system: a linear-quadratic control task.

    $x_{t+1} = x_t + u_t + w_t$ with $x_0 \sim N(0, 1)$ and $w_t \sim N(0, 0.3^2)$. A
    Gaussian policy acts $u_t \sim N(-k x_t, 0.5^2)$ (feedback gain $k$, fixed
    exploration). The reward is $-\sum_{t<T}(x_t^2 + r u_t^2) - x_T^2$ over $T = 20$ steps,
    $r = 0.5$; maximise its expectation over $k$.

    Two estimators on the same simulator: REINFORCE (the score function of the policy's
    action probabilities, leave-one-out baseline) treats the simulator as a black box of
    sampled actions; the pathwise gradient differentiates through the reparameterised
    actions $u_t = -k x_t + 0.5\,\varepsilon_t$ and the dynamics. Both are unbiased; the
    pathwise one has a lower variance (per-sample standard deviation about 3.5× smaller
    at $k = 0.2$).

    The *independent* answer: with $v_t = \mathbb{E}[x_t^2]$, $v_{t+1} = (1-k)^2 v_t +
    0.5^2 + 0.3^2$ and $\mathbb{E}[u_t^2] = k^2 v_t + 0.5^2$, so the expected reward is a
    closed-form recursion in $k$; its maximiser (bounded scalar search) is
    $k^* = 0.72943$.
    """

    horizon: int = 20
    control_cost: float = 0.5
    noise: float = 0.3
    exploration: float = 0.5

    maximize = True
    steps = 300
    n_samples = 256
    tolerance = 0.01

    def simulator(self, theta, key):
        gain = theta
        k0, k_noise, k_action = jax.random.split(key, 3)
        x0 = random.normal(k0, jnp.zeros_like(gain), 1.0)

        def step(x, keys):
            k_w, k_u = keys
            u = random.normal(k_u, -gain * x, self.exploration)
            w = random.normal(k_w, jnp.zeros_like(gain), self.noise)
            return x + u + w, x**2 + self.control_cost * u**2

        keys = (jax.random.split(k_noise, self.horizon), jax.random.split(k_action, self.horizon))
        x_final, costs = jax.lax.scan(step, x0, keys)
        return -(jnp.sum(costs) + x_final**2)

    def theta0(self):
        return 0.0

    def optimizer(self):
        return optax.adam(0.05)

    def optimum(self):
        return 0.729433  # scipy's bounded search on exact_objective, to 1e-6

    def exact_objective(self, theta):
        gain, v, cost = float(theta), 1.0, 0.0
        for _ in range(self.horizon):
            cost += v + self.control_cost * (gain**2 * v + self.exploration**2)
            v = (1 - gain) ** 2 * v + self.exploration**2 + self.noise**2
        return -(cost + v)


class LinearQuadraticReinforce(_AbstractLinearQuadraticControl):
    __doc__ = _AbstractLinearQuadraticControl.__doc__

    name = "control-reinforce"
    summary = (
        "AI: learn a feedback gain by REINFORCE (score function, leave-one-out baseline) "
        "on a noisy linear-quadratic control task"
    )

    def method(self):
        return ScoreFunction(baseline="loo")


class LinearQuadraticPathwise(_AbstractLinearQuadraticControl):
    __doc__ = _AbstractLinearQuadraticControl.__doc__

    name = "control-pathwise"
    summary = (
        "AI: the same control task by the pathwise gradient through the reparameterised "
        "actions and dynamics"
    )

    def method(self):
        return Pathwise()
