"""Automatic smoothing: relax every θ-dependent hard operation of a simulator."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._src.program import Interpretation, depends_on, descend, evaluate, trace
from .._src.program._jax_compat import CALL_PRIMITIVES, Var
from .._src.program.rules import RULES
from .._src.validate import check_callable
from .._types import Key, Simulator, Theta


def _is_bool(var) -> bool:
    """A boolean variable of the original program."""
    return var.aval.dtype == jnp.bool_


def _is_soft(value, var) -> bool:
    """A boolean of the original program that smoothing turned into a probability."""
    return _is_bool(var) and jnp.issubdtype(jnp.result_type(value), jnp.floating)


def _harden(value, var):
    return value > 0.5 if _is_soft(value, var) else value


class Smooth(Interpretation):
    """Replace θ-dependent non-smooth operations by their relaxations at temperature
    ``tau``, as the rule table (`simgrad._src.program.rules`) gives them: comparisons,
    selects, logic, floor/ceil/round, sign, min/max (also reductions), abs and clamp.

    A comparison becomes a probability (a float in [0, 1], `simgrad.relax.step` of its
    margin) where the original program had a boolean; ``select_n``, logic and conversion
    to a float type consume it softly. Anything else that receives such a probability (an
    integer conversion, a ``cond`` index, a loop carry) gets it hardened back
    (``p > 1/2``): correct, but not smoothed.
    """

    def __init__(self, tau: float, tainted: frozenset):
        self.tau = tau
        self.tainted = tainted

    def initial_state(self):
        return ()

    def wants(self, eqn) -> bool:
        tainted = [isinstance(v, Var) and v in self.tainted for v in eqn.invars]
        if not any(tainted):
            return False
        rule = RULES.get(eqn.primitive.name)
        bool_in = any(t and _is_bool(v) for t, v in zip(tainted, eqn.invars, strict=True))
        return (rule is not None and rule.relax is not None) or bool_in

    def apply(self, eqn, invals, state):
        if eqn.primitive.name in CALL_PRIMITIVES:  # inline: relaxed booleans flow inside
            return descend(eqn, invals, self, state)
        soft = [_is_soft(x, v) for x, v in zip(invals, eqn.invars, strict=True)]
        rule = RULES.get(eqn.primitive.name)
        if rule is not None and rule.relax is not None:
            out = rule.relax(eqn, invals, soft, self.tau)
            if out is not None:
                return out, state
        # Anything else (an integer conversion, a loop or branch receiving a relaxed
        # boolean): harden the booleans, then evaluate as usual — inside loops too.
        invals = [_harden(x, v) for x, v in zip(invals, eqn.invars, strict=True)]
        return descend(eqn, invals, self, state)


def relaxed(sim: Simulator, theta: Theta, key: Key, tau, random_only: bool = False) -> object:
    """``smooth(sim, tau)(theta, key)`` with ``tau`` an argument: a traced scalar too (one
    trace serves every temperature, e.g. under ``vmap`` over temperatures). With
    ``random_only``, only operations that depend on θ *and* on the key are relaxed: jumps
    after random draws; comparisons of θ alone (a draw's parameter check) stay exact."""
    leaves = jax.tree.leaves(theta)
    program = trace(sim, theta, key)
    n_key = len(program.jaxpr.invars) - len(leaves)
    tainted = depends_on(program, [True] * len(leaves) + [False] * n_key)
    if random_only:
        tainted = tainted & depends_on(program, [False] * len(leaves) + [True] * n_key)
    args = [*leaves, *jax.tree.leaves(key)]
    outs, _ = evaluate(program, args, Smooth(tau, tainted))
    outs = [_harden(x, v) for x, v in zip(outs, program.jaxpr.outvars, strict=True)]
    treedef = jax.tree.structure(jax.eval_shape(sim, theta, key))
    return jax.tree.unflatten(treedef, outs)


class _Smoothed(eqx.Module):
    """``sim`` relaxed at ``tau``, an array: smoothed copies at other temperatures share
    one compiled program (`sg.gradient` caches on everything but the arrays)."""

    sim: Callable
    tau: np.ndarray

    def __call__(self, theta, key):
        dtype = jnp.result_type(*jax.tree.leaves(theta))  # no float64 tau in float32 maths
        return relaxed(self.sim, theta, key, jnp.asarray(self.tau, dtype))


def smooth(sim: Simulator, tau: float) -> Simulator:
    r"""A smoothed copy of ``sim``: every θ-dependent hard operation relaxed at ``tau``.

    The simulator is traced through the program core; a forward taint from θ
    (`depends_on`) finds the comparisons ``>, ≥, <, ≤``, selects (``jnp.where``), logic on
    their results, ``floor``/``ceil``/``round``, ``min``/``max`` (also reductions),
    ``abs``, ``sign`` and ``clip`` that θ can reach, and replaces each by its relaxation
    from `simgrad.relax` at temperature ``tau``. Random draws are untouched, so any
    estimator runs on the result. Operations that do not depend on θ stay exact.

    The smoothed simulator is *biased* for ``tau > 0``: measure the bias with
    `smooth_sweep`. A ``lax.cond``/``switch`` on a θ-dependent predicate is not relaxed
    (write ``jnp.where`` to have it smoothed); neither is equality.

    Examples:
        >>> import jax, simgrad as sg
        >>> soft = sg.smooth(lambda t, k: jax.numpy.where(t > 1.0, 1.0, 0.0), tau=0.1)
        >>> round(float(jax.grad(soft)(1.0, jax.random.key(0))), 3)   # σ'(0) / τ
        2.5
    """
    check_callable(sim)
    t = np.asarray(tau)
    if t.ndim != 0 or not np.issubdtype(t.dtype, np.number) or not 0 < float(t) < np.inf:
        raise ValueError(f"tau={tau!r}: must be a positive finite number (the temperature).")
    return _Smoothed(sim, np.asarray(float(t)))
