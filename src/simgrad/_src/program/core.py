"""The interpreter: evaluate a jaxpr under an `Interpretation`, threading its state.

The core knows how to walk a program — straight-line equations, nested `jit`, `scan`,
`while`, `cond`, `custom_jvp`, `custom_vjp`, `checkpoint` — and how to carry an
interpretation's *state* (any pytree of arrays: a log-probability, a count, a list of
branch margins) through every loop and branch. An interpretation says what to do at the
equations it cares about; everything else is re-bound unchanged, and sub-programs that
contain nothing of interest are re-bound whole (their custom derivatives intact).
"""

import abc
import contextlib
import contextvars
import dataclasses
import functools
import operator
import typing
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import jaxpr_as_fun

from ._jax_compat import (
    CALL_PRIMITIVES,
    CUSTOM_VJP_PRIMITIVES,
    STOP_GRADIENT,
    ClosedJaxpr,
    Jaxpr,
    JaxprEqn,
    Literal,
    Var,
    bind,
    call_jaxpr,
    scan_counts,
)
from .rules import ends_chain, monotone_in
from .sites import DrawSite, Pushforward, draw_distribution, site_distribution

State = Any


class Interpretation(abc.ABC):
    """A way of running a program: the one extension point of the core.

    Subclass and override any of:

    * `draw(site, state)`: called at every `simgrad.random` draw; returns the draw's value
      and the new state. Default: sample as the original program does.
    * `wants(eqn)` and `apply(eqn, invals, state)`: for any other equation ``wants``
      selects, ``apply`` replaces its evaluation (e.g. a checker records the margin of
      every comparison; smoothing replaces ``gt`` by a sigmoid). Default: nothing wanted.
    * `scan`, `while_loop`, `cond`: how values and state travel through a loop or branch
      that the core walks (one that contains a draw or a wanted equation). The core hands
      them the sub-programs as functions and the inputs split by role, so that no
      interpretation reads a control-flow primitive's parameters. Defaults: rebuild the
      loop or branch with `lax.scan`, `lax.while_loop`, `lax.switch`, the state an extra
      carry or operand.

    The state must keep its shapes and dtypes (it is a loop carry inside `scan` and
    `while`). Interpretations must not assume how often they are called: inside a loop body
    ``draw`` is traced once and run every iteration.

    Set the class variable ``inline_custom_vjp = True`` for an interpretation whose result
    is differentiated in forward mode: the core then evaluates every `jax.custom_vjp`
    function's own computation in place (which forward mode can differentiate) instead of
    re-binding it (which forward mode refuses).
    """

    inline_custom_vjp: ClassVar[bool] = False
    # True: draws followed by strictly monotone maps reach `pushforward` (change of variables).
    changes_variables: bool = False

    @abc.abstractmethod
    def initial_state(self) -> State:
        """The state before the first equation (a pytree of arrays; ``()`` for none)."""

    def draw(self, site: DrawSite, state: State) -> tuple[Any, State]:
        return site.sample(), state

    def pushforward(self, pushed: Pushforward, state: State) -> tuple[Any, State]:
        """Called (if ``changes_variables``) in place of the last map of a `Pushforward`
        chain ``X = g(θ, Z)``: returns ``X`` and the new state. Default: ``X`` as the
        program computes it. ``draw`` was called for ``Z`` as usual, before the maps."""
        return pushed.value(), state

    def wants(self, eqn: JaxprEqn) -> bool:
        return False

    def apply(self, eqn: JaxprEqn, invals: list, state: State) -> tuple[list, State]:
        return bind(eqn, invals), state

    def scan(
        self, body: Callable, consts: list, carry: list, xs: list, state: State, loop: Callable
    ) -> tuple[list, list, State]:
        """Run a `scan`: ``(final carry, stacked outputs, state)``.

        ``body(consts, carry, x, state) -> (carry, ys, state)`` evaluates one iteration
        under this interpretation (``x``: one slice of ``xs``); ``loop(f, init, xs)`` is
        `lax.scan` with the equation's length, direction and unrolling.
        """

        def step(c, x):
            s, carry = c
            carry, ys, s = body(consts, carry, x, s)
            return (s, carry), ys

        (state, carry), ys = loop(step, (state, carry), xs)
        return list(carry), list(ys), state

    def while_loop(
        self, cond: Callable, body: Callable, cond_consts: list, body_consts: list,
        carry: list, state: State,
    ) -> tuple[list, State]:  # fmt: skip
        """Run a `while`: ``(final carry, state)``.

        ``cond(consts, carry, state) -> bool`` and ``body(consts, carry, state) -> (carry,
        state)`` evaluate the condition and one iteration under this interpretation.
        """

        def keep_going(c):
            s, carry = c
            return cond(cond_consts, carry, s)

        def step(c):
            s, carry = c
            carry, s = body(body_consts, carry, s)
            return s, carry

        state, carry = lax.while_loop(keep_going, step, (state, carry))
        return list(carry), state

    def cond(
        self, index, branches: Sequence[Callable], operands: list, state: State
    ) -> tuple[list, State]:
        """Run a `cond`/`switch`: ``(outputs, state)``. ``branches[i](operands, state) ->
        (outputs, state)`` evaluates branch ``i`` under this interpretation."""

        def branch(fn):
            return lambda s, ops: _swap(fn(ops, s))

        state, outs = lax.switch(index, [branch(b) for b in branches], state, operands)
        return list(outs), state


