"""A local Taylor test for adjoint gradients (to be replaced by the checker's ``sg.taylor_test``).

This module is a stop-gap: when the checker issue lands ``sg.taylor_test``, every call here
should move to it and this file should be deleted.
"""

import dataclasses
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


@dataclasses.dataclass(frozen=True)
class TaylorResult:
    """The outcome of `taylor_test`.

    Attributes:
        eps: the step sizes $\\epsilon_i = 10^{-2} / 2^i$.
        remainders: $|f(\\theta + \\epsilon h) - f(\\theta) - \\epsilon \\nabla f \\cdot h|$.
        rates: observed orders between successive steps, $\\log_2(r_i / r_{i+1})$.
        rate: the median of ``rates`` (``inf`` when every remainder is at rounding level).
        passed: ``rate >= 1.8``, or every remainder at rounding level (an affine ``f``).
    """

    eps: tuple[float, ...]
    remainders: tuple[float, ...]
    rates: tuple[float, ...]
    rate: float
    passed: bool


def taylor_test(f, theta, grad, direction=None, *, n: int = 6) -> TaylorResult:
    r"""Check a gradient by the second-order Taylor remainder.

    For a correct gradient $g$ of a smooth $f$, the remainder
    $r(\epsilon) = |f(\theta + \epsilon h) - f(\theta) - \epsilon\, g \cdot h|$ is
    $O(\epsilon^2)$, so halving $\epsilon$ divides it by 4 (observed rate 2). A wrong
    gradient leaves an $O(\epsilon)$ term (rate 1). The steps are
    $\epsilon_i = 10^{-2}/2^i$, $i = 0, \dots, n-1$, relative to the size of ``theta``.

    Arguments:
        f: ``f(theta) -> scalar``, deterministic and jittable.
        theta: the point; a float, an array or a pytree of them.
        grad: the gradient to test, ``theta``'s structure.
        direction: $h$, ``theta``'s structure; ``None`` draws a fixed random direction.
        n: the number of steps, at least 3.

    Returns:
        A `TaylorResult`; ``passed`` is true when the median rate is at least 1.8.

    Example:
        >>> import jax.numpy as jnp
        >>> taylor_test(lambda x: jnp.sum(jnp.sin(x)), jnp.ones(3), jnp.cos(jnp.ones(3))).passed
        True

    This is the local version asked for by issue 7; replace it by the checker's
    ``sg.taylor_test`` when that lands.
    """
    if not callable(f):
        raise TypeError(f"f must be a function f(theta) -> scalar, got {type(f).__name__}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n={n!r}: the Taylor test needs at least 3 steps (an int >= 3).")
    f = eqx.filter_jit(f)  # one compilation for the n + 1 evaluations
    x, unravel = ravel_pytree(theta)
    g, _ = ravel_pytree(grad)
    if g.shape != x.shape:
        raise ValueError(
            f"grad has {g.size} entries but theta has {x.size}: pass the gradient of f at "
            "theta, with theta's structure."
        )
    if direction is None:
        h = jax.random.normal(jax.random.key(0), x.shape, dtype=x.dtype)
    else:
        h, _ = ravel_pytree(direction)
        if h.shape != x.shape:
            raise ValueError(
                f"direction has {h.size} entries but theta has {x.size}: give it theta's structure."
            )
    scale = float(jnp.maximum(1.0, jnp.max(jnp.abs(x)))) / float(jnp.max(jnp.abs(h)))
    f0 = float(f(theta))
    slope = float(jnp.dot(g, h))
    eps = tuple(1e-2 * scale / 2**i for i in range(n))
    rem = tuple(abs(float(f(unravel(x + e * h))) - f0 - e * slope) for e in eps)
    # Remainders this small are rounding noise: a rate cannot be read from them.
    noise = 1e3 * float(np.finfo(np.dtype(x.dtype)).eps) * max(abs(f0), abs(slope) * eps[0], 1e-300)
    rates = tuple(
        math.log2(a / b) if a > noise and b > noise else math.inf
        for a, b in itertools.pairwise(rem)
    )
    finite = [r for r in rates if math.isfinite(r)]
    rate = float(np.median(finite)) if finite else math.inf
    return TaylorResult(eps=eps, remainders=rem, rates=rates, rate=rate, passed=rate >= 1.8)
