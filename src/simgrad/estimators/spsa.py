"""Simultaneous perturbation (SPSA): two runs per sample, whatever the dimension."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._types import Key
from .base import AbstractPerSampleEstimator, FlatSimulator, own_key
from .finite_difference import default_relative_step


def check_scale(owner: str, name: str, value, fix: str) -> None:
    """Validate a positive finite float hyperparameter, naming the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}({name}={value!r}): {name} must be a positive float. {fix}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{owner}({name}={value!r}): {name} must be positive and finite. {fix}")


class SPSA(AbstractPerSampleEstimator):
    r"""Simultaneous perturbation (Spall 1992): perturb every parameter at once.

    With a Rademacher direction $\Delta \in \{-1, +1\}^N$ and steps $c_i$,

    $$\hat g_i = \frac{f(\theta + c \odot \Delta) - f(\theta - c \odot \Delta)}{2 c_i \Delta_i},$$

    two runs per sample whatever the number $N$ of parameters (and of outputs: for a
    vector output, each output's row of the Jacobian), both with the sample's key
    (common random numbers). $\mathbb E[\Delta_j / \Delta_i] = 0$ for $j \ne i$, so the
    other coordinates' slopes cancel on average: the estimate is unbiased up to
    $O(c^2)$ — third derivatives times $c^2$, as for central finite differences — and
    its variance carries $\sum_{j \ne i} (c_j \partial_j f / c_i)^2$ from those other
    coordinates. Per *evaluation* it beats finite differences ($2N$ runs) when $N$ is
    large and the simulator noisy; on a deterministic simulator it only adds that noise.

    The reported ``value`` is the mean of the two runs, an $O(c^2)$-biased estimate of
    $f(\theta)$.

    Arguments:
        step: the absolute step $c$ in every coordinate; ``None`` takes the central
            finite-difference step $c_i = \epsilon^{1/3} \max(1, |\theta_i|)$ of θ's dtype.
            For a simulator whose runs are not smooth in θ for a fixed key (counts, event
            orders that swap), pass a larger step: the differences are then taken across
            the jumps, at an $O(c^2)$ bias.

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> sim = lambda t, k: jnp.sum(t**2) + jax.random.normal(k)    # gradient 2 t
        >>> est = sg.gradient(sim, jnp.array([1.0, -2.0]), jax.random.key(0),
        ...                   method=sg.SPSA(), n_samples=4000)
        >>> bool(jnp.all(jnp.abs(est.grad - jnp.array([2.0, -4.0])) < 4 * est.grad_stderr))
        True

    References: J. C. Spall, "Multivariate stochastic approximation using a simultaneous
    perturbation gradient approximation", IEEE TAC 37(3), 1992.
    """

    step: float | None = eqx.field(default=None, static=True)

    sees_draws: ClassVar[bool] = False
    perturbs_theta: ClassVar[bool] = True  # a jump straddled by θ ± c·Δ is a hazard
    evaluations_only: ClassVar[bool] = True
    random_directions: ClassVar[bool] = True
    breaks: ClassVar[tuple[str, ...]] = (
        "jump_after_continuous_draw",
        "jump_after_discrete_draw",
        "discrete_draw",
        "rough_draw",
    )
    approximate: ClassVar[bool] = True  # O(c²) bias
    gradient_nan_hint: ClassVar[str] = (
        " For SPSA, a finite value with a NaN or inf gradient means that a perturbed run, at "
        "θ ± c·Δ, left the simulator's domain: pass a step smaller than the distance from θ "
        "to the boundary, e.g. SPSA(step=1e-3 * distance)."
    )

    def __check_init__(self):
        if self.step is not None:
            check_scale("SPSA", "step", self.step, "Or pass step=None for the default step.")

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 2

    def sample(self, f: FlatSimulator, x: Array, key: Key) -> tuple[Array, Array]:
        if self.step is None:
            c = default_relative_step(x.dtype, "central") * jnp.maximum(1, jnp.abs(x))
        else:
            c = jnp.full_like(x, self.step)
        delta = jax.random.rademacher(own_key(key), x.shape, dtype=x.dtype)
        up, down = x + c * delta, x - c * delta  # divide by the true (signed) distance
        y = jax.vmap(f, in_axes=(0, None))(jnp.stack([up, down]), key)  # (2, m)
        return jnp.mean(y, axis=0), (y[0] - y[1])[:, None] / (up - down).astype(y.dtype)
