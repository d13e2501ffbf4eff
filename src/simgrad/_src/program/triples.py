r"""`Triples`: the interpretation that runs a program on stochastic triples.

Every value of the program becomes a `Triple` ``(primal, tangent, alt, tag)``:

* ``primal``: the value on the main path, exactly as the program computes it;
* ``tangent``: its forward-mode derivative along one parameter direction (``None`` for
  integer and key values) — the continuous part of the derivative;
* ``alt``: its value on the one *alternative path* the sample carries — the main path with
  one discrete draw moved to a neighbouring value, the rest of the randomness shared;
  ``None`` when the value is the same on both paths by construction (it does not depend on
  any draw: parameters, keys and their splits), so that nothing is computed twice there;
* ``tag``: which alternative ``alt`` belongs to. The interpretation's state holds the tag
  of the current alternative and its weight; a value whose tag is older belongs to an
  alternative that pruning discarded, and its alternative value is its primal value.

First-order equations run twice (``primal`` by `jax.jvp`, which gives the tangent, and
``alt``); a sub-program with no draw is one such equation, so a `cond`, `while` or
`scan` without draws runs its own branch or trip count on each path. A draw site samples
the main and alternative values with the same key (coupling), and where the draw is
discrete proposes the neighbouring values with weights (the derivative of their
probability, Arya et al. 2022); stochastic pruning keeps one alternative per sample,
unbiasedly, with one uniform per proposal: block ``counter`` of a Threefry-2x32 stream
(counter mode, one hash; the draw's own random bits are shared by both paths), so the
pruning costs about as much as the draw it prunes. Loops and branches that contain draws
are walked by the core, which hands their bodies to this interpretation's `scan`,
`while_loop` and `cond` as functions: a `cond` runs every branch and selects the main
path's and the alternative's; a `while` iterates until both paths stop, each path frozen
when its own condition fails.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.random import threefry_2x32

from ._jax_compat import bind
from .core import Interpretation, contains_draw
from .sites import DrawSite


class Triple(NamedTuple):
    """One value of the program under `Triples`; see the module docstring."""

    primal: Any
    tangent: Any
    alt: Any
    tag: Any


class TripleState(NamedTuple):
    """The alternative's weight and tag, a counter of proposals, a seed, and a gate."""

    weight: Any  # the alternative path's weight (≥ 0)
    tag: Any  # int32: tag of the current alternative (0: none yet)
    counter: Any  # int32: proposals made so far (new tags)
    seed: Any  # uint32[2]: Threefry key of the pruning uniforms (block `counter` each)
    enabled: Any  # bool: may draws here propose alternatives (False off the main path)


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _select(pred, a, b):
    """``a`` where the scalar ``pred`` holds, else ``b``; any dtype, keys included."""
    a = a if _is_key(a) else jnp.asarray(a)
    b = b if _is_key(b) else jnp.asarray(b)
    return lax.select(jnp.broadcast_to(pred, a.shape), a, b)


def _is_key(x) -> bool:
    return jnp.issubdtype(getattr(x, "dtype", jnp.float32), jax.dtypes.prng_key)


def lift(x, state: TripleState) -> Triple:
    """A plain value (a literal, a constant) as a triple: no tangent, no alternative."""
    if isinstance(x, Triple):
        return x
    if not _is_key(x):
        x = jnp.asarray(x)
    tangent = jnp.zeros_like(x) if not _is_key(x) and _is_float(x) else None
    return Triple(x, tangent, None, state.tag)


def resolve(t: Triple, state: TripleState):
    """The value on the current alternative path (the primal if ``t``'s is discarded)."""
    if t.alt is None:
        return t.primal
    return _select(t.tag == state.tag, t.alt, t.primal)


def materialise(t: Triple, state: TripleState) -> Triple:
    """``t`` with an explicit alternative value (a loop carry or branch output needs one)."""
    return t._replace(alt=resolve(t, state), tag=state.tag)


def _zero_tangent(x):
    return None if _is_key(x) or not _is_float(x) else jnp.zeros_like(x)


