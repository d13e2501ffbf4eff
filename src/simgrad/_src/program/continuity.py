"""Which comparisons only choose between branches that meet: ``jnp.where(S > K, S - K, 0)``.

A comparison ``a > b`` whose every use is a select ``where(a > b, u, v)`` with ``u = v``
wherever ``a = b`` leaves the output continuous (a kink), not a jump: the jump ``u - v``
vanishes on the boundary ``a - b = 0``. `meeting_comparisons` proves this symbolically,
with no values, as a `dataflow` pass: each value is an affine form over atoms (the
values the pass does not expand), and an atom remembers the forms whose zero makes it
zero (``x · y``, ``x / y``, ``sin x``, ``x ** 3``). ``u - v`` vanishes on the boundary
when, once the atoms that vanish there are dropped, it is a constant multiple of
``a - b``. What it cannot prove stays a threshold, so a claim errs towards "biased",
never towards silence. For example:

* ``where(S > K, S - K, 0)``: ``u - v = S - K = 1 · (S - K)``, a kink;
* ``where(x < 0, 0, x ** 2)``: ``u - v = -x²``, zero where ``x = 0``, a kink;
* ``where(x > 0.5, x, 0)``: ``u - v = x``, not zero where ``x = 0.5``, a jump.
"""

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np

from ._jax_compat import CALL_PRIMITIVES, ClosedJaxpr, JaxprEqn, Literal, call_jaxpr
from .core import _sub_jaxprs, dataflow
from .rules import ZERO_AT_ZERO, rule_for

# Unchanged values (shapes aside): a form, or a comparison's outcome, passes through.
_SAME = frozenset(
    {"broadcast_in_dim", "reshape", "squeeze", "expand_dims", "copy", "copy_p", "transpose"}
)


@dataclasses.dataclass(frozen=True)
class _Form:
    """``Σ coefficient · atom + const`` (``terms``: pairs ``(atom, coefficient)``).

    An atom is a value the pass does not expand, named by how it was made (the same
    primitive on the same forms is the same atom: ``θ · exp(z)`` computed twice is one).
    A value that differs between the paths into it (a loop carry, a branch's output) is a
    ``merged`` atom of its own, which absorbs later joins so that loops converge."""

    terms: frozenset = frozenset()
    const: float = 0.0
    merged: bool = False

    def __or__(self, other):  # dataflow's join
        return _join(self, other)

    __ror__ = __or__


@dataclasses.dataclass(frozen=True)
class _Outcome:
    """The outcome of comparison ``eqn`` (by id), whose boundary is ``difference = 0``."""

    eqn: int
    difference: _Form

    def __or__(self, other):
        return _join(self, other)

    __ror__ = __or__


def _join(a, b):
    if a == b or (isinstance(a, _Form) and a.merged):
        return a
    if isinstance(b, _Form) and b.merged:
        return b
    return _Form(frozenset({(("join", a, b), 1.0)}), merged=True)


def _combine(a: _Form, b: _Form, scale: float) -> _Form:
    """``a + scale · b``."""
    terms = dict(a.terms)
    for atom, c in b.terms:
        terms[atom] = terms.get(atom, 0.0) + scale * c
    return _Form(frozenset((k, c) for k, c in terms.items() if c != 0.0), a.const + scale * b.const)


def _constant(form) -> float | None:
    return form.const if isinstance(form, _Form) and not form.terms else None