@typing.overload
def trace(fn: Callable, *args, return_shape: typing.Literal[False] = False) -> ClosedJaxpr: ...
@typing.overload
def trace(fn: Callable, *args, return_shape: typing.Literal[True]) -> tuple[ClosedJaxpr, Any]: ...
def trace(fn: Callable, *args, return_shape: bool = False):
    """Trace ``fn(*args)`` to a closed jaxpr whose inputs are ``args``' leaves, in order;
    with ``return_shape``, ``(jaxpr, outputs)`` where ``outputs`` is the output structure of
    ``jax.ShapeDtypeStruct`` (as `jax.eval_shape`, from the same trace)."""
    return jax.make_jaxpr(fn, return_shape=return_shape)(*args)


def evaluate(
    closed: ClosedJaxpr, args: Sequence, interpretation: Interpretation, state: State = None
) -> tuple[list, State]:
    """Run ``closed`` on the flat ``args`` under ``interpretation``: ``(outputs, state)``.

    ``state`` defaults to ``interpretation.initial_state()``. Differentiable, vmappable and
    jittable like any JAX function of ``args``.
    """
    if state is None:
        state = interpretation.initial_state()
    if len(args) != len(closed.jaxpr.invars):
        raise ValueError(f"the program takes {len(closed.jaxpr.invars)} inputs, got {len(args)}.")
    with _within(()):
        return _eval(closed.jaxpr, closed.consts, list(args), interpretation, state, None)


def find(
    closed: ClosedJaxpr, predicate: Callable[[JaxprEqn], bool]
) -> list[tuple[JaxprEqn, tuple]]:
    """Every equation, at any depth, for which ``predicate`` holds, with its context.

    The context is the tuple of enclosing control-flow primitive names, outermost first,
    e.g. ``("scan", "cond")`` for a draw in a branch inside a loop body. A draw is one
    step: the sampler's own code inside it is not searched.
    """
    found = []

    def walk(jaxpr: Jaxpr, context: tuple) -> None:
        for eqn in jaxpr.eqns:
            if predicate(eqn):
                found.append((eqn, context))
            if site_distribution(eqn) is not None:
                continue
            for inner in _sub_jaxprs(eqn):
                walk(inner.jaxpr, (*context, eqn.primitive.name))

    walk(closed.jaxpr, ())
    return found


def draw_sites(closed: ClosedJaxpr) -> list[tuple[JaxprEqn, tuple]]:
    """Every `simgrad.random` draw in the program, with its context (see `find`)."""
    return find(closed, lambda eqn: site_distribution(eqn) is not None)


def output_depends_on(fn: Callable, args: tuple, argnum: int = 0) -> list[bool]:
    """For each output leaf of ``fn(*args)``: can it depend on ``args[argnum]``?

    Decided on the jaxpr of ``fn``'s forward derivative, in which JAX has already dropped
    every tangent that is structurally zero; a ``False`` is certain, a ``True`` is
    conservative (an output that depends only through a loop or branch counts as dependent).
    """
    x = args[argnum]

    def tangent_out(x, t):
        f = lambda x: fn(*args[:argnum], x, *args[argnum + 1 :])  # noqa: E731
        return jax.jvp(f, (x,), (t,))[1]

    t = jax.tree.map(jnp.zeros_like, x)
    closed = jax.make_jaxpr(tangent_out)(x, t)
    n_x = len(jax.tree.leaves(x))
    reached = set(closed.jaxpr.invars[n_x:])
    for eqn in closed.jaxpr.eqns:
        if any(isinstance(v, Var) and v in reached for v in eqn.invars):
            reached.update(eqn.outvars)
    return [isinstance(v, Var) and v in reached for v in closed.jaxpr.outvars]


