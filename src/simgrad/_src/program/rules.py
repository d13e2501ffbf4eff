r"""The rule table: everything simgrad knows about JAX primitives that are not smooth.

One `Rule` per primitive, as JAX keeps one registration per primitive and transformation
(``ad.primitive_jvps``): its kind (threshold, rounding, kink, discrete choice, eigen, NaN
trap, draw), what AD returns there, the remedy, its one-sided forward rule, its tie test
and its relaxation. The checker (`sg.check`), `sg.one_sided`, automatic smoothing
(`sg.smooth`) and the report look rules up here; no other module names a non-smooth
primitive. A new rule is one entry in `RULES` (and one program in the checker's corpus).

The three functions a rule may carry, each given the jaxpr equation and its input values:

* ``one_sided(eqn, invals) -> outvals``: the equation evaluated so that, under `jax.jvp`
  along $h$, it gives the *right* directional derivative $f'(\theta; h)$ — at a tie the
  tangents decide (``min(a, b)`` at $a = b$ has derivative $\min(a', b')$; ``a > b`` is
  $a' > b'$; ``floor(x)`` at an integer takes the value of the piece that $x + \epsilon x'$
  lands on). Away from ties it equals JAX's own rule.
* ``tie(eqn, invals) -> bool``: the operands sit where the one-sided rule differs from
  JAX's (a tie of ``min``, ``x = 0`` for ``abs``, an integer for ``floor``).
* ``relax(eqn, invals, soft, tau) -> outvals | None``: the relaxation at temperature
  ``tau`` (``soft[i]``: input ``i`` is a relaxed boolean, a probability where the program
  had a bool); None where this equation cannot be relaxed (smoothing then hardens its
  inputs and evaluates it as is).
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..soft import _float, soft_abs, soft_clip, soft_floor, soft_max, soft_min, soft_round, step
from ._jax_compat import Frame, JaxprEqn, bind, frames, jit_name
from .spectral import eig_one_sided, eig_tie, eigh_one_sided, eigh_tie, svd_one_sided, svd_tie

# --- kinds of findings ------------------------------------------------------------------

_SCORE = (
    "score function (sg.ScoreFunction or sg.Hybrid: differentiate the draw's density, "
    "unbiased — put θ in the draw's distribution) or stochastic triples; smoothing is biased"
)
_SMOOTH = (
    "smoothing (replace the step by a sigmoid of width τ: bias O(τ)) or a differentiable "
    "surrogate; sg.one_sided gives the exact slopes on each side"
)
_KINK_REMEDY = (
    "fine away from the kink (and almost surely, after a continuous draw); at the kink use "
    "sg.one_sided, or smooth it (softplus, logsumexp)"
)
_TRAP_REMEDY = (
    "keep the argument away from the singular point (e.g. add a small ε), or use the "
    "double-where trick: jnp.where(ok, f(jnp.where(ok, x, safe)), fallback)"
)
_JUMP_HAZARD = (
    "a jump in θ itself, with no random draw upstream to smooth it: where θ ± 2h straddles "
    "it, the difference quotient is the jump divided by the step (for a kink written as a "
    "comparison, an average of both slopes), not a derivative; away from it finite "
    "differences are fine. sg.check(sim, theta) locates it, sg.one_sided gives the slope "
    "on each side"
)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of finding: what it is, what AD returns there, and the remedy.

    ``remedy_random`` replaces ``remedy`` where the value is downstream of a random draw
    (a threshold on a draw has an unbiased remedy: the score function).
    ``through_derivative``: the defect is in the derivative (a kink's slope), not in the
    value (a threshold's jump): it matters only where the derivative reaches the output
    (`Flow.differentiated`), not where only the value does (``abs(x) > tol``).
    ``fd_hazard``: why finite differences cannot be trusted across it where no random draw
    is upstream (a jump of the expectation itself), or "".
    """

    name: str
    description: str
    ad_returns: str
    remedy: str
    remedy_random: str = ""
    through_derivative: bool = False
    fd_hazard: str = ""


