"""Taylor tests of gradients and dot-product tests of Jacobians (as pyadjoint does).

The one implementation of ``sg.taylor_test`` (also re-exported by `simgrad.adjoint`).
"""

import itertools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._result import AbstractResult


class TaylorResult(AbstractResult):
    """The outcome of `taylor_test`.

    Attributes:
        eps: the step sizes $\\epsilon_i = 10^{-2} / 2^i$.
        remainders: $|f(\\theta + \\epsilon h) - f(\\theta) - \\epsilon \\nabla f \\cdot h|$.
        rates: observed orders between successive steps, $\\log_2(r_i / r_{i+1})$.
        rate: the median of ``rates`` (``inf`` when every remainder is at rounding level).
        passed: ``rate >= 1.8``, or every remainder at rounding level (an affine ``f``);
            False whenever the gradient, ``f(θ)`` or a remainder is not finite.
        reason: why it did not pass ("" when it did).
    """

    eps: tuple[float, ...]
    remainders: tuple[float, ...]
    rates: tuple[float, ...]
    rate: float
    passed: bool = eqx.field(static=True)
    reason: str = eqx.field(static=True, default="")

    def summary(self) -> str:
        if math.isnan(self.rate):
            how = "no rate: a number is not finite"
        elif math.isinf(self.rate):
            how = "every remainder is at rounding level (f is affine along h)"
        else:
            how = f"the remainder falls at rate {self.rate:.2f}"
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"TaylorResult({verdict}: {how}; a correct gradient gives 2, passing needs 1.8)",
            f"  {'ε':>10}  {'remainder':>10}  {'rate':>5}",
        ]
        rates = ("", *(f"{r:5.2f}" for r in self.rates))
        for e, r, q in itertools.zip_longest(self.eps, self.remainders, rates, fillvalue=""):
            lines.append(f"  {e:10.3g}  {r:10.3g}  {q:>5}")
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        return "\n".join(lines)