# --- the walker -------------------------------------------------------------------------

# The equations being walked into (calls, loops, branches), outermost first: where in the
# program an interpretation is. A helper `jit` called twice is one equation object at two
# places; `current_site` tells them apart.
_PATH: contextvars.ContextVar[tuple] = contextvars.ContextVar("simgrad_program_path", default=())


@contextlib.contextmanager
def _within(path: tuple):
    token = _PATH.set(path)
    try:
        yield
    finally:
        _PATH.reset(token)


def current_site(eqn: JaxprEqn) -> tuple:
    """Where ``eqn`` is being evaluated: the ids of the enclosing equations and its own.

    Call it from `Interpretation.apply`; it equals `Flow.site` of the same place as found
    by `dataflow`, so an interpretation can act at places chosen from a `dataflow` pass.
    """
    return (*(id(e) for e in _PATH.get()), id(eqn))


def _sub_jaxprs(eqn: JaxprEqn) -> list[ClosedJaxpr]:
    name = eqn.primitive.name
    if name in CALL_PRIMITIVES:
        return [call_jaxpr(eqn)]
    if name == "scan":
        return [eqn.params["jaxpr"]]
    if name == "while":
        return [eqn.params["cond_jaxpr"], eqn.params["body_jaxpr"]]
    if name == "cond":
        return list(eqn.params["branches"])
    return []


def _split_scan(eqn: JaxprEqn, values: Sequence) -> tuple[list, list, list]:
    """A scan's inputs (or their flags) as ``(consts, carry, xs)``."""
    n_consts, n_carry = scan_counts(eqn.params)
    values = list(values)
    return values[:n_consts], values[n_consts : n_consts + n_carry], values[n_consts + n_carry :]


def _split_while(eqn: JaxprEqn, values: Sequence) -> tuple[list, list, list]:
    """A while's inputs (or their flags) as ``(cond_consts, body_consts, carry)``."""
    n_cond, n_body = eqn.params["cond_nconsts"], eqn.params["body_nconsts"]
    values = list(values)
    return values[:n_cond], values[n_cond : n_cond + n_body], values[n_cond + n_body :]


def contains_draw(eqn: JaxprEqn) -> bool:
    """Is ``eqn`` a `simgrad.random` draw, or a call, loop or branch with one inside?"""
    return site_distribution(eqn) is not None or any(_has_draw(s.jaxpr) for s in _sub_jaxprs(eqn))


def _inlines(eqn: JaxprEqn, interpretation: Interpretation) -> bool:
    return interpretation.inline_custom_vjp and eqn.primitive.name in CUSTOM_VJP_PRIMITIVES


def _needs_visit(jaxpr: Jaxpr, interpretation: Interpretation) -> bool:
    """Does the interpretation have anything to do inside ``jaxpr`` (at any depth)?"""
    for eqn in jaxpr.eqns:
        if site_distribution(eqn) is not None or interpretation.wants(eqn):
            return True
        if _inlines(eqn, interpretation):
            return True
        if any(_needs_visit(inner.jaxpr, interpretation) for inner in _sub_jaxprs(eqn)):
            return True
    return False


def _has_draw(jaxpr: Jaxpr) -> bool:
    return any(contains_draw(eqn) for eqn in jaxpr.eqns)


def _liveness(
    jaxpr: Jaxpr, live_out: list[bool] | None, cut: frozenset = frozenset()
) -> tuple[list[bool], set]:
    """Backward liveness: which equations can reach a live output (or have effects), and
    which variables are live; nothing reaches the outputs through a primitive in ``cut``."""
    if live_out is None:
        live_out = [True] * len(jaxpr.outvars)
    pairs = zip(jaxpr.outvars, live_out, strict=True)
    live = {v for v, keep in pairs if keep and isinstance(v, Var)}
    flags = [False] * len(jaxpr.eqns)
    for i in range(len(jaxpr.eqns) - 1, -1, -1):
        eqn = jaxpr.eqns[i]
        if eqn.primitive.name in cut:
            continue
        if eqn.effects or any(v in live for v in eqn.outvars):
            flags[i] = True
            live.update(v for v in eqn.invars if isinstance(v, Var))
    return flags, live


