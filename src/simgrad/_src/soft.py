"""Soft (relaxed) versions of hard operations, each with a temperature ``tau``.

Public as `simgrad.relax`; they live here, below the program core, because the rule
table (`simgrad._src.program.rules`) relaxes primitives with them.

Every function reduces to its hard operation as ``tau → 0``; ``tau=0`` gives the hard
operation itself, exactly. The relaxation is biased for ``tau > 0``: the bias is measured
by `simgrad.smooth_sweep`, never hidden.

``tau`` is checked where it is known: a number or a concrete array must be finite and
≥ 0 (``ValueError`` otherwise). A ``tau`` traced by ``jit``/``grad``/``vmap`` is unknown
until the program runs, so it is guarded (``eqx.error_if``): the run raises unless
``0 < tau < inf`` — a traced 0 cannot select the hard operation; pass ``tau=0`` as a
number for that.
"""

import math

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._types import Array, Key


def _tau(tau, name: str = "tau"):
    """``tau`` checked (see the module's docstring); None when it is a concrete zero."""
    if isinstance(tau, jax.core.Tracer):
        if tau.ndim != 0 or not jnp.issubdtype(tau.dtype, jnp.floating):
            raise ValueError(f"{name} must be a scalar float, got a traced {tau.aval}.")
        return eqx.error_if(
            tau,
            ~((tau > 0) & jnp.isfinite(tau)),
            f"{name} must be > 0 and finite when traced (jit, grad, vmap); for the hard "
            f"operation pass {name}=0 as a number.",
        )
    t = np.asarray(tau)
    if t.ndim != 0 or t.dtype == bool or not np.issubdtype(t.dtype, np.number):
        raise ValueError(f"{name} must be a non-negative scalar, got {tau!r}.")
    value = float(t)
    if not math.isfinite(value):
        raise ValueError(
            f"{name}={value}: must be finite (an infinite temperature flattens the "
            "operation into a constant, a NaN gives NaN)."
        )
    if value < 0:
        raise ValueError(f"{name}={value}: must be ≥ 0 (0 gives the hard operation).")
    return None if value == 0 else tau


def _float(x) -> Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def step(x, tau) -> Array:
    r"""A soft threshold $\sigma(x/\tau)$; ``tau → 0`` gives $\mathbf 1\{x > 0\}$ (½ at 0).

    >>> import simgrad.relax as sr
    >>> float(sr.step(0.3, 0.0)), round(float(sr.step(0.3, 0.1)), 3)
    (1.0, 0.953)
    """
    x, tau = _float(x), _tau(tau)
    if tau is None:
        return jnp.where(x > 0, 1.0, jnp.where(x < 0, 0.0, 0.5)).astype(x.dtype)
    return jax.nn.sigmoid(x / tau)


def soft_cut(x, threshold, tau, *, keep: str = "above") -> Array:
    """The soft weight of a cut ``x > threshold`` (``keep="above"``) or ``x < threshold``.

    An event's weight is `step` of its distance to the threshold: 1 far inside the cut, 0
    far outside, smooth in ``threshold`` — so selections become differentiable.
    """
    if keep not in ("above", "below"):
        raise ValueError(f"keep={keep!r}: must be 'above' or 'below'.")
    margin = _float(x) - threshold
    return step(margin if keep == "above" else -margin, tau)


def soft_where(margin, x, y, tau) -> Array:
    """``where(margin > 0, x, y)`` relaxed: ``step(margin) * x + (1 - step(margin)) * y``."""
    p = step(margin, tau)
    return p * x + (1 - p) * y


def soft_max(x, y=None, *, tau, axis=None) -> Array:
    r"""$\tau \log \sum e^{x/\tau}$: the elementwise max of ``x`` and ``y`` when ``y`` is
    given, else the max of ``x`` over ``axis``. Over-estimates by at most $\tau\log n$.

    >>> import simgrad.relax as sr
    >>> float(sr.soft_max(1.0, 2.0, tau=0.0)), round(float(sr.soft_max(1.0, 2.0, tau=0.1)), 4)
    (2.0, 2.0)
    """
    x, tau = _float(x), _tau(tau)
    hard = tau is None
    if y is not None:
        y = _float(y)
        if hard:
            return jnp.maximum(x, y)
        return tau * jnp.logaddexp(x / tau, y / tau)
    if hard:
        return jnp.max(x, axis=axis)
    return tau * jax.nn.logsumexp(x / tau, axis=axis)


def soft_min(x, y=None, *, tau, axis=None) -> Array:
    """``-soft_max(-x, -y)``: the soft minimum (see `soft_max`)."""
    return -soft_max(-_float(x), None if y is None else -_float(y), tau=tau, axis=axis)


