"""Which values of a program can depend on some of its inputs: `depends_on`.

A thin view of the core's `dataflow` taint analysis for interpretations that ask "is this
equation's input θ-dependent?" (automatic smoothing relaxes only those comparisons). A
`simgrad.random` draw is opaque: its value is marked when one of its parameters (or its
key) is, and the sampler's own equations are not visited. Static and conservative: a
value marked may still be constant in the marked inputs; one unmarked cannot depend on
them.
"""

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from ._jax_compat import ClosedJaxpr, Var
from .core import dataflow
from .sites import site_distribution

_MARK = 1


def _opaque_draws(eqn, input_flags):
    if site_distribution(eqn) is None:
        return None
    marked = _MARK if any(f & _MARK for f in input_flags) else 0
    return (marked,) * len(eqn.outvars)


class Taint(frozenset):
    """The variables that can depend on some inputs: a frozenset that any atom of a jaxpr
    can be tested against. An equation's input may be a *literal* — a constant the tracer
    inlined, such as a Python number given as a draw's parameter — which is unhashable and
    depends on nothing: ``literal in taint`` is False, not a ``TypeError``."""

    def __contains__(self, atom: object) -> bool:
        return isinstance(atom, Var) and frozenset.__contains__(self, atom)

    def __and__(self, other: AbstractSet) -> "Taint":
        return Taint(frozenset.__and__(self, other))

    def __or__(self, other: AbstractSet) -> "Taint":
        return Taint(frozenset.__or__(self, other))


def depends_on(closed: ClosedJaxpr, wrt: Sequence[bool]) -> Taint:
    """The variables of ``closed`` (at any depth) that can depend on the inputs in ``wrt``.

    ``wrt[i]`` says whether input ``i`` (of ``closed.jaxpr.invars``) is a source. Test an
    equation with ``any(v in result for v in eqn.invars)`` (a literal input is never in
    it); the variables of a sub-program are those of its own jaxpr, as the core's
    `evaluate` and `find` walk them.
    """
    if len(wrt) != len(closed.jaxpr.invars):
        raise ValueError(f"wrt has {len(wrt)} flags for {len(closed.jaxpr.invars)} inputs.")
    flows, _ = dataflow(closed, [_MARK if w else 0 for w in wrt], _opaque_draws)
    tainted = {v for v, w in zip(closed.jaxpr.invars, wrt, strict=True) if w}
    for flow in flows:
        for variables, flags in ((flow.eqn.invars, flow.inputs), (flow.eqn.outvars, flow.outputs)):
            tainted.update(
                v for v, f in zip(variables, flags, strict=True) if f & _MARK and isinstance(v, Var)
            )
    return Taint(tainted)