def _eval(jaxpr, consts, args, interpretation, state, live_out, noise=None):
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x
    flags, live_vars = _liveness(jaxpr, live_out)
    noise = noise or {}  # inputs that are slices of a draw (a scan over a draw's values)
    chains = _NO_CHAINS
    if interpretation.changes_variables:
        chains = pushforward_chains(
            jaxpr, tuple((k, site.distribution) for k, site in sorted(noise.items()))
        )
    # a chain's start -> (its draw, the value it starts from, the maps met so far)
    pending: dict = {("in", k): (site, args[k], ()) for k, site in noise.items()}
    for index, (eqn, live) in enumerate(zip(jaxpr.eqns, flags, strict=True)):
        invals = [read(v) for v in eqn.invars]
        if index in chains.starts:
            site = DrawSite(draw_distribution(eqn), invals[0], tuple(invals[1:]), live, eqn)
            x, state = interpretation.draw(site, state)
            outvals, pending[index] = [x], (site, x, ())
        elif index in chains.steps:
            start, position, last = chains.steps[index]
            site, value, steps = pending[start]
            steps = (*steps, (eqn, invals, position))
            if last:
                x, state = interpretation.pushforward(Pushforward(site, value, steps), state)
                outvals = [x]
            else:
                outvals, pending[start] = bind(eqn, invals), (site, value, steps)
        else:
            out_live = [v in live_vars for v in eqn.outvars] if live else None
            sliced = {k: pending[i][0] for k, i in chains.sliced.get(index, {}).items()}
            outvals, state = _eval_eqn(eqn, invals, interpretation, state, live, out_live, sliced)
        for v, x in zip(eqn.outvars, outvals, strict=True):
            env[v] = x
    return [read(v) for v in jaxpr.outvars], state


@dataclasses.dataclass(frozen=True)
class _Chains:
    """The `Pushforward` chains of one jaxpr: ``starts``, the indices of their draws;
    ``steps``, each map's index -> (its chain's start: a draw's index, or ``("in", k)``
    for input ``k``; the position of the chain's value among the map's inputs; last);
    ``sliced``, a scan's index -> {its ``xs`` input: the draw whose values it scans}."""

    starts: frozenset
    steps: dict
    sliced: dict


_NO_CHAINS = _Chains(frozenset(), {}, {})


@functools.lru_cache(maxsize=512)
def pushforward_chains(jaxpr: Jaxpr, noise: tuple = ()) -> _Chains:
    """Follow each continuous draw of ``jaxpr`` (with known support bounds and scalar
    events) through the maps that use its value once and are elementwise and strictly
    monotone in it (`rules.MONOTONE`), up to the first use that is not; a comparison with
    a value that is not a constant ends a chain too (`rules.ends_chain`), when the draw's
    record has a CDF. A map belongs to the first draw that reaches it (``Z1 + Z2``: ``Z2``
    is an operand of ``Z1``'s chain).

    A draw whose one use is the ``xs`` of a `scan` (its parameters scalars) is followed
    inside the loop body, from the body's input for it (``noise``: ``(input index,
    distribution)`` of such inputs): paths drawn up front, then scanned."""
    uses: dict = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for position, v in enumerate(eqn.invars):
            if isinstance(v, Var):
                uses.setdefault(v, []).append((i, position))
    for v in jaxpr.outvars:
        if isinstance(v, Var):
            uses.setdefault(v, []).append((None, None))
    starts, steps, sliced = set(), {}, {}
    origins: list = [(("in", k), jaxpr.invars[k], d) for k, d in noise]
    for i, eqn in enumerate(jaxpr.eqns):
        d = site_distribution(eqn)
        if d is not None and not d.discrete and not d.event_ndim and d.bounds is not None:
            origins.append((i, eqn.outvars[0], d))
    for start, var, distribution in origins:
        chain = _follow(jaxpr.eqns, uses, steps, var, distribution)
        scan = None if chain or isinstance(start, tuple) else _scanned(jaxpr.eqns, uses, var)
        params = jaxpr.eqns[start].invars[1:] if isinstance(start, int) else ()
        if scan is not None and all(getattr(v.aval, "shape", None) == () for v in params):
            sliced.setdefault(scan[0], {})[scan[1]] = start
            starts.add(start)
        if chain:
            if not isinstance(start, tuple):
                starts.add(start)
            for k, (j, position) in enumerate(chain):
                steps[j] = (start, position, k == len(chain) - 1)
    return _Chains(frozenset(starts), steps, sliced)


