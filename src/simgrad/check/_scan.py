"""The static scan: where in a simulator does θ reach the output through something AD
cannot differentiate?

A forward taint analysis (`simgrad._src.program.dataflow`) flags every value that depends
on θ, every value downstream of a random draw, and every value that went through a
singular function (``log``, ``sqrt``, division); the core's liveness says which equations
reach the output. Each flagged, live equation of a non-differentiable kind becomes a
`Finding` with its source line, what AD returns there, and the remedy.
"""

import dataclasses
import os

import numpy as np

from .. import random as _random
from .._src.program import dataflow, site_distribution, source_line
from .._src.program._jax_compat import (
    JAX_RANDOM_DISCRETE,
    JAX_RANDOM_JITS,
    JaxprEqn,
    jit_name,
    library_frames,
)

THETA, RANDOM, SINGULAR, GUARDED = 1, 2, 4, 8
# simgrad.random checks its parameters (``scale > 0``) with eqx.error_if next to each draw:
# part of the draw, not of the user's program. Its files, as source_line's suffixes:
_DRAW_VALIDATION = tuple(
    os.path.join("simgrad", "random", name)
    for name in os.listdir(os.path.dirname(_random.__file__))
    if name.endswith(".py")
)

COMPARISONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})
ROUNDING = frozenset({"floor", "ceil", "round", "sign"})
KINKS = frozenset({"min", "max", "abs", "clamp", "reduce_min", "reduce_max"})
CHOICES = frozenset({"argmax", "argmin", "sort", "top_k"})
EIGEN = frozenset({"eigh", "eig", "svd"})
# Functions whose derivative is infinite or NaN somewhere (for ``div`` and ``pow``: in the
# denominator / base only, see `_singular`).
SINGULAR_FUNCTIONS = frozenset(
    {"log", "sqrt", "rsqrt", "cbrt", "div", "pow", "log1p", "acos", "asin", "atanh", "acosh",
     "tan", "lgamma", "digamma", "rem"}
)  # fmt: skip

# Smooth library functions that branch internally for accuracy or overflow (a ``where`` in
# a range reduction, a ``max`` that is subtracted and added back): their comparisons and
# kinks are not the user's. Matched on JAX's own frames: (file, function); "*" = any.
SMOOTH_LIBRARY = frozenset(
    {("norm.py", "*"), ("logistic.py", "*"), ("special.py", "ndtr"), ("special.py", "_ndtr"),
     ("special.py", "log_ndtr"), ("special.py", "ndtri"), ("special.py", "logsumexp"),
     ("special.py", "xlogy"), ("special.py", "xlog1py"), ("special.py", "entr"),
     ("other.py", "logaddexp"), ("ufuncs.py", "logaddexp"), ("ufuncs.py", "logaddexp2"),
     ("ufuncs.py", "sinc"), ("ufuncs.py", "hypot"), ("functions.py", "softplus"),
     ("functions.py", "sigmoid"), ("functions.py", "log_sigmoid"), ("functions.py", "softmax"),
     ("functions.py", "log_softmax"), ("functions.py", "silu"), ("functions.py", "gelu")}
)  # fmt: skip
SMOOTH_JITS = frozenset(
    {"softplus", "logsumexp", "logaddexp", "logaddexp2", "sigmoid", "log_sigmoid", "softmax",
     "log_softmax", "silu", "gelu", "xlogy", "xlog1py", "sinc", "hypot"}
)  # fmt: skip

KINDS = {
    "threshold": "θ-dependent comparison (threshold, accept–reject) feeding a select, branch "
    "or integer cast",
    "rounding": "rounding or integer cast (floor, ceil, round, sign, float → int)",
    "kink": "kink (min, max, abs, relu, clip)",
    "discrete_choice": "discrete choice (argmax, argsort, sort, top_k)",
    "while_loop": "while_loop whose trip count depends on θ",
    "discrete_draw": "discrete random draw whose distribution depends on θ",
    "eigen": "eigen- or singular-value decomposition (degeneracy risk)",
    "nan_where": "NaN through where: a singular function in a branch that where discards",
    "kink_at_theta": "kink at θ: the one-sided derivatives differ",
    "degenerate_eigenvalues": "degenerate eigenvalues at θ",
}

