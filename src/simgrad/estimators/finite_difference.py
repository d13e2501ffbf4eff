"""Finite differences, with common random numbers and a truncation estimate."""

from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractEstimator, Samples, all_finite


def default_relative_step(dtype, scheme: str) -> float:
    r"""The textbook optimal relative step: $\epsilon^{1/2}$ (forward), $\epsilon^{1/3}$ (central).

    Truncation error is $O(h)$ forward and $O(h^2)$ central, rounding error $O(\epsilon/h)$;
    balancing the two gives these powers of the machine epsilon $\epsilon$ of ``dtype``.

    >>> round(default_relative_step("float64", "central"), 8)
    6.06e-06
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return eps ** (1 / 2) if scheme == "forward" else eps ** (1 / 3)


class FiniteDifference(AbstractEstimator):
    r"""Finite differences: perturb one coordinate at a time and difference the outputs.

    Central: $\partial_i f \approx D_h = [f(\theta + h_i e_i) - f(\theta - h_i e_i)] / 2h_i$,
    bias $O(h^2)$. Forward: $D_h = [f(\theta + h_i e_i) - f(\theta)] / h_i$, bias $O(h)$.
    Every estimate carries its own error estimate, from the same runs at twice the step
    with the same keys (Richardson): $D_{2h} - D_h$ is $3ch^2$ (central) or $ch$ (forward)
    where $D_h$'s error is $ch^2$ (or $ch$), so `Estimate.grad_bias` is
    $(D_{2h} - D_h)/3$ (central) or $D_{2h} - D_h$ (forward) — or, where it is larger, the
    rounding error $\epsilon \max|f| / h$ of a step too small for the output's scale. The
    cost is $4N + 1$ runs per sample (central) or $2N + 1$ (forward) for $N$ parameters,
    whatever the number of outputs, all one batched evaluation; the reported ``value`` is
    $f(\theta)$ itself.

    **The step.** ``step=None`` takes $h_i = c\,|\theta_i|$, relative to each parameter's
    own scale, with the textbook $c = \epsilon^{1/3}$ (central) or $\epsilon^{1/2}$
    (forward) of θ's dtype; $h_i = c$ where $\theta_i = 0$ (no scale is known there). See
    docs/finite-differences.md for why, and when to pass ``step=``.

    **Common random numbers.** With ``crn=True`` all runs of one sample use the same key,
    so the noise cancels in the difference and the per-sample variance stays bounded as
    $h \to 0$. With ``crn=False`` every run draws its own key and the variance grows like
    $1/h^2$ (the standard deviation like $1/h$) — the reason CRN is the default.

    Arguments:
        scheme: ``"central"`` (default) or ``"forward"``.
        step: the absolute step $h$ in every coordinate, or ``None`` (the default) for
            the relative step above. For a noisy simulator without CRN, pick a much
            larger step.
        crn: share each sample's key between its perturbed runs.

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> est = sg.gradient(lambda t, k: jnp.sin(1e6 * t), 3e-7, jax.random.key(0),
        ...                   method=sg.FiniteDifference(), n_samples=2)
        >>> round(float(est.grad), -2)                 # 1e6 cos(0.3) = 955336.5
        955300.0

    Not for: simulators with kinks or thresholds near θ — the difference quotient then
    straddles the discontinuity; see the differentiability checker. A step that leaves the
    simulator's domain (``log`` of a parameter closer to 0 than ``2h``) raises
    `sg.SimulationError` saying so.
    """

    scheme: Literal["central", "forward"] = eqx.field(default="central", static=True)
    step: float | None = eqx.field(default=None, static=True)
    crn: bool = eqx.field(default=True, static=True)

    sees_draws: ClassVar[bool] = False
    couples_samples: ClassVar[bool] = False
    evaluations_only: ClassVar[bool] = True
    perturbs_theta: ClassVar[bool] = True
    breaks: ClassVar[tuple[str, ...]] = (
        "jump_after_continuous_draw",
        "jump_after_discrete_draw",
        "discrete_draw",
        "rough_draw",
    )
    approximate: ClassVar[bool] = True  # truncation error, O(h) or O(h²)
    gradient_nan_hint: ClassVar[str] = (
        " For finite differences, a finite value with a NaN or inf gradient means that a "
        "perturbed run, at θ ± h or θ ± 2h (the second for the truncation estimate), left "
        "the simulator's domain: the step crossed a domain boundary (log, sqrt or a "
        "division near a parameter's edge). Pass a step smaller than half the distance "
        "from θ to the boundary, e.g. FiniteDifference(step=1e-3 * distance), or "
        "step=None, which is relative to |θ|."
    )

    def __check_init__(self):
        if self.scheme not in ("central", "forward"):
            raise ValueError(
                f"FiniteDifference(scheme={self.scheme!r}): scheme must be 'central' or 'forward'."
            )
        if self.step is not None:
            if isinstance(self.step, bool) or not isinstance(self.step, (int, float)):
                raise TypeError(
                    f"FiniteDifference(step={self.step!r}): step must be a positive float "
                    "or None (None picks a step relative to each parameter)."
                )
            if not (np.isfinite(self.step) and self.step > 0):
                raise ValueError(
                    f"FiniteDifference(step={self.step!r}): step must be positive and "
                    "finite, e.g. step=1e-3, or None to pick the step."
                )
        if not isinstance(self.crn, bool):
            raise TypeError(f"FiniteDifference(crn={self.crn!r}): crn must be True or False.")

    @property
    def common_random_numbers(self) -> bool:  # the hyperparameter ``crn`` decides
        return self.crn

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 4 * n_params + 1 if self.scheme == "central" else 2 * n_params + 1

    def steps(self, x):
        """The step $h_i$ for each coordinate of the flat parameters ``x``."""
        if self.step is not None:
            return jnp.full_like(x, self.step)
        scale = jnp.where(x == 0, jnp.ones_like(x), jnp.abs(x))
        return default_relative_step(x.dtype, self.scheme) * scale

    def sample_batch(self, f, x, keys):
        n = x.size
        h = jnp.diag(self.steps(x))
        # Step to exactly representable neighbours, and divide by their true distance.
        offsets = [h, 2 * h] if self.scheme == "forward" else [h, -h, 2 * h, -2 * h]
        points = jnp.concatenate([x[None], *(x + d for d in offsets)])

        def one(key):
            if self.crn:
                return jax.vmap(f, in_axes=(0, None))(points, key)
            return jax.vmap(f)(points, jax.random.split(key, points.shape[0]))

        runs = jax.vmap(one)(keys)  # (B, 1 + k N, m)
        value, moved = runs[:, 0], runs[:, 1:].reshape(keys.shape[0], len(offsets), n, -1)
        coordinate = lambda i: jnp.diagonal(points[1 + i * n : 1 + (i + 1) * n])  # noqa: E731

        def quotient(i, j):  # the difference of runs i and j (-1: θ itself) over their distance
            lo, x_lo = (value[:, None], x) if j < 0 else (moved[:, j], coordinate(j))
            width = (coordinate(i) - x_lo).astype(runs.dtype)
            return (moved[:, i] - lo) / width[:, None]

        if self.scheme == "central":
            d_h, d_2h = quotient(0, 1), quotient(2, 3)
            truncation = (d_2h - d_h) / 3
            near = jnp.maximum(jnp.abs(moved[:, 0]), jnp.abs(moved[:, 1]))
        else:
            d_h, d_2h = quotient(0, -1), quotient(1, -1)
            truncation = d_2h - d_h
            near = jnp.maximum(jnp.abs(moved[:, 0]), jnp.abs(value)[:, None])
        # Where the step is too small for the output's scale, rounding (ε |f| / h) swamps
        # the difference — and may make both quotients exactly equal: report that instead.
        eps = jnp.finfo(runs.dtype).eps
        rounding = eps * near / jnp.diagonal(h).astype(runs.dtype)[:, None]
        bias = jnp.where(
            jnp.abs(truncation) >= rounding,
            truncation,
            jnp.where(truncation < 0, -rounding, rounding),
        )
        grad, bias = jnp.swapaxes(d_h, 1, 2), jnp.swapaxes(bias, 1, 2)  # (B, m, N)
        grad_ok = all_finite(grad) & all_finite(bias)
        return Samples(value, grad, all_finite(value), grad_ok, bias)