def changes_of_variables(closed: ClosedJaxpr) -> list[tuple[JaxprEqn, list[JaxprEqn], tuple]]:
    """Every `Pushforward` chain the core follows in ``closed``, at any depth: ``(the draw's
    equation, the maps' equations, the enclosing equations of the maps)`` — what an
    estimate's notes report."""
    found = []

    def walk(jaxpr: Jaxpr, noise: dict, outer: tuple) -> None:
        chains = pushforward_chains(
            jaxpr, tuple((k, site_distribution(eqn)) for k, eqn in sorted(noise.items()))
        )
        maps: dict = {}
        for j, (start, _, _) in sorted(chains.steps.items()):
            maps.setdefault(start, []).append(jaxpr.eqns[j])
        for start, eqns in maps.items():
            draw = noise[start[1]] if isinstance(start, tuple) else jaxpr.eqns[start]
            found.append((draw, eqns, outer))
        for i, eqn in enumerate(jaxpr.eqns):
            if site_distribution(eqn) is not None:
                continue
            inner_noise = {}
            if i in chains.sliced:
                n_consts, n_carry = scan_counts(eqn.params)
                inner_noise = {n_consts + n_carry + k: jaxpr.eqns[d]
                               for k, d in chains.sliced[i].items()}  # fmt: skip
            for sub in _sub_jaxprs(eqn):
                walk(sub.jaxpr, inner_noise, (*outer, eqn))

    walk(closed.jaxpr, {}, ())
    return found


def _follow(eqns, uses, taken, var, distribution) -> list:
    """The chain from ``var``: ``[(equation index, position of the chain's value)]``."""
    chain = []
    while len(uses.get(var, ())) == 1:
        j, position = uses[var][0]
        if j is None or j in taken:
            break
        if monotone_in(eqns[j], position):
            chain.append((j, position))
            var = eqns[j].outvars[0]
            continue
        if distribution.cdf is not None and ends_chain(eqns[j], position):
            if isinstance(eqns[j].invars[1 - position], Var):  # not a constant: else X is scored
                chain.append((j, position))
        break
    return chain


def _scanned(eqns, uses, var) -> tuple[int, int] | None:
    """``(scan index, xs index)`` when ``var``'s one use is as the ``xs`` of a scan."""
    if len(uses.get(var, ())) != 1:
        return None
    j, position = uses[var][0]
    if j is None or eqns[j].primitive.name != "scan":
        return None
    n_consts, n_carry = scan_counts(eqns[j].params)
    return (j, position - n_consts - n_carry) if position >= n_consts + n_carry else None


def _eval_closed(closed, args, interpretation, state, live_out=None):
    return _eval(closed.jaxpr, closed.consts, list(args), interpretation, state, live_out)


def _eval_eqn(eqn, invals, interpretation, state, live, out_live, sliced=None):
    distribution = site_distribution(eqn)
    if distribution is not None:
        site = DrawSite(distribution, invals[0], tuple(invals[1:]), live, eqn)
        x, state = interpretation.draw(site, state)
        return [x], state
    if interpretation.wants(eqn):
        return interpretation.apply(eqn, invals, state)
    return _descend(eqn, invals, interpretation, state, live, out_live, sliced)


def descend(
    eqn: JaxprEqn, invals: list, interpretation: Interpretation, state: State
) -> tuple[list, State]:
    """Evaluate ``eqn`` as the core does for an equation the interpretation did not want.

    Re-bind it, or walk into its sub-programs (calls inlined, loops and branches rebuilt)
    under ``interpretation``. Call it from ``apply`` to adjust an equation's inputs and
    then let the core continue inside it (smoothing hardens a relaxed boolean that enters
    a loop, then still smooths the loop body).
    """
    return _descend(eqn, invals, interpretation, state, True, None)


