"""Gaussian smoothing: the evolution-strategies gradient, with antithetic pairs."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._types import Key
from .base import AbstractPerSampleEstimator, FlatSimulator, own_key
from .spsa import check_scale


class GaussianSmoothing(AbstractPerSampleEstimator):
    r"""The gradient of the Gaussian-smoothed objective (evolution strategies).

    It estimates the gradient of $f_\sigma(\theta) = \mathbb E_u[f(\theta + \sigma u)]$,
    $u \sim N(0, I_N)$, by Stein's identity with an antithetic pair:

    $$\hat g = \frac{f(\theta + \sigma u) - f(\theta - \sigma u)}{2 \sigma}\, u,$$

    two runs per sample whatever the number of parameters, both with the sample's key
    (common random numbers). ``value`` is the mean of the pair, an unbiased estimate of
    $f_\sigma(\theta)$.

    **Its bias is the smoothing.** It is unbiased for $\nabla f_\sigma$, not for $\nabla f$:
    $\nabla f_\sigma = \nabla f + \frac{\sigma^2}{2} \nabla (\Delta f) + O(\sigma^4)$, zero
    for a quadratic, and $f_\sigma = f + \frac{\sigma^2}{2} \Delta f + O(\sigma^4)$. That
    is also its use: $f_\sigma$ is smooth where $f$ jumps (a threshold, a count), so the
    gradient exists and a large σ averages over the jumps. σ is absolute and the same
    for every parameter: rescale parameters of very different sizes first.

    Arguments:
        sigma: the smoothing scale σ (required: it defines the objective).

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> sim = lambda t, k: jnp.sum(t**2) + jax.random.normal(k)  # f_σ = |t|² + 2σ²
        >>> est = sg.gradient(sim, jnp.array([1.0, -2.0]), jax.random.key(0),
        ...                   method=sg.GaussianSmoothing(sigma=0.1), n_samples=4000)
        >>> bool(jnp.all(jnp.abs(est.grad - jnp.array([2.0, -4.0])) < 4 * est.grad_stderr))
        True

    References: Nesterov & Spokoiny, "Random gradient-free minimization of convex
    functions", Found. Comput. Math. 17, 2017; Salimans et al., "Evolution strategies as a
    scalable alternative to reinforcement learning", 2017 (antithetic sampling).
    """

    sigma: float = eqx.field(static=True)

    sees_draws: ClassVar[bool] = False
    evaluations_only: ClassVar[bool] = True
    random_directions: ClassVar[bool] = True
    approximate: ClassVar[bool] = True  # the smoothed objective's gradient
    gradient_nan_hint: ClassVar[str] = (
        " For Gaussian smoothing, a finite value with a NaN or inf gradient means that a "
        "perturbed run, at θ ± σu, left the simulator's domain: the Gaussian reaches every "
        "point, so the simulator must be defined (finite) everywhere, or σ far smaller than "
        "the distance to the boundary."
    )

    def __check_init__(self):
        check_scale(
            "GaussianSmoothing", "sigma", self.sigma, "It is the smoothing scale, e.g. sigma=0.1."
        )

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 2

    def sample(self, f: FlatSimulator, x: Array, key: Key) -> tuple[Array, Array]:
        u = jax.random.normal(own_key(key), x.shape, dtype=x.dtype)
        points = jnp.stack([x + self.sigma * u, x - self.sigma * u])
        y = jax.vmap(f, in_axes=(0, None))(points, key)  # (2, m)
        slope = (y[0] - y[1]) / jnp.asarray(2 * self.sigma, y.dtype)
        return jnp.mean(y, axis=0), slope[:, None] * u.astype(y.dtype)