def taylor_test(f: Callable, theta, grad, direction=None, *, n: int = 6) -> TaylorResult:
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
        A `TaylorResult`; ``passed`` is true when the median rate is at least 1.8. A
        gradient, value or remainder that is not finite fails, with the ``reason``.

    Examples:
        >>> import jax.numpy as jnp
        >>> taylor_test(lambda x: jnp.sum(jnp.sin(x)), jnp.ones(3), jnp.cos(jnp.ones(3))).passed
        True

    References: P. E. Farrell et al., "Automated derivation of the adjoint of high-level
    transient finite element programs", SIAM J. Sci. Comput. 35 (2013) (pyadjoint's
    ``taylor_test``).

    Not for kinks or jumps: there the remainder is $O(\epsilon)$ whatever the gradient;
    use `sg.one_sided`.
    """
    if not callable(f):
        raise TypeError(f"f must be a function f(theta) -> scalar, got {type(f).__name__}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n={n!r}: the Taylor test needs at least 3 steps (an int >= 3).")
    f = eqx.filter_jit(f)  # one compilation for the n + 1 evaluations
    x, unravel = ravel_pytree(theta)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"theta holds {x.dtype} numbers: the Taylor test moves it by small steps, so it "
            "must be floating-point; pass e.g. 1.0 instead of 1, or jnp.asarray(theta, float)."
        )
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
    out = jax.eval_shape(f, theta)
    if getattr(out, "shape", None) != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"f returns {shape}, not a scalar: the Taylor test checks the gradient of one "
            "number; test each output (lambda t: f(t)[i]) or a weighted sum (lambda t: "
            "jnp.vdot(w, f(t)), with the gradient w·J)."
        )
    f0 = float(f(theta))
    slope = float(jnp.dot(g, h))
    eps = tuple(1e-2 * scale / 2**i for i in range(n))
    rem = tuple(abs(float(f(unravel(x + e * h))) - f0 - e * slope) for e in eps)
    reason = _not_finite(g, f0, eps, rem)
    if reason:
        return TaylorResult(eps=eps, remainders=rem, rates=(), rate=math.nan, passed=False,
                            reason=reason)  # fmt: skip
    # Remainders this small are rounding noise: a rate cannot be read from them.
    noise = 1e3 * float(np.finfo(np.dtype(x.dtype)).eps) * max(abs(f0), abs(slope) * eps[0], 1e-300)
    rates = tuple(
        math.log2(a / b) if a > noise and b > noise else math.inf
        for a, b in itertools.pairwise(rem)
    )
    finite = [r for r in rates if math.isfinite(r)]
    rate = float(np.median(finite)) if finite else math.inf
    passed = rate >= 1.8
    reason = "" if passed else (
        f"the remainder falls at rate {rate:.2f}, not 2: the gradient is wrong, or f is not "
        "smooth within ε of θ (a kink or jump: use sg.one_sided or sg.check)"
    )  # fmt: skip
    return TaylorResult(eps=eps, remainders=rem, rates=rates, rate=rate, passed=passed,
                        reason=reason)  # fmt: skip


def _not_finite(g, f0: float, eps, rem) -> str:
    """Why the Taylor test cannot be read (a NaN or inf), or ""."""
    g = np.asarray(g)
    if not np.all(np.isfinite(g)):
        i = int(np.flatnonzero(~np.isfinite(g))[0])
        return f"the gradient is not finite ({g[i]} at θ[{i}]): see sg.check"
    if not math.isfinite(f0):
        return f"f(θ) = {f0} is not finite"
    bad = [e for e, r in zip(eps, rem, strict=True) if not math.isfinite(r)]
    if bad:
        return (
            f"f is not finite at θ + εh for ε = {bad[0]:.3g}: θ is at the edge of f's domain "
            "(the remainder cannot be measured there)"
        )
    return ""


class DotProductResult(AbstractResult):
    r"""The outcome of `dot_product_test`.

    Attributes:
        forward: $w \cdot (J v)$, from forward mode (`jax.jvp`), or from central differences
            where forward mode is impossible (a `jax.custom_vjp` function).
        reverse: $(J^\top w) \cdot v$, from reverse mode (`jax.vjp`).
        relative_error: $|{\rm forward} - {\rm reverse}| / \max(|{\rm forward}|, |{\rm reverse}|)$.
        passed: ``relative_error <= rtol``.
    """

    forward: float
    reverse: float
    relative_error: float
    passed: bool = eqx.field(static=True)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"DotProductResult({verdict}: w·(Jv) = {self.forward:.10g} forward, "
            f"(Jᵀw)·v = {self.reverse:.10g} reverse, relative error {self.relative_error:.2g})"
        )


def dot_product_test(f, theta, *, key=None, rtol: float | None = None) -> DotProductResult:
    r"""Check that forward and reverse mode agree: $w^\top (J v) = (J^\top w)^\top v$.

    With random $v$ (``theta``'s shape) and $w$ (the output's shape). A hand-written
    adjoint (a `jax.custom_vjp`) that is not the transpose of the Jacobian fails it. Such
    functions have no forward mode, so $J v$ is then taken by central differences and the
    default tolerance is $10^{-6}$.

    Arguments:
        f: ``f(theta) -> array or pytree``, jittable.
        theta: the point.
        key: a PRNG key for $v$ and $w$; default ``jax.random.key(0)``.
        rtol: the tolerance; default ``1e3`` times the machine epsilon of ``theta``'s dtype
            (``1e-6`` with central differences).

    Examples:
        >>> import jax.numpy as jnp
        >>> dot_product_test(lambda x: jnp.sin(x) * x[::-1], jnp.arange(3.0)).passed
        True
    """
    if not callable(f):
        raise TypeError(f"f must be a function f(theta) -> array, got {type(f).__name__}.")
    key = jax.random.key(0) if key is None else key
    x, unravel = ravel_pytree(theta)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError("theta must hold floating-point numbers.")
    k1, k2 = jax.random.split(key)
    v = jax.random.normal(k1, x.shape, x.dtype)
    flat_f = lambda x: ravel_pytree(f(unravel(x)))[0]  # noqa: E731
    eps = float(np.finfo(np.dtype(x.dtype)).eps)
    try:
        y, jv = jax.jvp(flat_f, (x,), (v,))
        tol = 1e3 * eps
    except TypeError:  # a custom_vjp: no forward mode
        step = eps ** (1 / 3) * max(1.0, float(jnp.max(jnp.abs(x))))
        y = flat_f(x)
        jv = (flat_f(x + step * v) - flat_f(x - step * v)) / (2 * step)
        tol = 1e-6
    tol = tol if rtol is None else rtol
    w = jax.random.normal(k2, y.shape, y.dtype)
    (jtw,) = jax.vjp(flat_f, x)[1](w)
    forward, reverse = float(jnp.dot(w, jv)), float(jnp.dot(jtw, v))
    err = abs(forward - reverse) / max(abs(forward), abs(reverse), 1e-300)
    return DotProductResult(forward, reverse, err, err <= tol)