def _descend(eqn, invals, interpretation, state, live, out_live, sliced=None):
    subs = _sub_jaxprs(eqn)
    visit = (
        bool(sliced)
        or _inlines(eqn, interpretation)
        or any(_needs_visit(s.jaxpr, interpretation) for s in subs)
    )
    if not visit:
        return bind(eqn, invals), state
    name = eqn.primitive.name
    with _within((*_PATH.get(), eqn)):
        if name in CALL_PRIMITIVES:
            # Inlined: the call boundary (and a custom derivative rule, if any) is dropped
            # for this sub-program, because the interpretation must see inside it.
            live_out = out_live if live else [False] * len(eqn.outvars)
            return _eval_closed(subs[0], invals, interpretation, state, live_out)
        if name == "scan":
            return _scan(eqn, invals, interpretation, state, sliced)
        if name == "while":
            return _while(eqn, invals, interpretation, state)
        if name == "cond":
            return _cond(eqn, invals, interpretation, state)
    raise NotImplementedError(f"the program core cannot interpret inside {name!r} yet.")


def _scan(eqn, invals, interpretation, state, sliced=None):
    p = eqn.params
    consts, carry, xs = _split_scan(eqn, invals)
    n_carry, path = len(carry), _PATH.get()
    # xs that are a draw's values: their slices are draws of the same law in the body
    noise = {len(consts) + n_carry + k: site for k, site in (sliced or {}).items()}

    def body(consts, carry, x, s):
        with _within(path):
            closed = p["jaxpr"]
            outs, s = _eval(closed.jaxpr, closed.consts, [*consts, *carry, *x], interpretation,
                            s, None, noise)  # fmt: skip
        return list(outs[:n_carry]), list(outs[n_carry:]), s

    def loop(f, init, xs):
        return lax.scan(f, init, xs, length=p["length"], reverse=p["reverse"], unroll=p["unroll"])

    carry, ys, state = interpretation.scan(body, consts, carry, xs, state, loop)
    return [*carry, *ys], state


def _while(eqn, invals, interpretation, state):
    p = eqn.params
    cond_consts, body_consts, carry = _split_while(eqn, invals)
    cond_closed, path = p["cond_jaxpr"], _PATH.get()
    if _has_draw(cond_closed.jaxpr):
        raise NotImplementedError(
            "a random draw inside the condition of a while_loop is not supported; draw in "
            "the body and carry a flag."
        )
    if _needs_visit(cond_closed.jaxpr, interpretation):
        # Wanted equations in the condition are applied, but the condition cannot return a
        # state: whatever they would add to it is dropped (an interpretation that must
        # record something there should record it in the body too).
        def cond(consts, carry, s) -> jax.Array:
            with _within(path):
                (keep_going,), _ = _eval_closed(cond_closed, [*consts, *carry], interpretation, s)
            return keep_going
    else:
        cond_fun = jaxpr_as_fun(cond_closed)

        def cond(consts, carry, s) -> jax.Array:
            (keep_going,) = cond_fun(*consts, *carry)
            return keep_going

    def body(consts, carry, s):
        with _within(path):
            outs, s = _eval_closed(p["body_jaxpr"], [*consts, *carry], interpretation, s)
        return list(outs), s

    carry, state = interpretation.while_loop(cond, body, cond_consts, body_consts, carry, state)
    return list(carry), state


def _cond(eqn, invals, interpretation, state):
    index, operands, path = invals[0], list(invals[1:]), _PATH.get()

    def branch(closed):
        def run(ops, s):
            with _within(path):
                return _eval_closed(closed, ops, interpretation, s)

        return run

    branches = [branch(b) for b in eqn.params["branches"]]
    return interpretation.cond(index, branches, operands, state)


def _swap(pair):
    outs, state = pair
    return state, outs


class AtSites(Interpretation):
    """An interpretation that acts at chosen places of the program (`Flow`s of `dataflow`).

    One equation can sit at several places (a `jit` helper called twice): ``at`` is called
    with the index of the place in ``flows``; the same equation elsewhere is evaluated as
    usual. Subclass and implement `initial_state` and `at`.
    """

    def __init__(self, flows: Sequence["Flow"]):
        self.flows = list(flows)
        self.index = {flow.site: i for i, flow in enumerate(self.flows)}
        self._eqns = {id(flow.eqn) for flow in self.flows}

    def wants(self, eqn: JaxprEqn) -> bool:
        return id(eqn) in self._eqns

    def apply(self, eqn: JaxprEqn, invals: list, state: State) -> tuple[list, State]:
        i = self.index.get(current_site(eqn))
        if i is None:
            return descend(eqn, invals, self, state)
        return self.at(i, eqn, invals, state)

    @abc.abstractmethod
    def at(self, i: int, eqn: JaxprEqn, invals: list, state: State) -> tuple[list, State]:
        """Evaluate the equation at place ``flows[i]``: ``(outvals, state)``."""