_SCORE = (
    "score function (sg.ScoreFunction or sg.Hybrid: differentiate the draw's density, "
    "unbiased — put θ in the draw's distribution) or stochastic triples; smoothing is biased"
)
_SMOOTH = (
    "smoothing (replace the step by a sigmoid of width τ: bias O(τ)) or a differentiable "
    "surrogate; sg.one_sided gives the exact slopes on each side"
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One place where the output's dependence on θ is not differentiable.

    Attributes:
        kind: a key of ``simgrad.check.KINDS``, e.g. ``"threshold"``.
        primitive: the JAX primitive (``"gt"``, ``"floor"``, ``"max"``, …).
        file: the source file of the user code that made it (None if unknown).
        line: its line number.
        function: the enclosing Python function.
        context: enclosing control flow, outermost first, e.g. ``("scan", "cond")``.
        random: the value is downstream of a random draw.
        ad_returns: what AD returns there.
        remedy: what to use instead.
        detail: anything measured at θ (slopes, eigenvalue gaps).
    """

    kind: str
    primitive: str
    file: str | None
    line: int | None
    function: str | None
    context: tuple
    random: bool
    ad_returns: str
    remedy: str
    detail: str = ""

    @property
    def where(self) -> str:
        """``file:line (function)``; ``"θ"`` for what was measured at θ (a kink at θ), ``"?"``
        when JAX kept no source information."""
        if self.file is None:
            return "θ" if self.kind == "kink_at_theta" else "?"
        return f"{self.file}:{self.line} ({self.function})"


def _transfer(eqn: JaxprEqn, ins: tuple[int, ...]) -> tuple[int, ...] | None:
    union = 0
    for f in ins:
        union |= f
    n_out = len(eqn.outvars)
    name = eqn.primitive.name
    if site_distribution(eqn) is not None or jit_name(eqn) in JAX_RANDOM_JITS:
        return ((union | RANDOM) & ~SINGULAR,) * n_out  # a draw: opaque, random
    if name == "select_n":
        out = union & ~SINGULAR
        if ins[0] & THETA and any(not f & THETA for f in ins[1:]):
            out |= GUARDED  # where(x > 0, x, 1.0): the safe half of the double-where trick
        return (out,) * n_out
    if name in SINGULAR_FUNCTIONS and _singular(name, ins):
        return (union | SINGULAR,) * n_out
    return None


def _singular(name: str, ins: tuple[int, ...]) -> bool:
    watched = ins[1:2] if name in ("div", "rem") else ins[:1]
    return any(f & THETA and not f & GUARDED for f in watched)


def scan(closed, n_theta: int) -> tuple[list[Finding], list[int], list]:
    """The findings of a traced simulator whose first ``n_theta`` inputs are θ's leaves and
    whose remaining inputs are random (the key), the flags of its outputs, and the flows of
    the kinks and thresholds found (where a tie at θ makes a kink at θ)."""
    seeds = [THETA] * n_theta + [RANDOM] * (len(closed.jaxpr.invars) - n_theta)
    flows, out_flags = dataflow(closed, seeds, _transfer)
    found: dict[tuple, Finding] = {}
    kinks = []
    for flow in flows:
        if not flow.live:
            continue
        finding = _classify(flow)
        if finding is None or (finding.kind != "discrete_draw" and _not_users(flow)):
            continue
        found.setdefault((finding.kind, finding.file, finding.line, finding.primitive), finding)
        if finding.kind in ("kink", "threshold"):
            kinks.append(flow)
    return list(found.values()), out_flags, kinks


def _classify(flow) -> Finding | None:  # noqa: PLR0911
    eqn, ins = flow.eqn, flow.inputs
    name = eqn.primitive.name
    union = 0
    for f in ins:
        union |= f
    random = bool(union & RANDOM)

    def make(kind, ad_returns, remedy, primitive=name):
        file, line, function = location(flow)
        return Finding(kind, primitive, file, line, function, flow.context, random, ad_returns,
                       remedy)  # fmt: skip

    distribution = site_distribution(eqn)
    if distribution is not None or jit_name(eqn) in JAX_RANDOM_JITS:
        discrete = distribution.discrete if distribution else jit_name(eqn) in JAX_RANDOM_DISCRETE
        if discrete and any(f & THETA for f in ins[1:]):
            label = distribution.name if distribution else jit_name(eqn).lstrip("_")
            return make(
                "discrete_draw",
                "0: a discrete draw is piecewise constant in its parameters",
                "score function (sg.ScoreFunction, sg.Hybrid) or stochastic triples",
                primitive=label,
            )
        return None
    if not union & THETA:
        return None
    if name in COMPARISONS and _is_float(eqn.invars[0]):
        return make(
            "threshold",
            "the derivative of the branch taken; the jump itself contributes 0",
            _SCORE if random else _SMOOTH,
        )
    if name in ROUNDING or (name == "convert_element_type" and _float_to_int(eqn)):
        return make(
            "rounding", "0 almost everywhere; the jumps are missed", _SCORE if random else _SMOOTH
        )
    if name in KINKS:
        return make(
            "kink",
            "the slope of one side (an average of both at an exact tie)",
            "fine away from the kink (and almost surely, after a continuous draw); at the kink "
            "use sg.one_sided, or smooth it (softplus, logsumexp)",
        )
    if name in CHOICES and any(fn == "categorical" for _, fn in library_frames(eqn)):
        return make(  # jax.random.categorical: the Gumbel-max trick, an argmax of logits + noise
            "discrete_draw",
            "0: a discrete draw is piecewise constant in its parameters",
            "score function (sg.ScoreFunction, sg.Hybrid; draw with sg.random.categorical) or "
            "stochastic triples",
            primitive="categorical",
        )
    if name in CHOICES:
        return make(
            "discrete_choice",
            "the derivative with the choice held fixed; changes of the choice are missed",
            _SCORE if random else "a relaxation (softmax, soft sort) or smoothing",
        )
    if name == "while" and flow.decides & THETA:
        return make(
            "while_loop",
            "the derivative of the iterations that ran; the trip count's change is missed "
            "(and reverse mode refuses while_loop)",
            "a fixed trip count with masking (lax.scan), implicit differentiation of the "
            "stopping condition, or smoothing",
        )
    if name in EIGEN:
        return make(
            "eigen",
            "eigenvector derivatives divide by eigenvalue gaps: inf or NaN when two "
            "eigenvalues meet",
            "differentiate symmetric functions of a degenerate cluster (the sum or mean of its "
            "eigenvalues), which are well defined",
        )
    if name == "select_n" and any(f & SINGULAR for f in ins[1:]):
        return make(
            "nan_where",
            "NaN where the discarded branch's derivative is infinite (0 · inf)",
            "the double-where trick: make the input safe first, "
            "jnp.where(mask, jnp.log(jnp.where(mask, x, 1.0)), 0.0)",
        )
    return None


def _not_users(flow) -> bool:
    """Inside a smooth library function, or simgrad.random's parameter checks."""
    where = source_line(flow.eqn)
    if where is not None and where[0].endswith(_DRAW_VALIDATION):
        return True
    if any(e.params.get("name") in SMOOTH_JITS for e in flow.outer):
        return True
    frames = library_frames(flow.eqn)
    return any((file, fn) in SMOOTH_LIBRARY or (file, "*") in SMOOTH_LIBRARY for file, fn in frames)


def location(flow) -> tuple:
    """The innermost source line in user code: the equation's own, else its callers' (an
    equation inside a library `jit` such as `jnp.linalg.eigh` keeps only JAX's frames)."""
    for eqn in (flow.eqn, *reversed(flow.outer)):
        where = source_line(eqn, skip=_DRAW_VALIDATION)
        if where is not None:
            return where
    return None, None, None


def _is_float(v) -> bool:
    dtype = getattr(getattr(v, "aval", None), "dtype", None)
    return dtype is not None and np.issubdtype(dtype, np.floating)


def _float_to_int(eqn) -> bool:
    new = eqn.params.get("new_dtype")
    return _is_float(eqn.invars[0]) and new is not None and np.issubdtype(new, np.integer)
