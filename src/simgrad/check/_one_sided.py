r"""Exact one-sided directional derivatives of piecewise-smooth programs.

An interpretation of the program core replaces every kink by its nonsmooth forward rule
and runs the program under `jax.jvp`: at a tie of ``min(a, b)`` the right derivative is
``min(a', b')``, of ``max`` it is ``max(a', b')``, of ``abs`` at 0 it is ``|x'|``, and a
comparison ``a > b`` at a tie is decided by the tangents (``a' > b'``), so ``where`` picks
the branch that holds just to the right. Away from ties every rule is JAX's own.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._src.program import Interpretation, evaluate, trace
from .._src.program._jax_compat import JaxprEqn, bind


@jax.custom_jvp
def _min(a, b):
    return lax.min(a, b)


@_min.defjvp
def _min_jvp(primals, tangents):
    (a, b), (da, db) = primals, tangents
    return lax.min(a, b), jnp.where(a < b, da, jnp.where(b < a, db, jnp.minimum(da, db)))


@jax.custom_jvp
def _max(a, b):
    return lax.max(a, b)


@_max.defjvp
def _max_jvp(primals, tangents):
    (a, b), (da, db) = primals, tangents
    return lax.max(a, b), jnp.where(a > b, da, jnp.where(b > a, db, jnp.maximum(da, db)))


@jax.custom_jvp
def _abs(x):
    return lax.abs(x)


@_abs.defjvp
def _abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return lax.abs(x), jnp.where(x != 0, jnp.sign(x) * dx, jnp.abs(dx))


_COMPARE = {"gt": lax.gt, "ge": lax.ge, "lt": lax.lt, "le": lax.le}


def _compare(name):
    op = _COMPARE[name]

    @jax.custom_jvp
    def compare(a, b):
        return op(a, b).astype(a.dtype)

    @compare.defjvp
    def compare_jvp(primals, tangents):
        (a, b), (da, db) = primals, tangents
        # At a tie, the side of θ + εh is decided by the tangents (if they differ).
        tie = (a == b) & (da != db)
        out = jnp.where(tie, op(da, db), op(a, b)).astype(a.dtype)
        return out, jnp.zeros_like(out)

    return compare


def _reduce(name, axes):
    op = jnp.max if name == "reduce_max" else jnp.min

    @jax.custom_jvp
    def reduce(x):
        return op(x, axis=axes)

    @reduce.defjvp
    def reduce_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        m = op(x, axis=axes)
        at = x == jnp.expand_dims(m, axes)
        fill = -jnp.inf if name == "reduce_max" else jnp.inf
        return m, op(jnp.where(at, dx, fill), axis=axes)

    return reduce


class OneSidedRules(Interpretation):
    """Run a program with the nonsmooth forward rules at kinks (use under `jax.jvp`)."""

    def initial_state(self):
        return ()

    def wants(self, eqn: JaxprEqn) -> bool:
        name = eqn.primitive.name
        if name not in {"min", "max", "abs", "clamp", "reduce_max", "reduce_min", *_COMPARE}:
            return False
        dtype = eqn.invars[0].aval.dtype
        return bool(np.issubdtype(dtype, np.floating))

    def apply(self, eqn: JaxprEqn, invals: list, state):
        name = eqn.primitive.name
        if name == "min":
            return [_min(*invals)], state
        if name == "max":
            return [_max(*invals)], state
        if name == "abs":
            return [_abs(*invals)], state
        if name == "clamp":
            lo, x, hi = invals
            lo, hi = jnp.broadcast_to(lo, x.shape), jnp.broadcast_to(hi, x.shape)
            return [_min(_max(x, lo), hi)], state
        if name in ("reduce_max", "reduce_min"):
            return [_reduce(name, tuple(eqn.params["axes"]))(invals[0])], state
        return [_compare(name)(*invals) > 0.5], state


class Ties(Interpretation):
    """Record, for each of the given kink and comparison equations, whether its operands
    tie at θ (``a == b`` for ``min``/``max``/comparisons, ``x == 0`` for ``abs``): where a
    kink at θ comes from."""

    def __init__(self, eqns):
        self.index = {id(e): i for i, e in enumerate(eqns)}

    def initial_state(self):
        return tuple(jnp.zeros((), bool) for _ in self.index)

    def wants(self, eqn: JaxprEqn) -> bool:
        return id(eqn) in self.index

    def apply(self, eqn: JaxprEqn, invals: list, state):
        name = eqn.primitive.name
        if name == "abs":
            tie = jnp.any(invals[0] == 0)
        elif name == "clamp":
            lo, x, hi = invals
            tie = jnp.any((x == lo) | (x == hi))
        elif name in ("reduce_max", "reduce_min"):
            x = invals[0]
            m = jnp.max(x) if name == "reduce_max" else jnp.min(x)
            tie = jnp.sum(x == m) > 1
        else:
            tie = jnp.any(invals[0] == invals[1])
        i = self.index[id(eqn)]
        return bind(eqn, invals), (*state[:i], state[i] | tie, *state[i + 1 :])


@dataclasses.dataclass(frozen=True)
class OneSided:
    r"""One-sided directional derivatives of ``f`` at ``theta`` along ``h``.

    Attributes:
        value: $f(\theta)$.
        right: $\lim_{\epsilon \downarrow 0} [f(\theta + \epsilon h) - f(\theta)]/\epsilon$.
        left: $\lim_{\epsilon \downarrow 0} [f(\theta) - f(\theta - \epsilon h)]/\epsilon$.
    """

    value: jax.Array
    right: jax.Array
    left: jax.Array

    @property
    def kink(self) -> bool:
        """The two sides differ: ``f`` has a kink at ``theta`` along ``h``."""
        scale = 1e-9 * (1 + float(jnp.max(jnp.abs(self.right))))
        return bool(jnp.any(jnp.abs(self.right - self.left) > scale))


def one_sided(f: Callable, theta, direction) -> OneSided:
    r"""Exact one-sided directional derivatives of a piecewise-smooth ``f`` at ``theta``.

    The right derivative along $h$ is $f'(\theta; h)$, the left one $-f'(\theta; -h)$,
    each computed by forward-mode AD with the nonsmooth rules at ties: ``min(a, b)`` at
    $a = b$ has derivative $\min(a', b')$, ``max`` $\max(a', b')$, ``abs`` at 0 $|x'|$,
    ``clip`` and ``relu`` follow, and a comparison at a tie is decided by the tangents
    (so ``jnp.where(x > 0, x, -x)`` is ``abs``). Away from ties both sides equal `jax.jvp`.

    Arguments:
        f: ``f(theta) -> array``; for a simulator, ``lambda t: sim(t, key)``.
        theta: the point (float, array or pytree).
        direction: $h$, with ``theta``'s structure.

    Returns:
        A `OneSided` with ``value``, ``right``, ``left`` and ``kink``.

    Examples:
        >>> import jax.numpy as jnp
        >>> d = one_sided(lambda t: jnp.minimum(t**2, 2 * t), 2.0, 1.0)
        >>> float(d.left), float(d.right), d.kink
        (4.0, 2.0, True)

    Not for jumps: where ``f`` itself jumps (``floor``, a threshold on the value) the
    one-sided derivatives are infinite and this returns the slope of the piece on each side.
    Ties inside ``sort``/``argmax`` are not resolved, nor a tie in a ``while_loop``'s
    condition (JAX evaluates it on primal values only): the trip count at θ is used.
    """
    if not callable(f):
        raise TypeError(f"f must be a function f(theta) -> array, got {type(f).__name__}.")
    leaves, treedef = jax.tree.flatten(theta)
    h_leaves, h_def = jax.tree.flatten(direction)
    if h_def != treedef:
        raise ValueError(
            f"direction must have theta's structure {treedef}, got {h_def}: give one entry "
            "per parameter."
        )
    leaves = [jnp.asarray(x) for x in leaves]
    if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
        raise TypeError("theta must hold floating-point numbers (one_sided differentiates it).")
    h_leaves = [jnp.asarray(h, x.dtype) for h, x in zip(h_leaves, leaves, strict=True)]
    program = trace(lambda *xs: f(jax.tree.unflatten(treedef, xs)), *leaves)
    interp = OneSidedRules()

    def run(*xs):
        outs, _ = evaluate(program, list(xs), interp)
        return outs[0] if len(outs) == 1 else outs

    value, right = jax.jvp(run, leaves, h_leaves)
    _, minus = jax.jvp(run, leaves, [-h for h in h_leaves])
    return OneSided(value=value, right=right, left=jax.tree.map(jnp.negative, minus))