class Triples(Interpretation):
    """Run a program on stochastic triples along one direction; see the module docstring.

    Arguments:
        key: the key of the pruning coin flips.
        weight_dtype: the dtype of the weight.
        propose: perturb discrete draws by their family's ``proposal`` (the `Distribution`
            record: ``C`` candidate neighbouring values per draw and their weights ≥ 0,
            such that ``E[Σ weights · (f(alt) − f(x))] = d/dθ E[f(x)]`` for any ``f``).
            False: no alternative is ever created (forward mode on each path).
        lane: measure-valued derivatives (`sg.MeasureValued`) instead of proposals: a
            scalar, > 0 for the positive side, otherwise the negative one. Every draw with a
            weak derivative (`Distribution.weak`) proposes its ``plus`` (or ``minus``)
            values, with weights that do not depend on the lane, and has no pathwise tangent
            in the parameters it covers. Two runs that differ only in the lane prune alike,
            so their difference is ``Σ w (f(plus) − f(minus))`` at the site kept.
    """

    def __init__(self, key, weight_dtype, propose: bool = True, lane=None):
        self.key = key
        self.weight_dtype = weight_dtype
        self.propose = propose
        self.lane = lane

    def initial_state(self) -> TripleState:
        zero = jnp.zeros((), jnp.int32)
        seed = jax.random.bits(self.key, (2,), jnp.uint32)
        return TripleState(jnp.zeros((), self.weight_dtype), zero, zero, seed, jnp.ones((), bool))

    # Every equation without a draw inside is applied as a whole (jvp + a second run);
    # calls, loops and branches with draws inside are walked by the core, which calls
    # `scan`, `while_loop` and `cond` below.
    def wants(self, eqn) -> bool:
        return not contains_draw(eqn)

    def apply(self, eqn, invals, state):
        return _plain(eqn, [lift(x, state) for x in invals], state), state

    def draw(self, site: DrawSite, state: TripleState):
        key = lift(site.key, state)
        params = [lift(p, state) for p in site.params]
        primals = [p.primal for p in params]
        tangents = [p.tangent if p.tangent is not None else _zero_tangent(p.primal) for p in params]

        def sample(*ps):
            return bind(site.eqn, [key.primal, *ps])[0]

        weak = None if self.lane is None else site.distribution.weak()
        if weak is not None:  # the covered parameters move the draw through its weak derivative
            covered = [p.name in weak[1] for p in site.distribution.params]
            zero = [None if t is None else jnp.zeros_like(t) for t in tangents]
            pathwise = [z if c else t for c, t, z in zip(covered, tangents, zero, strict=True)]
            x, dx = jax.jvp(sample, primals, pathwise)
            tangents = [t if c else z for c, t, z in zip(covered, tangents, zero, strict=True)]
        else:
            x, dx = jax.jvp(sample, primals, tangents)
        if key.alt is None and all(p.alt is None for p in params):
            x_alt = x  # same key, same parameters: the same draw on both paths
        else:
            x_alt = bind(site.eqn, [resolve(key, state), *[resolve(p, state) for p in params]])[0]
        if weak is not None:
            sides = jax.random.fold_in(key.primal, 0x3EA4)  # the sides' own randomness
            plus, minus, weights = weak[0](sides, x, primals, tangents)
            alts = jnp.where(jnp.asarray(self.lane) > 0, plus, minus)
            return self._propose(x, dx, x_alt, alts, weights, state)
        rule = site.distribution.proposal if self.propose and self.lane is None else None
        if rule is None:
            return Triple(x, dx, None if x_alt is x else x_alt, state.tag), state
        alts, weights = rule(x, primals, tangents)
        return self._propose(x, dx, x_alt, alts, weights, state)

    def _propose(self, x, dx, x_alt, alts, weights, state):
        """Merge this site's candidates with the current alternative (stochastic pruning).

        ``weights`` has shape ``batch + (C,)``, ``alts`` ``batch + (C,) + event`` (the event
        axes of one multivariate draw, none for a scalar one); ``x`` is ``batch + event``.
        """
        n_cand = weights.shape[-1]
        event = alts.shape[weights.ndim :]
        alts = alts.reshape((-1, *event)).astype(x.dtype)
        weights = jnp.where(state.enabled, weights.reshape(-1), 0).astype(self.weight_dtype)
        counter = state.counter + 1
        win, pick, merged = _prune(_uniform(state.seed, counter), state.weight, weights)
        x_new = x.reshape((-1, *event)).at[pick // n_cand].set(alts[pick]).reshape(x.shape)
        tag = jnp.where(win, counter, state.tag)
        alt = jnp.where(win, x_new, x_alt)
        state = TripleState(merged, tag, counter, state.seed, state.enabled)
        return Triple(x, dx, alt, tag), state

    def cond(self, index, branches, operands, state):
        index = lift(index, state)
        ops = [lift(x, state) for x in operands]
        i_main, i_alt = index.primal, resolve(index, state)
        results = []
        for k, branch in enumerate(branches):
            gated = state._replace(enabled=state.enabled & (i_main == k))
            outs, s = branch(ops, gated)
            outs = [materialise(lift(o, s), s) for o in outs]
            results.append((outs, s._replace(enabled=state.enabled)))
        pick = lambda i, tree: jax.tree.map(  # noqa: E731
            lambda *xs: xs[0] if len(xs) == 1 else lax.select_n(i, *xs), *tree
        )
        new_state = pick(i_main, [s for _, s in results])
        changed = new_state.tag != state.tag
        alts_by_branch = [[resolve(o, s) for o in outs] for outs, s in results]
        alt_main = pick(i_main, alts_by_branch)
        alt_alt = pick(i_alt, alts_by_branch)
        main = pick(i_main, [outs for outs, _ in results])
        out = [
            Triple(m.primal, m.tangent, _select(changed, am, aa), new_state.tag)
            for m, am, aa in zip(main, alt_main, alt_alt, strict=True)
        ]
        return out, new_state

    def scan(self, body, consts, carry, xs, state, loop):
        # Tags are scalars, so the scanned-over inputs travel as (primal, tangent, alt)
        # slices with their tag alongside, and the stacked outputs get one tag per
        # iteration, resolved against the final state.
        consts = [lift(c, state) for c in consts]
        carry_in = [_with_tangent(lift(c, state)) for c in carry]
        xs = [lift(x, state) for x in xs]
        n_carry = len(carry_in)
        xs_tags = [x.tag for x in xs]
        xs_slices = [(x.primal, x.tangent, x.alt) for x in xs]

        born = state.counter  # alternatives with a larger tag are born inside this loop
        # Which carries need an explicit alternative: a fixpoint, as JAX finds which
        # carries need a tangent. Start from the inputs' own; widen where the body makes one.
        explicit = [c.alt is not None for c in carry_in]
        grown = []

        def step(c, x):
            s_in, escaped, carry = c
            x = [Triple(p, t, a, tag) for (p, t, a), tag in zip(x, xs_tags, strict=True)]
            carry_out, ys, s = body(consts, carry, x, s_in)
            outs = [lift(o, s) for o in [*carry_out, *ys]]
            if not grown:
                pairs = zip(outs[:n_carry], explicit, strict=True)
                grown.extend(o.alt is not None and not e for o, e in pairs)
            carry = [
                materialise(o, s) if e else o._replace(alt=None, tag=s.tag)
                for o, e in zip(outs[:n_carry], explicit, strict=True)
            ]
            ys = outs[n_carry:]
            # An alternative born inside the loop that has merged back into the main path
            # (every carry equal on both paths, nothing different emitted since it was
            # born) contributes exactly zero from now on: drop it, so that the next
            # candidate is not pruned against a dead one. Unbiased; less variance.
            escaped = (escaped & (s.tag == s_in.tag)) | _differs(ys, s)
            dead = (s.tag > born) & ~escaped & ~_differs(carry, s)
            s = s._replace(weight=jnp.where(dead, 0, s.weight).astype(s.weight.dtype))
            return (s, escaped, carry), [(o.primal, o.tangent, o.alt, o.tag) for o in ys]

        while True:
            carry = [
                materialise(c, state) if e else c for c, e in zip(carry_in, explicit, strict=True)
            ]
            grown.clear()
            result = loop(step, (state, jnp.zeros((), bool), carry), xs_slices)
            if not any(grown[:n_carry]):
                break
            explicit = [e or g for e, g in zip(explicit, grown, strict=False)]
        (state, _, carry), ys = result
        outs = []
        for primal, tangent, alt, tags in ys:
            if alt is None:
                outs.append(Triple(primal, tangent, None, state.tag))
                continue
            keep = jnp.reshape(tags == state.tag, tags.shape + (1,) * (primal.ndim - 1))
            alt = lax.select(jnp.broadcast_to(keep, primal.shape), alt, primal)
            outs.append(Triple(primal, tangent, alt, state.tag))
        return list(carry), outs, state

    def while_loop(self, cond, body, cond_consts, body_consts, carry, state):
        cond_consts = [lift(c, state) for c in cond_consts]
        body_consts = [lift(c, state) for c in body_consts]

        def goes_on(carry, s):
            keep_going = lift(cond(cond_consts, carry, s), s)
            return keep_going.primal, resolve(keep_going, s)

        def keep_going(c):
            s, carry = c
            main, alt = goes_on(carry, s)
            return main | alt

        def step(c):
            s, carry = c
            main, alt_on = goes_on(carry, s)
            outs, s_new = body(body_consts, carry, s._replace(enabled=s.enabled & main))
            s_new = s_new._replace(enabled=s.enabled)
            changed = s_new.tag != s.tag
            s_out = jax.tree.map(lambda a, b: _select(main, a, b), s_new, s)
            new_carry = []
            for old, new in zip(carry, outs, strict=True):
                new = lift(new, s_new)
                tangent = None if new.tangent is None else _select(main, new.tangent, old.tangent)
                alt = _select(alt_on | changed, resolve(new, s_new), resolve(old, s))
                new_carry.append(
                    Triple(_select(main, new.primal, old.primal), tangent, alt, s_out.tag)
                )
            return s_out, new_carry

        carry = [materialise(_with_tangent(lift(c, state)), state) for c in carry]
        state, carry = lax.while_loop(keep_going, step, (state, carry))
        return list(carry), state


def _prune(u, weight, weights):
    """``(win, pick, merged)``: does a candidate replace the alternative of weight ``weight``,
    which of ``weights`` (flat, ≥ 0), and the merged weight — from one uniform ``u``.

    Candidate ``k`` wins when ``u·(W + Σw)`` falls in ``[w_1 + … + w_{k-1}, w_1 + … +
    w_k)``: probability ``w_k / (W + Σw)``, the law of a keep coin with probability
    ``Σw / (W + Σw)`` followed by an independent pick ``∝ w_k`` (Arya et al.'s pruning).
    """
    cumulative = jnp.cumsum(weights.astype(u.dtype))
    total = cumulative[-1]
    point = u * (weight.astype(u.dtype) + total)  # float32 weights with x64 on
    pick = 0  # the one candidate, or the first whose cumulative weight passes `point`
    if weights.size > 1:
        pick = jnp.minimum(jnp.sum(cumulative <= point), weights.size - 1)
    return point < total, pick, (weight.astype(u.dtype) + total).astype(weight.dtype)


def _uniform(seed, counter):
    """A uniform in [0, 1): block ``counter`` of the Threefry-2x32 stream keyed by ``seed``.

    Counter mode (Salmon et al. 2011): distinct counters give independent blocks, one hash
    each. float64 when enabled (53 bits of the block), else float32 (24 bits).
    """
    hi, lo = threefry_2x32(seed, jnp.stack([counter.astype(jnp.uint32), jnp.uint32(0)]))
    if jax.config.jax_enable_x64:  # pyright: ignore[reportAttributeAccessIssue]  # set at run time
        return (hi.astype(jnp.float64) * 2.0**21 + (lo >> 11).astype(jnp.float64)) * 2.0**-53
    return (hi >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def _differs(values, state):
    """Does any of ``values`` differ between the main and the current alternative path?"""
    flags = [jnp.zeros((), bool)]
    for t in values:
        if t.alt is None:
            continue
        a, b = resolve(t, state), t.primal
        if _is_key(a):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        flags.append(jnp.any(a != b))
    return jnp.any(jnp.stack(flags))


def _with_tangent(t: Triple) -> Triple:
    """A loop carry must have the same structure in and out: give floats a tangent."""
    if t.tangent is None:
        return t._replace(tangent=_zero_tangent(t.primal))
    return t


def _plain(eqn, ins, state) -> list:
    """An equation without draws: the main path by `jax.jvp`, the alternative re-run."""
    primals = [t.primal for t in ins]
    floats = [i for i, t in enumerate(ins) if t.tangent is not None]

    def fn(*xs):
        args = list(primals)
        for i, x in zip(floats, xs, strict=True):
            args[i] = x
        return bind(eqn, args)

    if floats:
        outs, touts = jax.jvp(fn, [primals[i] for i in floats], [ins[i].tangent for i in floats])
    else:
        outs = bind(eqn, primals)
        touts = [None] * len(outs)
    if all(t.alt is None for t in ins):
        alts = [None] * len(outs)
    else:
        alts = bind(eqn, [resolve(t, state) for t in ins])
    result = []
    for x, dx, a in zip(outs, touts, alts, strict=True):
        if _is_key(x) or not _is_float(x):
            dx = None
        elif dx is None or dx.dtype == jax.dtypes.float0:
            dx = jnp.zeros_like(x)
        result.append(Triple(x, dx, a, state.tag))
    return result