# --- forward dataflow ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flow:
    """One equation seen by `dataflow`: what flows into it and whether it matters.

    Attributes:
        eqn: the equation.
        context: the enclosing control-flow primitive names, outermost first (as `find`).
        inputs: the flags of each input (an int bit set, one per ``eqn.invars``).
        outputs: the flags of each output.
        live: whether the equation can reach the program's outputs other than through
            `stop_gradient` (the core's liveness; inside a live loop or branch every
            equation counts as live).
        decides: the flags of what decides control flow — a ``cond``'s branch index, a
            ``while``'s stopping condition; 0 for other equations.
        outer: the enclosing equations (calls, loops, branches), outermost first — e.g. to
            find a source line in the user's code for an equation inside `jnp.linalg.eigh`.
        differentiated: whether the equation's derivative can reach the derivative of the
            program's outputs: a path of floating-point values to them that no comparison,
            integer conversion or `stop_gradient` cuts (``abs(x) > tol`` is live, but the
            ``abs`` is not differentiated). Conservative like ``live``.
        live_outputs: ``live`` output by output (a `sort` whose permutation is unused).
    """

    eqn: JaxprEqn
    context: tuple
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    live: bool
    decides: int = 0
    outer: tuple = ()
    differentiated: bool = True
    live_outputs: tuple[bool, ...] = ()

    @property
    def site(self) -> tuple:
        """The place of the equation in the program, as `current_site` gives it."""
        return (*(id(e) for e in self.outer), id(self.eqn))


Transfer = Callable[[JaxprEqn, tuple], "tuple | None"]


def dataflow(
    closed: ClosedJaxpr, seeds: Sequence, transfer: Transfer | None = None
) -> tuple[list[Flow], list]:
    """Propagate flags forward through the program: ``(flows, output flags)``.

    Each input of ``closed`` starts with the flags in ``seeds`` (e.g. 1 for "depends on θ",
    2 for "random"); an equation's outputs get the union of its inputs' flags, through
    nested calls, loops (to a fixed point over the carry) and branches (a flagged branch
    index flags every output). ``transfer(eqn, input_flags)`` may return the output flags
    itself — adding a flag (a draw makes its output random) — and the core then does not
    look inside that equation; return None for the default. This is a taint analysis: an
    unflagged value certainly does not depend on the seeded inputs.

    Flags are bit sets (ints); any values with ``|`` as their join and 0 as the least
    (what a literal or an unseeded variable reads) work too, with a ``transfer`` that
    handles every equation without sub-programs (`continuity` runs symbolic values).
    """
    if len(seeds) != len(closed.jaxpr.invars):
        raise ValueError(f"the program takes {len(closed.jaxpr.invars)} inputs, got {len(seeds)}.")
    flows: list[Flow] = []
    outs = _flow(closed.jaxpr, list(seeds), transfer, (), _Live(None, None), flows, ())
    return flows, outs


@dataclasses.dataclass(frozen=True)
class _Live:
    """Which outputs of a (sub-)program matter: ``value`` (reach the program's outputs) and
    ``tangent`` (their derivative does); None for all."""

    value: list | None
    tangent: list | None

    def everything(self, n: int) -> "_Live":
        """A loop body's: any output that matters makes every output matter."""
        return _Live([_any(self.value)] * n, [_any(self.tangent)] * n)


def _any(live: list | None) -> bool:
    """Does any output matter (None: all do)?"""
    return live is None or any(live)


def _is_float_var(v) -> bool:
    dtype = getattr(getattr(v, "aval", None), "dtype", None)
    return dtype is not None and bool(jnp.issubdtype(dtype, jnp.floating))