class _Pass:
    """One symbolic pass: the forms each atom vanishes with, and the verdict on each
    comparison (``proved``: a use selects between branches that meet; ``refuted``: a use
    does not, which wins)."""

    def __init__(self, constants: dict[int, tuple]):
        self.constants = constants  # a program constant's variable -> its value, hashable
        # Atoms are numbered by how they were made (hash-consing): a form then holds small
        # ints, and comparing or hashing one never walks the program that made it.
        self.numbers: dict = {}
        self.factors: dict[int, tuple] = {}
        self.verdicts: dict[tuple, bool] = {}  # vanishes(form, boundary), remembered
        self.bound: dict[int, _Form] = {}  # a call's input -> the literal passed to it
        self.proved: set[int] = set()
        self.refuted: set[int] = set()

    def atom(self, key, *factors) -> _Form:
        number = self.numbers.setdefault(key, len(self.numbers))
        self.factors[number] = tuple(f for f in factors if isinstance(f, _Form))
        return _Form(frozenset({(number, 1.0)}))

    def operand(self, var, value):
        """The value of an equation's input: its flag, a literal's constant, or an atom of
        its own for a variable nothing was seeded for (a constant of the program)."""
        if value != 0:
            return value
        if isinstance(var, Literal):
            array = np.asarray(var.val)
            if array.size and np.all(array == array.flat[0]) and np.isfinite(array.flat[0]):
                return _Form(frozenset(), float(array.flat[0]))
        known = self.bound.get(id(var))
        return known or self.atom(("constant", self.constants.get(id(var), id(var))))

    def transfer(self, eqn: JaxprEqn, ins: tuple) -> tuple | None:
        x = [self.operand(v, f) for v, f in zip(eqn.invars, ins, strict=True)]
        name = eqn.primitive.name
        self._judge(eqn, x)
        if name in CALL_PRIMITIVES:  # inlined by dataflow: its literals travel in by name
            inner = call_jaxpr(eqn).jaxpr.invars
            self.bound.update((id(v), a) for v, a in zip(inner, x, strict=True))
        if _sub_jaxprs(eqn):
            return None  # calls inlined; loops and branches joined by dataflow
        forms = all(isinstance(v, _Form) for v in x)
        rule = rule_for(eqn)
        if rule is not None and rule.kind == "threshold" and forms:  # a float comparison
            return (_Outcome(id(eqn), _combine(x[0], x[1], -1.0)),)
        if _passes_on(eqn):
            return (x[0],)
        key = (name, str(eqn.params), tuple(x), id(eqn) if eqn.effects else None)
        if not forms or len(eqn.outvars) != 1:
            return tuple(self.atom((*key, k)) for k in range(len(eqn.outvars)))
        return (self._arithmetic(key, eqn, x),)

    def _judge(self, eqn: JaxprEqn, x: list) -> None:
        """Judge the comparisons whose outcomes ``eqn`` uses: a select between branches
        that meet on the boundary proves (between floats: an index that meets still jumps
        where it is used), a pass-through waits, any other use refutes."""
        outcomes = [(i, v) for i, v in enumerate(x) if isinstance(v, _Outcome)]
        if not outcomes or eqn.primitive.name in CALL_PRIMITIVES or _passes_on(eqn):
            return
        floats = jnp.issubdtype(eqn.outvars[0].aval.dtype, jnp.floating)  # pyright: ignore[reportAttributeAccessIssue]  (a jaxpr variable's aval is shaped)
        if eqn.primitive.name == "select_n" and len(x) == 3 and outcomes[0][0] == 0 and floats:
            (_, outcome), (u, v) = outcomes[0], x[1:]
            if len(outcomes) == 1 and isinstance(u, _Form) and isinstance(v, _Form):
                meets = self.vanishes(_combine(u, v, -1.0), outcome.difference)
                (self.proved if meets else self.refuted).add(outcome.eqn)
                return
        self.refuted.update(v.eqn for _, v in outcomes)

    def _arithmetic(self, key, eqn, x) -> _Form:
        name = eqn.primitive.name
        if name in ("add", "add_any", "sub"):
            return _combine(x[0], x[1], -1.0 if name == "sub" else 1.0)
        if name == "neg":
            return _combine(_Form(), x[0], -1.0)
        if name == "mul":
            for a, b in (x, x[::-1]):
                c = _constant(a)
                if c is not None:
                    return _combine(_Form(), b, c)
            return self.atom(key, x[0], x[1])
        if name == "div":
            c = _constant(x[1])
            return _combine(_Form(), x[0], 1.0 / c) if c else self.atom(key, x[0])
        if name in ZERO_AT_ZERO and (name != "integer_pow" or eqn.params["y"] > 0):
            return self.atom(key, x[0])
        return self.atom(key)

    def vanishes(self, form: _Form, boundary: _Form) -> bool:
        """Is ``form`` zero wherever ``boundary`` is?"""
        if (form, boundary) not in self.verdicts:
            self.verdicts[form, boundary] = self._vanishes(form, boundary)
        return self.verdicts[form, boundary]

    def _vanishes(self, form: _Form, boundary: _Form) -> bool:
        if not boundary.terms:
            return False
        rest = {
            a: c
            for a, c in form.terms
            if not any(self.vanishes(f, boundary) for f in self.factors.get(a, ()))
        }
        by = dict(boundary.terms)
        atom, c = next(iter(boundary.terms))
        ratio = rest.get(atom, 0.0) / c
        scale = max(abs(v) for v in (*rest.values(), *by.values(), form.const, boundary.const))
        close = functools.partial(math.isclose, rel_tol=1e-5, abs_tol=1e-6 * scale)
        return close(form.const, ratio * boundary.const) and all(
            close(rest.get(a, 0.0), ratio * by.get(a, 0.0)) for a in rest.keys() | by.keys()
        )


def _passes_on(eqn: JaxprEqn) -> bool:
    """Does ``eqn`` pass its first input on unchanged (shapes aside, or negated)?"""
    name = eqn.primitive.name
    return name in _SAME or name == "not" or _same_kind(eqn)


def _same_kind(eqn: JaxprEqn) -> bool:
    """A conversion (a ``new_dtype``) that keeps values: float to float, bool to bool."""
    new = eqn.params.get("new_dtype")
    if new is None or not eqn.invars:
        return False
    old = eqn.invars[0].aval.dtype  # pyright: ignore[reportAttributeAccessIssue]  (a jaxpr variable's aval is shaped)
    floats = jnp.issubdtype(old, jnp.floating) and jnp.issubdtype(new, jnp.floating)
    return bool(floats) or (old == jnp.bool_ and new == jnp.bool_)


def _by_value(constant) -> tuple:
    """A program constant, hashable: equal constants (two ``jnp.array([1., 2.])``) are one
    atom; one that is not a plain array (a key) is only itself."""
    try:
        array = np.asarray(constant)
    except TypeError:
        return ("object", id(constant))
    return array.dtype.str, array.shape, array.tobytes()


def meeting_comparisons(closed: ClosedJaxpr) -> frozenset[int]:
    """The ids of the comparisons of ``closed`` (at any depth) whose every use selects
    between branches that agree where the comparison flips: ``where(S > K, S - K, 0)``
    is continuous in ``S``, a kink and not a jump."""
    jaxpr = closed.jaxpr
    constants = {id(v): _by_value(c) for v, c in zip(jaxpr.constvars, closed.consts, strict=True)}
    run = _Pass(constants)
    seeds = [run.atom(("input", k)) for k in range(len(jaxpr.invars))]
    _, outs = dataflow(closed, seeds, run.transfer)
    run.refuted.update(v.eqn for v in outs if isinstance(v, _Outcome))
    return frozenset(run.proved - run.refuted)
