"""Finite differences, with common random numbers for stochastic simulators."""

from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._types import Key, Scalar, Simulator, Theta
from .base import AbstractPerSampleEstimator


def default_relative_step(dtype, scheme: str) -> float:
    r"""The textbook optimal relative step: $\epsilon^{1/2}$ (forward), $\epsilon^{1/3}$ (central).

    Truncation error is $O(h)$ forward and $O(h^2)$ central, rounding error $O(\epsilon/h)$;
    balancing the two gives these powers of the machine epsilon $\epsilon$ of ``dtype``.

    >>> round(default_relative_step("float64", "central"), 8)
    6.06e-06
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return eps ** (1 / 2) if scheme == "forward" else eps ** (1 / 3)


class FiniteDifference(AbstractPerSampleEstimator):
    r"""Finite differences: perturb one coordinate at a time and difference the outputs.

    Central: $\partial_i f \approx [f(\theta + h_i e_i) - f(\theta - h_i e_i)] / 2h_i$,
    bias $O(h^2)$, $2N$ runs for $N$ parameters. Forward:
    $[f(\theta + h_i e_i) - f(\theta)] / h_i$, bias $O(h)$, $N + 1$ runs. All runs of one
    sample are one batched evaluation.

    **Common random numbers.** With ``crn=True`` all runs of one sample use the same key,
    so the noise cancels in the difference and the per-sample variance stays bounded as
    $h \to 0$. With ``crn=False`` every run draws its own key and the variance grows like
    $1/h^2$ (the standard deviation like $1/h$) — the reason CRN is the default.

    Arguments:
        scheme: ``"central"`` (default) or ``"forward"``.
        step: the absolute step $h$ in every coordinate. ``None`` picks the textbook
            optimal step $h_i = \epsilon^{1/3} \max(1, |\theta_i|)$ (central) or
            $\epsilon^{1/2} \max(1, |\theta_i|)$ (forward), $\epsilon$ the dtype's epsilon.
            For a noisy simulator without CRN, pick a much larger step.
        crn: share each sample's key between its perturbed runs.

    The reported ``value`` is $f(\theta)$ for the forward scheme and the mean of the $2N$
    perturbed runs for the central one (an $O(h^2)$-biased estimate of $f(\theta)$).

    Example:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> est = sg.gradient(lambda t, k: jnp.sin(t), 0.0, jax.random.key(0),
        ...                   method=sg.FiniteDifference(), n_samples=2)
        >>> round(float(est.grad), 4)
        1.0

    Not for: simulators with kinks or thresholds near θ — the difference quotient then
    straddles the discontinuity; see the differentiability checker.
    """

    scheme: Literal["central", "forward"] = eqx.field(default="central", static=True)
    step: float | None = eqx.field(default=None, static=True)
    crn: bool = eqx.field(default=True, static=True)

    evaluations_only: ClassVar[bool] = True

    def __check_init__(self):
        if self.scheme not in ("central", "forward"):
            raise ValueError(
                f"FiniteDifference(scheme={self.scheme!r}): scheme must be 'central' or 'forward'."
            )
        if self.step is not None:
            if isinstance(self.step, bool) or not isinstance(self.step, (int, float)):
                raise TypeError(
                    f"FiniteDifference(step={self.step!r}): step must be a positive float "
                    "or None (None picks the optimal step for the dtype)."
                )
            if not (np.isfinite(self.step) and self.step > 0):
                raise ValueError(
                    f"FiniteDifference(step={self.step!r}): step must be positive and "
                    "finite, e.g. step=1e-3, or None to pick the optimal step."
                )
        if not isinstance(self.crn, bool):
            raise TypeError(f"FiniteDifference(crn={self.crn!r}): crn must be True or False.")

    def evals_per_sample(self, n_params: int) -> int:
        return 2 * n_params if self.scheme == "central" else n_params + 1

    def sample(self, sim: Simulator, theta: Theta, key: Key) -> tuple[Scalar, Theta]:
        x, unravel = ravel_pytree(theta)
        n = x.size
        if self.step is None:
            h = default_relative_step(x.dtype, self.scheme) * jnp.maximum(1, jnp.abs(x))
        else:
            h = jnp.full_like(x, self.step)
        eye = jnp.eye(n, dtype=x.dtype)
        # Step to exactly representable neighbours, and divide by their true distance.
        up = x + h * eye
        if self.scheme == "central":
            down = x - h * eye
            points = jnp.concatenate([up, down])
            width = jnp.diagonal(up - down)
        else:
            points = jnp.concatenate([x[None], up])
            width = jnp.diagonal(up) - x

        run = lambda point, k: sim(unravel(point), k)  # noqa: E731
        if self.crn:
            f = jax.vmap(run, in_axes=(0, None))(points, key)
        else:
            f = jax.vmap(run)(points, jax.random.split(key, points.shape[0]))

        if self.scheme == "central":
            value, grad = jnp.mean(f), (f[:n] - f[n:]) / width
        else:
            value, grad = f[0], (f[1:] - f[0]) / width
        return value, unravel(grad)