def _differentiated(jaxpr: Jaxpr, tangent_out: list[bool] | None) -> tuple[list[bool], set]:
    """Backward: which equations' derivatives can reach those of the live outputs, and which
    variables carry them — floating-point values, not through `stop_gradient`."""
    if tangent_out is None:
        tangent_out = [True] * len(jaxpr.outvars)
    pairs = zip(jaxpr.outvars, tangent_out, strict=True)
    live = {v for v, keep in pairs if keep and isinstance(v, Var) and _is_float_var(v)}
    flags = [False] * len(jaxpr.eqns)
    for i in range(len(jaxpr.eqns) - 1, -1, -1):
        eqn = jaxpr.eqns[i]
        if eqn.primitive.name == STOP_GRADIENT or not any(v in live for v in eqn.outvars):
            continue
        flags[i] = True
        live.update(v for v in eqn.invars if isinstance(v, Var) and _is_float_var(v))
    return flags, live


def _flow(jaxpr, seeds, transfer, context, live_out: _Live, flows, outer):
    flags = {v: s for v, s in zip(jaxpr.invars, seeds, strict=True)}

    def read(v):
        return flags.get(v, 0) if isinstance(v, Var) else 0

    live_eqns, live_vars = _liveness(jaxpr, live_out.value, frozenset({STOP_GRADIENT}))
    tangent_eqns, tangent_vars = _differentiated(jaxpr, live_out.tangent)
    for eqn, live, tangent in zip(jaxpr.eqns, live_eqns, tangent_eqns, strict=True):
        ins = tuple(read(v) for v in eqn.invars)
        live_outputs = [live and v in live_vars for v in eqn.outvars]
        out_live = _Live(live_outputs, [tangent and v in tangent_vars for v in eqn.outvars])
        outs = transfer(eqn, ins) if transfer is not None else None
        decides = 0
        if outs is None:
            inner = (*context, eqn.primitive.name)
            outs, decides = _flow_eqn(eqn, ins, transfer, inner, out_live, flows, (*outer, eqn))
        flows.append(Flow(eqn, context, ins, tuple(outs), live, decides, outer, live and tangent,
                          tuple(live_outputs)))  # fmt: skip
        for v, f in zip(eqn.outvars, outs, strict=True):
            flags[v] = f
    return [read(v) for v in jaxpr.outvars]


def _flow_eqn(eqn, ins, transfer, context, out_live: _Live, flows, outer):
    name = eqn.primitive.name
    union = functools.reduce(operator.or_, ins, 0)
    everything = out_live.everything(len(eqn.outvars))
    if name in CALL_PRIMITIVES:
        return _flow(call_jaxpr(eqn).jaxpr, list(ins), transfer, context, out_live, flows, outer), 0
    if name == "scan":
        consts, carry, xs = _split_scan(eqn, ins)
        n_k = len(carry)
        while True:
            trial: list[Flow] = []
            seeds = [*consts, *carry, *xs]
            outs = _flow(eqn.params["jaxpr"].jaxpr, seeds, transfer, context, everything, trial,
                         outer)  # fmt: skip
            new = [a | b for a, b in zip(carry, outs[:n_k], strict=True)]
            if new == carry:
                flows.extend(trial)
                # after at least one step the final carry is the body's output
                final = outs[:n_k] if eqn.params["length"] > 0 else carry
                return [*final, *outs[n_k:]], 0
            carry = new
    if name == "while":
        p = eqn.params
        cond_consts, body_consts, carry = _split_while(eqn, ins)
        while True:
            trial = []
            (stop,) = _flow(p["cond_jaxpr"].jaxpr, [*cond_consts, *carry], transfer, context,
                            _Live([_any(out_live.value)], [False]), trial, outer)  # fmt: skip
            body = _flow(p["body_jaxpr"].jaxpr, [*body_consts, *carry], transfer,
                         context, everything, trial, outer)  # fmt: skip
            # A flagged trip count flags every output: how often the body ran depends on it.
            new = [a | b | stop for a, b in zip(carry, body, strict=True)]
            if new == carry:
                flows.extend(trial)
                return carry, stop
            carry = new
    if name == "cond":
        outs = [ins[0]] * len(eqn.outvars)
        for branch in eqn.params["branches"]:
            got = _flow(branch.jaxpr, list(ins[1:]), transfer, context, out_live, flows, outer)
            outs = [a | b for a, b in zip(outs, got, strict=True)]
        return outs, ins[0]
    if _sub_jaxprs(eqn):
        raise NotImplementedError(f"the program core cannot follow data inside {name!r} yet.")
    return [union] * len(eqn.outvars), 0
