"""Forward taint: which values of a program can depend on some of its inputs.

`depends_on(program, wrt)` marks the inputs selected by ``wrt`` and propagates the mark
forward through every equation, descending into nested calls, ``scan``, ``while`` and
``cond`` (loop carries iterate to a fixed point). It is a static analysis of the jaxpr —
no evaluation — and conservative: a value marked may still be constant in the marked
inputs, one unmarked cannot depend on them. Interpretations use it to act only on the
θ-dependent part of a program (automatic smoothing replaces the θ-dependent comparisons;
the differentiability checker can report them).

A `simgrad.random` draw is opaque: its value is marked when one of its parameters (or its
key) is, and the sampler's own equations are not marked.
"""

from collections.abc import Sequence

from ._jax_compat import CALL_PRIMITIVES, ClosedJaxpr, Jaxpr, Var, call_jaxpr
from .sites import site_distribution


def depends_on(closed: ClosedJaxpr, wrt: Sequence[bool]) -> frozenset:
    """The variables of ``closed`` (at any depth) that can depend on the inputs in ``wrt``.

    ``wrt[i]`` says whether input ``i`` (of ``closed.jaxpr.invars``) is a source. Test an
    equation with ``any(v in result for v in eqn.invars)``; the variables of a sub-program
    are those of its own jaxpr (``eqn.params[...]``), as the core's `evaluate` and `find`
    walk them.
    """
    if len(wrt) != len(closed.jaxpr.invars):
        raise ValueError(f"wrt has {len(wrt)} flags for {len(closed.jaxpr.invars)} inputs.")
    tainted: set = set()
    _walk(closed.jaxpr, list(wrt), tainted)
    return frozenset(tainted)


def _is(v, tainted) -> bool:
    return isinstance(v, Var) and v in tainted


def _walk(jaxpr: Jaxpr, flags: list[bool], tainted: set) -> list[bool]:
    """Mark ``jaxpr``'s inputs by ``flags``, propagate; return the outputs' flags."""
    for v, f in zip(jaxpr.invars, flags, strict=True):
        if f:
            tainted.add(v)
    for eqn in jaxpr.eqns:
        ins = [_is(v, tainted) for v in eqn.invars]
        outs = _eqn(eqn, ins, tainted)
        for v, f in zip(eqn.outvars, outs, strict=True):
            if f:
                tainted.add(v)
    return [_is(v, tainted) for v in jaxpr.outvars]


def _eqn(eqn, ins: list[bool], tainted: set) -> list[bool]:
    n_out = len(eqn.outvars)
    name = eqn.primitive.name
    if site_distribution(eqn) is not None:  # a draw: opaque
        return [any(ins)] * n_out
    if name in CALL_PRIMITIVES:
        return _walk(call_jaxpr(eqn).jaxpr, ins, tainted)
    p = eqn.params
    if name == "scan":
        n_c, n_k = p["num_consts"], p["num_carry"]
        consts, carry, xs = ins[:n_c], ins[n_c : n_c + n_k], ins[n_c + n_k :]
        while True:
            outs = _walk(p["jaxpr"].jaxpr, [*consts, *carry, *xs], tainted)
            new = [a or b for a, b in zip(carry, outs[:n_k], strict=True)]
            if new == carry:
                return [*new, *outs[n_k:]]
            carry = new
    if name == "while":
        n_cc, n_bc = p["cond_nconsts"], p["body_nconsts"]
        cconsts, bconsts, carry = ins[:n_cc], ins[n_cc : n_cc + n_bc], ins[n_cc + n_bc :]
        while True:
            outs = _walk(p["body_jaxpr"].jaxpr, [*bconsts, *carry], tainted)
            new = [a or b for a, b in zip(carry, outs, strict=True)]
            if new == carry:
                break
            carry = new
        (stop,) = _walk(p["cond_jaxpr"].jaxpr, [*cconsts, *carry], tainted)
        return [True] * n_out if stop else carry  # a marked trip count marks every output
    if name == "cond":
        outs = [False] * n_out
        for branch in p["branches"]:
            b = _walk(branch.jaxpr, ins[1:], tainted)
            outs = [a or c for a, c in zip(outs, b, strict=True)]
        return [True] * n_out if ins[0] else outs
    # Any other equation, including higher-order ones the core does not descend into.
    return [any(ins)] * n_out