def soft_abs(x, tau) -> Array:
    r"""$\sqrt{x^2 + \tau^2} - \tau$: smooth at 0, within $\tau$ of $|x|$."""
    x, tau = _float(x), _tau(tau)
    if tau is None:
        return jnp.abs(x)
    return jnp.sqrt(x * x + tau * tau) - tau


def soft_clip(x, lo, hi, tau) -> Array:
    """``clip(x, lo, hi)`` relaxed: ``soft_min(soft_max(x, lo), hi)``."""
    return soft_min(soft_max(x, lo, tau=tau), hi, tau=tau)


def soft_round(x, tau) -> Array:
    r"""Round to the nearest integer, relaxed: $\lfloor x\rfloor + \sigma((\{x\} - ½)/\tau)$.

    Continuous up to a jump of $2\sigma(-1/2\tau)$ at the integers (negligible for
    $\tau \lesssim 0.05$); ``tau → 0`` gives rounding (halves round up).
    """
    x, tau = _float(x), _tau(tau)
    f = jnp.floor(x)
    return jnp.floor(x + 0.5) if tau is None else f + step(x - f - 0.5, tau)


def soft_floor(x, tau) -> Array:
    """``floor(x)`` relaxed: ``soft_round(x - 1/2)``."""
    x, tau = _float(x), _tau(tau)
    if tau is None:
        return jnp.floor(x)
    return soft_round(x - 0.5, tau)


def soft_sort(x, tau) -> Array:
    r"""Sort a vector ascending, relaxed (NeuralSort, Grover et al. 2019).

    Row $i$ of a soft permutation matrix is a softmax over the elements, peaked at the
    $i$-th smallest; the result is that matrix times ``x``. ``tau → 0`` gives ``sort(x)``
    for distinct values.
    """
    x = _float(x)
    if x.ndim != 1:
        raise ValueError(f"soft_sort sorts a vector; got shape {x.shape}.")
    tau = _tau(tau)
    if tau is None:
        return jnp.sort(x)
    n = x.shape[0]
    s = -x  # NeuralSort sorts descending: sort -x descending = x ascending
    pairwise = jnp.abs(s[:, None] - s[None, :]).sum(axis=1)
    scaling = (n + 1 - 2 * (jnp.arange(n) + 1)).astype(x.dtype)
    p = jax.nn.softmax((scaling[:, None] * s[None, :] - pairwise[None, :]) / tau, axis=-1)
    return p @ x


def soft_rank(x, tau) -> Array:
    r"""Ascending ranks 1..n, relaxed: $\tfrac12 + \sum_j \sigma((x_i - x_j)/\tau)$.

    ``tau → 0`` gives $1 + \#\{j : x_j < x_i\}$ for distinct values.
    """
    x = _float(x)
    if x.ndim != 1:
        raise ValueError(f"soft_rank ranks a vector; got shape {x.shape}.")
    d, tau = x[:, None] - x[None, :], _tau(tau)
    if tau is None:
        return 1.0 + jnp.sum(d > 0, axis=1).astype(x.dtype)
    return 0.5 + jnp.sum(jax.nn.sigmoid(d / tau), axis=1)


def gumbel_softmax(key: Key, logits, tau, *, hard: bool = False) -> Array:
    r"""A relaxed one-hot draw from $\mathrm{Categorical}(\mathrm{softmax}(\text{logits}))$.

    $\mathrm{softmax}((\text{logits} + g)/\tau)$ with Gumbel noise $g$ (Jang et al. 2017;
    Maddison et al. 2017). ``tau → 0`` gives the exact one-hot sample
    ``one_hot(argmax(logits + g))`` — the Gumbel-max trick — for the same key.
    ``hard=True`` returns that one-hot sample with the relaxed gradient (`straight_through`).
    """
    logits = _float(logits)
    g = jax.random.gumbel(key, logits.shape, logits.dtype)
    onehot = jax.nn.one_hot(jnp.argmax(logits + g, axis=-1), logits.shape[-1], dtype=logits.dtype)
    tau = _tau(tau)
    if tau is None:
        return onehot
    soft = jax.nn.softmax((logits + g) / tau, axis=-1)
    return straight_through(onehot, soft) if hard else soft


def straight_through(hard, soft) -> Array:
    """The value of ``hard`` with the gradient of ``soft``: ``soft + stop_gradient(hard - soft)``.

    Biased (the gradient is that of the relaxation) but the forward pass is exact.
    """
    hard, soft = _float(hard), _float(soft)
    if hard.shape != soft.shape:
        raise ValueError(f"hard {hard.shape} and soft {soft.shape} must have one shape.")
    return soft + jax.lax.stop_gradient(hard - soft)