_KINDS = (
    Kind("threshold", "θ-dependent comparison (threshold, accept–reject) feeding a select, "
         "branch or integer cast",
         "the derivative of the branch taken; the jump itself contributes 0", _SMOOTH, _SCORE,
         fd_hazard=_JUMP_HAZARD),
    Kind("rounding", "rounding or integer cast (floor, ceil, round, sign, remainder, "
         "float → int)", "0 almost everywhere; the jumps are missed", _SMOOTH, _SCORE,
         fd_hazard=_JUMP_HAZARD),
    Kind("kink", "kink (min, max, abs, relu, clip, a running maximum)",
         "the slope of one side (an average of both at an exact tie)", _KINK_REMEDY,
         through_derivative=True),
    Kind("discrete_choice", "discrete choice (argmax, argsort, sort, top_k)",
         "the derivative with the choice held fixed; changes of the choice are missed",
         "a relaxation (softmax, soft sort) or smoothing", _SCORE),
    Kind("while_loop", "while_loop whose trip count depends on θ",
         "the derivative of the iterations that ran; the trip count's change is missed (and "
         "reverse mode refuses while_loop)",
         "a fixed trip count with masking (lax.scan), implicit differentiation of the "
         "stopping condition, or smoothing"),
    Kind("discrete_draw", "discrete random draw whose distribution depends on θ",
         "0: a discrete draw is piecewise constant in its parameters",
         "score function (sg.ScoreFunction, sg.Hybrid) or stochastic triples"),
    Kind("eigen", "eigen- or singular-value decomposition (degeneracy risk)",
         "eigenvector derivatives divide by eigenvalue gaps: inf or NaN when two eigenvalues "
         "meet",
         "differentiate symmetric functions of a degenerate cluster (the sum or mean of its "
         "eigenvalues), which are well defined", through_derivative=True),
    Kind("nan_where", "NaN through where: a singular function in a branch that where discards",
         "NaN where the discarded branch's derivative is infinite (0 · inf)",
         "the double-where trick: make the input safe first, "
         "jnp.where(mask, jnp.log(jnp.where(mask, x, 1.0)), 0.0)", through_derivative=True),
    Kind("nan_at_theta", "AD returns NaN or inf at θ: a function at its singular point",
         "NaN or inf", _TRAP_REMEDY),
    Kind("kink_at_theta", "kink at θ: the one-sided derivatives differ",
         "one number, though no derivative exists here",
         "report both one-sided slopes (sg.one_sided), use a subgradient, or move θ"),
    Kind("degenerate_eigenvalues", "degenerate eigenvalues at θ",
         "eigenvectors of the cluster (and anything built on them) have no derivative; AD "
         "returns inf, NaN or an arbitrary number",
         "differentiate a symmetric function of the cluster"),
    Kind("opaque", "code the scan cannot see into (jax.pure_callback, io_callback, an "
         "sg.BlackBox, a foreign call): whether θ reaches a jump, kink or NaN inside is "
         "unknown, so the program is unverified, not clean",
         "an error (JAX cannot differentiate a callback), or what a jax.custom_jvp around "
         "it says — nothing checks that rule against the function",
         "write the computation in JAX, so that the scan sees inside it; or test it from "
         "evaluations, as a black box: finite differences with common random numbers "
         "(sg.FiniteDifference) at two steps, h and h/4, agree within their error bars "
         "where no jump lies within the step, and report.to_html's plot of the derivative "
         "of the mean along a line shows jumps"),
)  # fmt: skip
FINDING_KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}
KINDS: dict[str, str] = {k.name: k.description for k in _KINDS}
"""The kinds of `sg.check`'s findings (``Finding.kind``, `Report.of_kind`): name -> description."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """What simgrad knows about one JAX primitive; see the module docstring.

    Attributes:
        primitive: the primitive's name (``"gt"``, ``"floor"``, ``"eigh"``, …).
        kind: a finding kind (a key of `KINDS`: the checker reports the equation), or one
            of ``"nan_trap"`` (a function with an infinite derivative somewhere: reported
            only when AD meets it, see ``singular``), ``"draw"`` (a sampler) or
            ``"logic"`` (smooth, relaxed only to carry relaxed booleans).
        ad_returns, remedy: the texts of a finding here (default: the kind's).
        one_sided, tie, relax: see the module docstring; None where JAX's own rule is
            exact, where there is nothing to tie, or where nothing is relaxed.
        singular: the operands at which the derivative can be infinite (``div``: the
            denominator).
        applies: the equations the rule is for (default: a floating-point first operand).
        fd_hazard: why finite differences cannot be trusted through it (a draw that is not
            smooth in its parameters).
        discards: the output is one of the operands, chosen by the first (``select_n``,
            i.e. ``jnp.where``): a discarded operand's infinite derivative still comes back
            as NaN (0 · inf) in reverse mode.
        spectrum: for a symmetric eigendecomposition of its first operand, the indices of
            the outputs holding the eigenvalues (ascending) and the eigenvectors (columns):
            where the checker measures eigenvalue gaps.
        continuous_outputs: the outputs that are continuous in the inputs (a sort's sorted
            values): where no other output is live, the equation is a kink, not ``kind``.
    """

    primitive: str
    kind: str
    ad_returns: str = ""
    remedy: str = ""
    one_sided: Callable | None = None
    tie: Callable | None = None
    relax: Callable | None = None
    singular: tuple[int, ...] = ()
    applies: Callable[[JaxprEqn], bool] | None = None
    fd_hazard: str = ""
    discards: bool = False
    spectrum: tuple[int, int] | None = None
    continuous_outputs: tuple[int, ...] | None = None

    def texts(self, random: bool) -> tuple[str, str]:
        """``(what AD returns, remedy)`` of a finding at this primitive."""
        kind = FINDING_KINDS.get(self.kind) or FINDING_KINDS["nan_at_theta"]
        remedy = self.remedy or (kind.remedy_random if random else "") or kind.remedy
        return self.ad_returns or kind.ad_returns, remedy


def _float_operand(eqn: JaxprEqn) -> bool:
    dtype = getattr(getattr(eqn.invars[0], "aval", None), "dtype", None) if eqn.invars else None
    return dtype is not None and bool(jnp.issubdtype(dtype, np.floating))


def _comparison(eqn: JaxprEqn) -> bool:
    """A comparison that can flip as θ moves: floating-point operands, not a NaN test
    (``x != x``) nor a comparison with an infinity (``abs(x) == inf``)."""
    a, b = eqn.invars[0], eqn.invars[1]
    if a is b:
        return False
    for v in (a, b):
        value = getattr(v, "val", None)
        if value is not None and not bool(np.all(np.isfinite(np.asarray(value)))):
            return False
    return _float_operand(eqn)


def _float_to_int(eqn: JaxprEqn) -> bool:
    new = eqn.params.get("new_dtype")
    return _float_operand(eqn) and new is not None and bool(jnp.issubdtype(new, np.integer))


def _negative_power(eqn: JaxprEqn) -> bool:
    return _float_operand(eqn) and eqn.params.get("y", 1) < 0


# --- one-sided forward rules ------------------------------------------------------------


def _tangent_decides(primal: Callable, at_tie: Callable) -> Callable:
    """A function whose value under `jax.jvp` is ``at_tie(x, dx)`` (the value on the side
    ``x + ε dx`` lands on, as a float) and whose own tangent is zero: the one-sided rule of
    a piecewise-constant primitive."""

    @jax.custom_jvp
    def f(*xs):
        return primal(*xs)

    @f.defjvp
    def f_jvp(primals, tangents):
        out = at_tie(primals, tangents)
        return out, jnp.zeros_like(out)

    return f


def _compare_one_sided(eqn, invals):
    def op(a, b):
        return bind(eqn, [a, b])[0]

    a, b = (jnp.asarray(x) for x in invals)
    dtype = jnp.result_type(a, b)

    def at_tie(primals, tangents):
        (a, b), (da, db) = primals, tangents
        return jnp.where(a == b, op(da, db), op(a, b)).astype(dtype)

    f = _tangent_decides(lambda a, b: op(a, b).astype(dtype), at_tie)
    return [f(a, b) > 0.5]


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


def _min_one_sided(eqn, invals):
    return [_min(*invals)]


def _max_one_sided(eqn, invals):
    return [_max(*invals)]


def _abs_one_sided(eqn, invals):
    return [_abs(*invals)]


def _clamp_one_sided(eqn, invals):
    lo, x, hi = invals
    lo, hi = jnp.broadcast_to(lo, jnp.shape(x)), jnp.broadcast_to(hi, jnp.shape(x))
    return [_min(_max(x, lo), hi)]


def _reduce_one_sided(largest: bool):
    fill = -jnp.inf if largest else jnp.inf

    def rule(eqn, invals):
        axes = tuple(eqn.params["axes"])

        @jax.custom_jvp
        def reduce(x):
            return bind(eqn, [x])[0]

        @reduce.defjvp
        def reduce_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            m = bind(eqn, [x])[0]
            at = x == jnp.expand_dims(m, axes)
            return m, bind(eqn, [jnp.where(at, dx, jnp.asarray(fill, dx.dtype))])[0]

        return [reduce(invals[0])]

    return rule


def _cumulative_one_sided(largest: bool):
    pick = jnp.maximum if largest else jnp.minimum

    def combine(p, q):
        (a, da), (b, db) = p, q
        wins, loses = (a > b, b > a) if largest else (a < b, b < a)
        return pick(a, b), jnp.where(wins, da, jnp.where(loses, db, pick(da, db)))

    def rule(eqn, invals):
        axis, reverse = eqn.params["axis"], eqn.params["reverse"]

        @jax.custom_jvp
        def cumulative(x):
            return bind(eqn, [x])[0]

        @cumulative.defjvp
        def cumulative_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return lax.associative_scan(combine, (x, dx), reverse=reverse, axis=axis)

        return [cumulative(invals[0])]

    return rule


def _index_one_sided(largest: bool):
    """argmax/argmin: at a tie of the extremum, the element whose tangent wins."""
    fill = -jnp.inf if largest else jnp.inf

    def rule(eqn, invals):
        (axis,) = eqn.params["axes"]
        x = invals[0]

        def primal(x):
            return bind(eqn, [x])[0].astype(x.dtype)

        def at_tie(primals, tangents):
            (x,), (dx,) = primals, tangents
            extreme = (
                jnp.max(x, axis, keepdims=True) if largest else jnp.min(x, axis, keepdims=True)
            )
            score = jnp.where(x == extreme, dx, jnp.asarray(fill, dx.dtype))
            return bind(eqn, [score])[0].astype(x.dtype)

        index = _tangent_decides(primal, at_tie)(x)
        return [index.astype(eqn.params["index_dtype"])]

    return rule


def _order(x, dimension: int, descending: bool):
    """The permutation sorting ``x`` along ``dimension``; under `jax.jvp`, ties in ``x`` are
    ordered by the tangent (the order just to the side ``x + ε dx``)."""
    sign = -1 if descending else 1
    iota = lax.broadcasted_iota(x.dtype, x.shape, dimension)

    def primal(x):
        return lax.sort((sign * x, iota), dimension=dimension, num_keys=1, is_stable=True)[1]

    def at_tie(primals, tangents):
        (x,), (dx,) = primals, tangents
        return lax.sort((sign * x, sign * dx, iota), dimension=dimension, num_keys=3)[2]

    return _tangent_decides(primal, at_tie)(x).astype(jnp.int32)


def _sort_one_sided(eqn, invals):
    if eqn.params["num_keys"] != 1:
        return bind(eqn, invals)  # a lexicographic sort: ties left to JAX's rule
    dimension = eqn.params["dimension"]
    perm = _order(invals[0], dimension, descending=False)
    return [jnp.take_along_axis(jnp.asarray(x), perm, axis=dimension) for x in invals]


def _top_k_one_sided(eqn, invals):
    x = invals[0]
    axis = eqn.params.get("axis", -1) % x.ndim
    k = eqn.params["k"]
    perm = lax.slice_in_dim(_order(x, axis, descending=True), 0, k, axis=axis)
    values = jnp.take_along_axis(x, perm, axis=axis)
    return [values, perm.astype(eqn.outvars[1].aval.dtype)]


def _piece_one_sided(jump: Callable, right: Callable):
    """A rounding primitive: the value of the piece that ``x + ε dx`` lands on.

    ``jump(x)``: x sits on a jump; ``right(x, dx)``: the value just beside it there.
    """

    def rule(eqn, invals):
        x = jnp.asarray(invals[0])

        def primal(x):
            return bind(eqn, [x])[0].astype(x.dtype)

        def at_tie(primals, tangents):
            (x,), (dx,) = primals, tangents
            here = primal(x)
            return jnp.where(jump(x) & (dx != 0), right(x, dx, here), here).astype(x.dtype)

        out = _tangent_decides(primal, at_tie)(x)
        return [out.astype(eqn.outvars[0].aval.dtype)]

    return rule


def _half(x):
    return x - jnp.floor(x) == 0.5


def _integer(x):
    return x == jnp.floor(x)


def _nonzero_integer(x):
    return _integer(x) & (x != 0)


def _zero(x):
    return x == 0


def _round_right(x, dx, y):
    return jnp.floor(x) + (dx > 0).astype(x.dtype)


# --- tie tests ----------------------------------------------------------------------------


def _tie_equal(eqn, invals):
    a, b = invals[0], invals[1]
    return jnp.any(jnp.asarray(a) == jnp.asarray(b))


def _tie_on(jump: Callable) -> Callable:
    return lambda eqn, invals: jnp.any(jump(jnp.asarray(invals[0])))


def _tie_clamp(eqn, invals):
    lo, x, hi = invals
    return jnp.any((x == lo) | (x == hi))


def _tie_reduce(largest: bool):
    def tie(eqn, invals):
        axes = tuple(eqn.params["axes"])
        x = invals[0]
        m = jnp.max(x, axes, keepdims=True) if largest else jnp.min(x, axes, keepdims=True)
        return jnp.any(jnp.sum(x == m, axes) > 1)

    return tie


def _tie_cumulative(largest: bool):
    def tie(eqn, invals):
        x = jnp.moveaxis(invals[0], eqn.params["axis"], -1)
        if eqn.params["reverse"]:
            x = x[..., ::-1]
        running = lax.cummax(x, axis=x.ndim - 1) if largest else lax.cummin(x, axis=x.ndim - 1)
        return jnp.any(x[..., 1:] == running[..., :-1])

    return tie


def _tie_index(largest: bool):
    def tie(eqn, invals):
        (axis,) = eqn.params["axes"]
        x = invals[0]
        m = jnp.max(x, axis, keepdims=True) if largest else jnp.min(x, axis, keepdims=True)
        return jnp.any(jnp.sum(x == m, axis) > 1)

    return tie


def _tie_sorted(eqn, invals):
    dimension = eqn.params.get("dimension", eqn.params.get("axis", -1))
    x = jnp.sort(invals[0], axis=dimension)
    n = x.shape[dimension]
    return jnp.any(
        lax.slice_in_dim(x, 1, n, axis=dimension) == lax.slice_in_dim(x, 0, n - 1, axis=dimension)
    )


# --- relaxations --------------------------------------------------------------------------


def _compare_relax(sign: int):
    def relax(eqn, invals, soft, tau):
        if any(soft):
            return None
        a, b = (_float(x) for x in invals)
        margin = (a - b).astype(jnp.result_type(a, b)) * sign
        return [jnp.broadcast_to(step(margin, tau), eqn.outvars[0].aval.shape)]

    return relax


def _float_of(values):
    floats = [
        jnp.result_type(v) for v in values if jnp.issubdtype(jnp.result_type(v), jnp.floating)
    ]
    return floats[0] if floats else jnp.result_type(float)


_LOGIC = {
    "not": lambda x: 1 - x[0],
    "and": lambda x: x[0] * x[1],
    "or": lambda x: x[0] + x[1] - x[0] * x[1],
    "xor": lambda x: x[0] + x[1] - 2 * x[0] * x[1],
}


def _logic_relax(eqn, invals, soft, tau):
    if eqn.outvars[0].aval.dtype != jnp.bool_ or not any(soft):
        return None
    x = [jnp.asarray(v, _float_of(invals)) for v in invals]
    return [_LOGIC[eqn.primitive.name](x)]


def _select_relax(eqn, invals, soft, tau):
    if not soft[0] or len(invals) != 3:
        return None
    p, case0, case1 = invals
    if not jnp.issubdtype(jnp.result_type(case0), jnp.floating):
        return None
    return [(case1 * p + case0 * (1 - p)).astype(jnp.result_type(case0))]


def _convert_relax(eqn, invals, soft, tau):
    new = eqn.params["new_dtype"]
    if soft[0] and jnp.issubdtype(new, jnp.floating):
        return [invals[0].astype(new)]
    return None


def _real_relax(fn: Callable):
    """A relaxation of a real-valued primitive: ``fn(eqn, invals, tau)``; only for hard
    float inputs."""

    def relax(eqn, invals, soft, tau):
        if any(soft) or not all(jnp.issubdtype(jnp.result_type(v), jnp.floating) for v in invals):
            return None
        return [fn(eqn, invals, tau).astype(eqn.outvars[0].aval.dtype)]

    return relax


_RELAX_FLOOR = _real_relax(lambda e, x, tau: soft_floor(x[0], tau))
_RELAX_CEIL = _real_relax(lambda e, x, tau: -soft_floor(-x[0], tau))
_RELAX_ROUND = _real_relax(lambda e, x, tau: soft_round(x[0], tau))
_RELAX_SIGN = _real_relax(lambda e, x, tau: jnp.tanh(x[0] / tau))
_RELAX_MAX = _real_relax(lambda e, x, tau: soft_max(x[0], x[1], tau=tau))
_RELAX_MIN = _real_relax(lambda e, x, tau: soft_min(x[0], x[1], tau=tau))
_RELAX_ABS = _real_relax(lambda e, x, tau: soft_abs(x[0], tau))
_RELAX_CLAMP = _real_relax(lambda e, x, tau: soft_clip(x[1], x[0], x[2], tau))
_RELAX_REDUCE_MAX = _real_relax(
    lambda e, x, tau: soft_max(x[0], tau=tau, axis=tuple(e.params["axes"]))
)
_RELAX_REDUCE_MIN = _real_relax(
    lambda e, x, tau: soft_min(x[0], tau=tau, axis=tuple(e.params["axes"]))
)

# --- the table ----------------------------------------------------------------------------

_SORT_RETURNS = (
    "the derivative with the order held fixed: right between ties (sorted values are "
    "continuous, with kinks where two elements cross); the order itself jumps"
)
# What AD returns at a threshold or discrete choice that is continuous after all (a kink).
CONTINUOUS_RETURNS = {
    "threshold": "the slope of the branch taken: the branches meet where the comparison "
    "flips (jnp.where(S > K, S - K, 0)), so the output is continuous, a kink and not a jump",
    "discrete_choice": "the derivative with the order held fixed: sorted values are "
    "continuous, with kinks where two elements cross (only the order, unused here, jumps)",
}
_SINGULAR = {
    "sqrt": ("inf at 0 (d√x = dx / 2√x), NaN once multiplied by a zero tangent",
             "keep the argument away from 0 (jnp.sqrt(x + ε)); for a norm use "
             "optax.safe_norm or jnp.sqrt(jnp.sum(x**2) + ε); where 0 is legitimate, "
             "sg.one_sided gives both slopes"),
    "rsqrt": ("inf at 0", "keep the argument away from 0 (jax.lax.rsqrt(x + ε))"),
    "cbrt": ("inf at 0", "keep the argument away from 0, or use a smooth surrogate"),
    "log": ("inf at 0 (d log x = dx / x)",
            "keep the argument positive (jnp.log(x + ε), a clipped probability), or use "
            "jax.scipy.special.xlogy for x·log x"),
    "log1p": ("inf at -1", "keep the argument above -1"),
    "div": ("inf where the denominator is 0",
            "guard the denominator (jnp.where(d != 0, d, 1)) and the result (double where)"),
    "rem": ("inf where the divisor is 0", "guard the divisor"),
    "pow": ("inf at base 0 for exponents below 1; NaN from log(base) in the exponent's "
            "derivative", "keep the base positive, or write x**2 as x * x"),
    "integer_pow": ("inf at 0 for a negative power", "keep the argument away from 0"),
    "acos": ("inf at ±1", "clip the argument strictly inside (-1, 1)"),
    "asin": ("inf at ±1", "clip the argument strictly inside (-1, 1)"),
    "atanh": ("inf at ±1", "clip the argument strictly inside (-1, 1)"),
    "acosh": ("inf at 1", "keep the argument above 1"),
    "tan": ("inf at π/2 + kπ", "keep the argument away from the poles"),
    "lgamma": ("inf at 0, -1, -2, …", "keep the argument positive"),
    "digamma": ("inf at 0, -1, -2, …", "keep the argument positive"),
    "erf_inv": ("inf at ±1", "clip the argument strictly inside (-1, 1)"),
    "atan2": ("NaN at the origin (0, 0)", "keep the point away from the origin"),
}  # fmt: skip
_SINGULAR_OPERANDS = {"div": (1,), "rem": (1,), "atan2": (0, 1)}

_RULES = [
    # Thresholds: a comparison decided by the tangents at a tie; relaxed to a sigmoid.
    *[Rule(p, "threshold", one_sided=_compare_one_sided, tie=_tie_equal, applies=_comparison,
           relax=_compare_relax(sign))
      for p, sign in (("gt", 1), ("ge", 1), ("lt", -1), ("le", -1), ("lt_to", -1),
                      ("le_to", -1))],
    # Equality has no relaxation (a soft "x == y" is a bump, not a step).
    *[Rule(p, "threshold", one_sided=_compare_one_sided, tie=_tie_equal, applies=_comparison)
      for p in ("eq", "ne", "eq_to")],
    # Rounding: each piece's value decided by the tangent at a jump.
    Rule("floor", "rounding", tie=_tie_on(_integer), relax=_RELAX_FLOOR,
         one_sided=_piece_one_sided(_integer, lambda x, dx, y: jnp.where(dx < 0, y - 1, y))),
    Rule("ceil", "rounding", tie=_tie_on(_integer), relax=_RELAX_CEIL,
         one_sided=_piece_one_sided(_integer, lambda x, dx, y: jnp.where(dx > 0, y + 1, y))),
    Rule("round", "rounding", relax=_RELAX_ROUND, tie=_tie_on(_half),
         one_sided=_piece_one_sided(_half, _round_right)),
    Rule("sign", "rounding", tie=_tie_on(_zero), relax=_RELAX_SIGN,
         one_sided=_piece_one_sided(_zero, lambda x, dx, y: jnp.sign(dx))),
    Rule("convert_element_type", "rounding", applies=_float_to_int, relax=_convert_relax,
         tie=_tie_on(_nonzero_integer),
         one_sided=_piece_one_sided(
             _nonzero_integer,
             lambda x, dx, y: jnp.where((x > 0) & (dx < 0), y - 1,
                                        jnp.where((x < 0) & (dx > 0), y + 1, y)))),
    Rule("rem", "rounding", singular=(1,), ad_returns="1 in the dividend almost everywhere; "
         "the jumps where the quotient crosses an integer are missed"),
    # Kinks: nonsmooth forward rules at ties.
    Rule("min", "kink", one_sided=_min_one_sided, tie=_tie_equal, relax=_RELAX_MIN),
    Rule("max", "kink", one_sided=_max_one_sided, tie=_tie_equal, relax=_RELAX_MAX),
    Rule("abs", "kink", one_sided=_abs_one_sided, tie=_tie_on(_zero), relax=_RELAX_ABS),
    Rule("clamp", "kink", one_sided=_clamp_one_sided, tie=_tie_clamp, relax=_RELAX_CLAMP,
         applies=lambda e: bool(jnp.issubdtype(e.invars[1].aval.dtype, np.floating))),  # pyright: ignore[reportAttributeAccessIssue]  (a jaxpr variable's aval is shaped)
    Rule("reduce_max", "kink", one_sided=_reduce_one_sided(True), tie=_tie_reduce(True),
         relax=_RELAX_REDUCE_MAX),
    Rule("reduce_min", "kink", one_sided=_reduce_one_sided(False), tie=_tie_reduce(False),
         relax=_RELAX_REDUCE_MIN),
    Rule("cummax", "kink", one_sided=_cumulative_one_sided(True), tie=_tie_cumulative(True)),
    Rule("cummin", "kink", one_sided=_cumulative_one_sided(False),
         tie=_tie_cumulative(False)),
    # Discrete choices: ties ordered by the tangents.
    Rule("argmax", "discrete_choice", one_sided=_index_one_sided(True), tie=_tie_index(True)),
    Rule("argmin", "discrete_choice", one_sided=_index_one_sided(False),
         tie=_tie_index(False)),
    Rule("sort", "discrete_choice", ad_returns=_SORT_RETURNS, tie=_tie_sorted,
         one_sided=_sort_one_sided, continuous_outputs=(0,)),
    Rule("top_k", "discrete_choice", ad_returns=_SORT_RETURNS, tie=_tie_sorted,
         one_sided=_top_k_one_sided, continuous_outputs=(0,)),
    # Eigen- and singular-value decompositions.
    Rule("eigh", "eigen", spectrum=(1, 0), one_sided=eigh_one_sided, tie=eigh_tie),
    Rule("svd", "eigen", one_sided=svd_one_sided, tie=svd_tie),
    Rule("eig", "eigen", one_sided=eig_one_sided, tie=eig_tie),
    # NaN traps: infinite derivatives at a point.
    *[Rule(p, "nan_trap", ad_returns=text, remedy=remedy,
           singular=_SINGULAR_OPERANDS.get(p, (0,)),
           applies=_negative_power if p == "integer_pow" else None)
      for p, (text, remedy) in _SINGULAR.items() if p != "rem"],
    # Samplers that are not smooth in their parameters under finite differences.
    Rule("random_gamma", "draw", applies=lambda e: True, fd_hazard=(
        "a gamma draw (jax.random.gamma, beta, dirichlet, or sg.random's) whose shape depends "
        "on θ: its rejection sampler makes the draw jump as θ moves, so finite differences "
        "with common random numbers are biased (often by many standard errors) and their "
        "error bar looks normal; use sg.Pathwise (JAX differentiates gamma draws "
        "implicitly) or the score function")),
    # Smooth, but relaxed so that relaxed booleans flow on softly.
    *[Rule(p, "logic", relax=_logic_relax, applies=lambda e: True) for p in _LOGIC],
    Rule("select_n", "logic", relax=_select_relax, applies=lambda e: True, discards=True),
    # A loop whose trip count depends on θ (reported when its condition does).
    Rule("while", "while_loop", applies=lambda e: True),
    # Host callbacks and foreign calls: nothing inside them can be seen.
    *[Rule(p, "opaque", applies=lambda e: True)
      for p in ("pure_callback", "io_callback", "ffi_call")],
]  # fmt: skip
RULES: dict[str, Rule] = {rule.primitive: rule for rule in _RULES}


def rule_for(eqn: JaxprEqn) -> Rule | None:
    """The rule of ``eqn``'s primitive, if it has one and it applies to this equation."""
    rule = RULES.get(eqn.primitive.name)
    if rule is None:
        return None
    if (rule.applies or _float_operand)(eqn):
        return rule
    return None


# --- library code ------------------------------------------------------------------------

# Smooth library functions that branch or take a maximum inside (a range reduction, a
# ``max`` subtracted and added back, a step-size controller): their comparisons and kinks
# are not the user's. Matched on the frames that emitted an equation, innermost first,
# up to the user's own frame: (a fragment of the file's path, the function or "*").
SMOOTH_LIBRARY = frozenset(
    {("special.py", "ndtr"),
     ("special.py", "_ndtr"), ("special.py", "log_ndtr"), ("special.py", "ndtri"),
     ("special.py", "_ndtri"), ("special.py", "logsumexp"), ("special.py", "xlogy"),
     ("special.py", "xlog1py"), ("special.py", "entr"), ("special.py", "logit"),
     ("special.py", "betainc"), ("special.py", "gammainc"), ("special.py", "gammaincc"),
     ("other.py", "logaddexp"), ("ufuncs.py", "logaddexp"), ("ufuncs.py", "logaddexp2"),
     ("ufuncs.py", "sinc"), ("ufuncs.py", "hypot"), ("functions.py", "softplus"),
     ("functions.py", "sigmoid"), ("functions.py", "log_sigmoid"),
     ("functions.py", "softmax"), ("functions.py", "log_softmax"), ("functions.py", "silu"),
     ("functions.py", "gelu"), ("linalg.py", "expm"), ("linalg.py", "slogdet"),
     ("linalg.py", "cholesky"), ("linalg.py", "sqrtm"), ("linalg.py", "det"),
     ("linalg.py", "pinv"), ("linalg.py", "lstsq"), ("jax/_src/scipy/stats/", "*"),
     ("jax/experimental/ode.py", "*"), ("jax/_src/scipy/optimize/", "*"),
     ("/diffrax/", "*"), ("/equinox/internal/", "*"), ("/lineax/", "*"),
     ("/optimistix/", "*"), ("equinox/nn/_normalisation.py", "*"),
     ("optax/losses/_regression.py", "huber_loss"),
     ("optax/losses/_regression.py", "cosine_similarity"),
     ("optax/_src/numerics.py", "safe_norm"),
     # a monotone rational-quadratic spline is C¹ across its knots and joins its linear
     # tails with matching value and slope (Durkan et al. 2019): the bin search is not a jump
     ("flowjax/bijections/rational_quadratic_spline.py", "*"),
     ("simgrad/random/", "*"), ("simgrad/_src/soft.py", "*")}
)  # fmt: skip
SMOOTH_JITS = frozenset(
    {"softplus", "logsumexp", "logaddexp", "logaddexp2", "sigmoid", "log_sigmoid", "softmax",
     "log_softmax", "silu", "gelu", "xlogy", "xlog1py", "sinc", "hypot", "expm", "slogdet"}
)  # fmt: skip
# Of those, the ones with no singular point: a singular function inside them (expm's log2 of
# its norm, a division it guards) never gives AD an infinite derivative, so their outputs do
# not carry one to a `where` downstream (xlogy, hypot, slogdet have singular points).
FINITE_DERIVATIVE_JITS = frozenset(
    {"softplus", "logsumexp", "logaddexp", "logaddexp2", "sigmoid", "log_sigmoid", "softmax",
     "log_softmax", "silu", "gelu", "sinc", "expm"}
)  # fmt: skip
# Files whose frames are never the user's line (libraries installed next to simgrad, and
# simgrad's own samplers): a finding is located at the user's call into them.
_LIBRARY_PATHS = (
    "site-packages", "dist-packages", "simgrad/random/", "simgrad/_check/", "simgrad/_src/"
)  # fmt: skip


def _is_library(frame: Frame) -> bool:
    return frame.jax or any(part in frame.file for part in _LIBRARY_PATHS)


def _matches(frame: Frame) -> bool:
    file = frame.file.replace("\\", "/")
    for fragment, function in SMOOTH_LIBRARY:
        in_file = fragment in file if "/" in fragment else file.endswith("/" + fragment)
        if in_file and function in ("*", frame.function):
            return True
    return False


def emitted_by(eqn: JaxprEqn, outer: tuple = ()) -> tuple[list[Frame], Frame | None]:
    """``(library frames, user frame)``: the frames that emitted ``eqn`` inside library code,
    innermost first, and the innermost frame of the user's own code (None if unknown).

    An equation inside a library `jit` keeps only JAX's frames; the enclosing equations
    ``outer`` (outermost first, as `Flow.outer`) supply the rest.
    """
    library = []
    for e in (eqn, *reversed(outer)):
        for frame in frames(e):
            if not _is_library(frame):
                return library, frame
            library.append(frame)
    fallback = next((f for f in library if not f.jax), None)
    return library, fallback


def in_smooth_library(eqn: JaxprEqn, outer: tuple = ()) -> bool:
    """Was ``eqn`` emitted inside a smooth library function (its branches not the user's)?"""
    if any(jit_name(e) in SMOOTH_JITS for e in (*outer, eqn)):
        return True
    library, _ = emitted_by(eqn, outer)
    return any(_matches(frame) for frame in library)


def jax_random_function(eqn: JaxprEqn, outer: tuple = ()) -> str | None:
    """The `jax.random` function whose sampling code emitted ``eqn`` (e.g. ``categorical``,
    ``binomial``), or None."""
    library, _ = emitted_by(eqn, outer)
    for frame in library:
        if frame.jax and "jax/_src/random" in frame.file.replace("\\", "/"):
            name = frame.function.lstrip("_")
            if name in JAX_DISCRETE_SAMPLERS:
                return name
    return None


# `jax.random` functions that draw integers by a comparison, argmax or loop inside the
# user's program (not as one opaque `jit`): what the checker reports as discrete draws.
JAX_DISCRETE_SAMPLERS = frozenset(
    {"categorical", "binomial", "multinomial", "choice", "bernoulli", "poisson", "geometric",
     "randint"}
)  # fmt: skip
DRAW_HAZARD = (
    "a discrete draw whose distribution depends on θ: its value is piecewise constant in θ, "
    "so with common random numbers and a small step no draw changes and finite differences "
    "return exactly 0 ± 0 (or a rare jump with a huge variance); use sg.ScoreFunction, "
    "sg.Hybrid or sg.StochasticTriples (draw it with simgrad.random)"
)


# Elementwise functions with f(0) = 0: f(x) vanishes wherever x does (`continuity`).
ZERO_AT_ZERO = frozenset(
    {"sin", "tan", "tanh", "sinh", "asin", "atan", "asinh", "atanh", "expm1", "log1p", "abs",
     "sign", "sqrt", "cbrt", "erf", "integer_pow"}
)  # fmt: skip


# --- strictly monotone elementwise maps ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Monotone:
    """An elementwise primitive that is strictly monotone in some of its inputs (the others
    held fixed): what the change of variables (`core.pushforward_chains`) may follow from a
    draw ``Z`` to a value ``X = g(θ, Z)`` whose density it then knows.

    Attributes:
        primitive: the JAX primitive's name.
        positions: the inputs in which it is strictly monotone wherever it is finite (``div``
            in its numerator only: ``a / z`` has a pole where ``z`` crosses 0).
        inverse: ``inverse(y, invals, position) -> x``: the input at ``position`` that gives
            the output ``y``, the other inputs as in ``invals``.
        applies: for primitives monotone only for some parameters (``integer_pow``: the
            cube; a conversion between floating types).
    """

    primitive: str
    inverse: Callable
    positions: tuple[int, ...] = (0,)
    applies: Callable[[JaxprEqn], bool] | None = None


def _aval(v) -> jax.core.ShapedArray:
    """A jaxpr variable's shape and dtype."""
    return v.aval  # pyright: ignore[reportReturnType]  (a jaxpr variable's aval is shaped)


def _float_to_float(eqn: JaxprEqn) -> bool:
    return all(jnp.issubdtype(_aval(v).dtype, jnp.floating) for v in (*eqn.invars, *eqn.outvars))


def _unary(inverse: Callable) -> Callable:
    return lambda y, invals, position: inverse(y)


def _other(invals, position):
    return invals[1 - position]


MONOTONE: dict[str, Monotone] = {
    m.primitive: m
    for m in (
        Monotone("neg", _unary(jnp.negative)),
        Monotone("exp", _unary(jnp.log)),
        Monotone("exp2", _unary(jnp.log2)),
        Monotone("log", _unary(jnp.exp)),
        Monotone("log1p", _unary(jnp.expm1)),
        Monotone("expm1", _unary(jnp.log1p)),
        Monotone("sqrt", _unary(jnp.square)),
        Monotone("rsqrt", _unary(lambda y: 1 / jnp.square(y))),
        Monotone("cbrt", _unary(lambda y: y**3)),
        Monotone("tanh", _unary(jnp.arctanh)),
        Monotone("logistic", _unary(jax.scipy.special.logit)),
        Monotone("sinh", _unary(jnp.arcsinh)),
        Monotone("asinh", _unary(jnp.sinh)),
        Monotone("atan", _unary(jnp.tan)),
        Monotone("erf", _unary(jax.scipy.special.erfinv)),
        Monotone("erf_inv", _unary(jax.scipy.special.erf)),
        Monotone("copy", _unary(lambda y: y)),
        Monotone("add", lambda y, v, i: y - _other(v, i), (0, 1)),
        Monotone("sub", lambda y, v, i: y + v[1] if i == 0 else v[0] - y, (0, 1)),
        # strictly monotone where the other factor is not 0
        Monotone("mul", lambda y, v, i: y / _other(v, i), (0, 1)),
        Monotone("div", lambda y, v, i: y * v[1]),
        Monotone("integer_pow", _unary(jnp.cbrt), applies=lambda eqn: eqn.params["y"] == 3),
        Monotone("convert_element_type", lambda y, v, i: y.astype(v[0].dtype),
                 applies=_float_to_float),
    )
}  # fmt: skip
"""The elementwise maps a change of variables can follow, by primitive name."""

# Comparisons that can end a chain: ``X < c`` is a Bernoulli draw of probability
# ``P(X < c)`` (``below``: True when the chain's value on the left means "below").
COMPARISONS = {"lt": True, "le": True, "gt": False, "ge": False}


def monotone_in(eqn: JaxprEqn, position: int) -> bool:
    """Is ``eqn`` elementwise and strictly monotone in its input ``position`` (the others
    fixed), with an output of that input's shape (one value in, one value out)?"""
    rule = MONOTONE.get(eqn.primitive.name)
    if rule is None or position not in rule.positions:
        return False
    if rule.applies is not None and not rule.applies(eqn):
        return False
    return _aval(eqn.outvars[0]).shape == _aval(eqn.invars[position]).shape


def ends_chain(eqn: JaxprEqn, position: int) -> bool:
    """Is ``eqn`` a comparison of its input ``position`` (a chain's value) with another
    value of that shape or a scalar (`COMPARISONS`)?"""
    if eqn.primitive.name not in COMPARISONS or len(eqn.invars) != 2:
        return False
    shape = _aval(eqn.invars[position]).shape
    return _aval(eqn.outvars[0]).shape == shape and _aval(eqn.invars[1 - position]).shape in (
        (),
        shape,
    )


# --- what the scan cannot see into ------------------------------------------------------

HOST_CALLBACKS = frozenset(rule.primitive for rule in _RULES if rule.kind == "opaque")
"""Primitives the scan cannot see into (`jax.pure_callback`, `sg.BlackBox`, foreign calls)."""


# Callbacks that only check values at run time and pass them through (`eqx.error_if`, which
# simgrad's draws use for traced parameters): not opaque.
_RUN_TIME_CHECKS = ("equinox/_errors.py",)


def calls_back(eqn: JaxprEqn) -> bool:
    """Does ``eqn`` hand values to Python on the host to compute with (a program the scan
    cannot read)? A run-time check (`eqx.error_if`) does not count."""
    if eqn.primitive.name not in HOST_CALLBACKS:
        return False
    library, _ = emitted_by(eqn)
    return not any(f.file.replace("\\", "/").endswith(_RUN_TIME_CHECKS) for f in library)
