"""The static scan: where in a simulator does θ reach the output through something AD
cannot differentiate?

A forward taint analysis (`simgrad._src.program.dataflow`) flags every value that depends
on θ, every value downstream of a random draw, and every value that went through a
singular function (``log``, ``sqrt``, division); the core's liveness says which equations
reach the output. Each flagged, live equation whose primitive the rule table
(`simgrad._src.program.rules`) lists as non-smooth becomes a `Finding` with its source
line, what AD returns there, and the remedy.
"""

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx

from . import random as _random  # noqa: F401  (registers jax.random samplers as sites)
from ._result import AbstractResult
from ._src.program import dataflow, site_distribution
from ._src.program._jax_compat import (
    CUSTOM_VJP_PRIMITIVES,
    JAX_RANDOM_DISCRETE,
    JAX_RANDOM_JITS,
    STOP_GRADIENT,
    JaxprEqn,
    call_jaxpr,
    jit_name,
)
from ._src.program.continuity import meeting_comparisons
from ._src.program.core import Flow
from ._src.program.rules import (
    CONTINUOUS_RETURNS,
    DRAW_HAZARD,
    FINDING_KINDS,
    FINITE_DERIVATIVE_JITS,
    KINDS,
    emitted_by,
    in_smooth_library,
    jax_random_function,
    rule_for,
)

THETA, RANDOM, SINGULAR, GUARDED = 1, 2, 4, 8
# Downstream of randomness other than the value of a discrete `simgrad.random` draw: a value
# that can move continuously with the randomness (a jump there is one the score function,
# not a discrete-draw estimator, must account for).
CONTINUOUS = 16


class Finding(AbstractResult):
    """One place where the output's dependence on θ is not differentiable.

    Attributes:
        kind: a key of ``sg.KINDS``, e.g. ``"threshold"``.
        primitive: the JAX primitive (``"gt"``, ``"floor"``, ``"max"``, …).
        file: the source file of the user code that made it (None if unknown).
        line: its line number.
        function: the enclosing Python function.
        context: enclosing control flow, outermost first, e.g. ``("scan", "cond")``.
        random: the value is downstream of a random draw.
        continuous: the value is downstream of continuous randomness (anything random but
            the value of a discrete `simgrad.random` draw): a jump there is averaged over by
            the randomness, and only the score function accounts for it.
        ad_returns: what AD returns there.
        remedy: what to use instead.
        detail: anything measured at θ (slopes, eigenvalue gaps).
    """

    kind: str = eqx.field(static=True)
    primitive: str = eqx.field(static=True)
    file: str | None = eqx.field(static=True)
    line: int | None = eqx.field(static=True)
    function: str | None = eqx.field(static=True)
    context: tuple = eqx.field(static=True)
    random: bool = eqx.field(static=True)
    ad_returns: str = eqx.field(static=True)
    remedy: str = eqx.field(static=True)
    detail: str = eqx.field(static=True, default="")
    continuous: bool = eqx.field(static=True, default=False)

    @property
    def where(self) -> str:
        """``file:line (function)``; ``"θ"`` for what was measured at θ without a source
        line, ``"?"`` when JAX kept no source information."""
        if self.file is None:
            return "θ" if self.kind in ("kink_at_theta", "nan_at_theta") else "?"
        return f"{self.file}:{self.line} ({self.function})"

    def summary(self) -> str:
        first, *rest = finding_lines(self)
        return "\n".join([first, *(f"  {line}" for line in rest)])


def finding_lines(finding: Finding) -> list[str]:
    """A finding as `Report` lists it: the kind, primitive and place, then one line each
    for the enclosing control flow, randomness, what was measured at θ, what AD returns and
    the remedy."""
    lines = [f"[{finding.kind}] {finding.primitive} at {finding.where}"]
    if finding.context:
        lines.append(f"inside: {' > '.join(finding.context)}")
    if finding.random:
        lines.append("downstream of a random draw")
    if finding.detail:
        lines.append(f"at θ: {finding.detail}")
    lines.append(f"AD returns: {finding.ad_returns}")
    lines.append(f"remedy: {finding.remedy}")
    return lines


@dataclasses.dataclass
class Scan:
    """What the static scan found.

    Attributes:
        findings: the static findings, in program order.
        out_flags: the flags of the program's outputs (``RANDOM``: depends on the key).
        tie_sites: live, θ-dependent places of the user's program whose primitive has a tie
            test (where a tie at θ can make a kink at θ).
        trap_sites: live, θ-dependent places whose derivative can be infinite (singular
            functions, eigendecompositions): where a NaN in AD's derivative can come from.
        custom_vjps: θ-dependent `jax.custom_vjp` calls (forward mode cannot differentiate).
        fd_hazards: why finite differences of the program cannot be trusted (one line each).
        rough_draws: draws whose sampler is not smooth in the θ in their parameters under
            common random numbers (a gamma draw's shape), as findings of kind
            ``"rough_draw"`` (not a kind of `sg.KINDS`: AD is right there, only finite
            differences are not), for the claims of estimators that difference runs.
    """

    findings: list[Finding]
    out_flags: list[int]
    tie_sites: list[Flow]
    trap_sites: list[Flow]
    custom_vjps: list[Flow]
    fd_hazards: list[str]
    rough_draws: list[Finding] = dataclasses.field(default_factory=list)


def _is_draw(eqn: JaxprEqn) -> bool:
    return site_distribution(eqn) is not None or jit_name(eqn) in JAX_RANDOM_JITS


def _transfer(eqn: JaxprEqn, ins: tuple[int, ...]) -> tuple[int, ...] | None:
    union = 0
    for f in ins:
        union |= f
    n_out = len(eqn.outvars)
    if _is_draw(eqn):  # a draw: opaque, random
        distribution = site_distribution(eqn)
        if distribution is not None and distribution.discrete:
            return ((union | RANDOM) & ~(SINGULAR | CONTINUOUS),) * n_out
        return ((union | RANDOM | CONTINUOUS) & ~SINGULAR,) * n_out
    if eqn.primitive.name == STOP_GRADIENT:
        # AD does not differentiate through it, by the user's choice (the straight-through
        # trick, a frozen baseline): what is behind it is not AD's to get wrong.
        return (union & ~(THETA | SINGULAR),) * n_out
    if jit_name(eqn) in FINITE_DERIVATIVE_JITS:
        # A library function with no singular point (expm, logsumexp): the singular
        # functions inside it are guarded, so its outputs are singular only where its
        # inputs were. (Its inside is the library's: nothing there is reported.)
        _, outs = dataflow(call_jaxpr(eqn), list(ins), _transfer)
        return tuple(f if union & SINGULAR else f & ~SINGULAR for f in outs)
    rule = rule_for(eqn)
    if rule is None:
        return None
    if rule.discards:
        out = union & ~SINGULAR
        if ins[0] & THETA and any(not f & THETA for f in ins[1:]):
            out |= GUARDED  # where(x > 0, x, 1.0): the safe half of the double-where trick
        return (out,) * n_out
    watched = [ins[i] for i in rule.singular if i < len(ins)]
    if any(f & THETA and not f & GUARDED for f in watched):
        return (union | SINGULAR,) * n_out
    return None


def scan(closed, n_theta: int) -> Scan:
    """The static scan of a traced simulator whose first ``n_theta`` inputs are θ's leaves
    and whose remaining inputs are random (the key)."""
    seeds = [THETA] * n_theta + [RANDOM | CONTINUOUS] * (len(closed.jaxpr.invars) - n_theta)
    flows, out_flags = dataflow(closed, seeds, _transfer)
    found: dict[tuple, Finding] = {}
    result = Scan([], out_flags, [], [], [], [])
    meeting = functools.cache(lambda: meeting_comparisons(closed))  # only if a threshold
    for flow in flows:
        theta = any(f & THETA for f in flow.inputs)
        if not flow.live or not (theta or _is_draw(flow.eqn)):
            continue
        if flow.eqn.primitive.name in CUSTOM_VJP_PRIMITIVES:
            result.custom_vjps.append(flow)
        rule = None if _is_draw(flow.eqn) else rule_for(flow.eqn)
        if not _is_draw(flow.eqn) and rule is None:
            continue  # smooth: nothing to report, tie or trap here
        label = _discrete_draw(flow, rule)
        kink = _continuous(flow, rule, meeting)
        _note_fd_hazard(result, flow, rule, label, kink)
        finding = _classify(flow, rule, label, kink)
        if rule is None or (finding is None and rule.tie is None and not _trap(rule)):
            if finding is not None and finding.kind == "discrete_draw":
                found.setdefault(_key(finding), finding)
            continue
        if label is None and in_smooth_library(flow.eqn, flow.outer):
            continue
        if finding is not None:
            found.setdefault(_key(finding), finding)
        if rule.tie is not None:
            result.tie_sites.append(flow)
        if _trap(rule) and flow.differentiated:
            result.trap_sites.append(flow)
    result.findings = list(found.values())
    result.fd_hazards = list(dict.fromkeys(result.fd_hazards))
    return result


def _key(finding: Finding) -> tuple:
    return finding.kind, finding.file, finding.line, finding.primitive


def _trap(rule) -> bool:
    """A place where AD's derivative can be infinite: a singular function or an eigensolver."""
    return bool(rule.singular) or rule.kind == "eigen"


def _continuous(flow: Flow, rule, meeting: Callable[[], frozenset[int]]) -> bool:
    """Is the jump or choice at ``flow`` continuous after all: a comparison that only
    selects between branches that meet (`meeting_comparisons`), or a sort whose
    permutation is unused (`Rule.continuous_outputs`)?"""
    if rule is None:
        return False
    if rule.kind == "threshold":
        return id(flow.eqn) in meeting()
    kept = rule.continuous_outputs
    return kept is not None and not any(
        live for i, live in enumerate(flow.live_outputs) if i not in kept
    )


def _classify(flow: Flow, rule, label, kink: bool) -> Finding | None:
    eqn, ins = flow.eqn, flow.inputs
    union = 0
    for f in ins:
        union |= f
    random = bool(union & RANDOM)
    continuous = bool((union | flow.decides) & CONTINUOUS)

    def make(kind, primitive=eqn.primitive.name, texts=None):
        file, line, function = location(flow)
        kind_texts = (FINDING_KINDS[kind].ad_returns, FINDING_KINDS[kind].remedy)
        ad_returns, remedy = texts or kind_texts
        return Finding(kind, primitive, file, line, function, flow.context, random, ad_returns,
                       remedy, continuous=continuous)  # fmt: skip

    if label is not None:
        return make("discrete_draw", primitive=label)
    if rule is None or not union & THETA:
        return None
    if kink:  # continuous after all; a comparison's outcome is never differentiated itself
        if rule.kind != "threshold" and not flow.differentiated:
            return None
        return make("kink", texts=(CONTINUOUS_RETURNS[rule.kind], FINDING_KINDS["kink"].remedy))
    kind = "nan_where" if rule.discards else rule.kind
    if kind not in KINDS or (FINDING_KINDS[kind].through_derivative and not flow.differentiated):
        return None
    if rule.discards:
        return make(kind) if any(f & SINGULAR for f in ins[1:]) else None
    if kind == "while_loop" and not flow.decides & THETA:
        return None
    return make(kind, texts=rule.texts(random))


def _discrete_draw(flow: Flow, rule) -> str | None:
    """The name of the discrete draw whose parameters depend on θ at ``flow``, or None: a
    `simgrad.random` or `jax.random` draw, or an equation inside `jax.random`'s sampling
    code (categorical is an argmax of logits plus noise)."""
    eqn = flow.eqn
    if _is_draw(eqn):
        distribution = site_distribution(eqn)
        discrete = distribution.discrete if distribution else jit_name(eqn) in JAX_RANDOM_DISCRETE
        if discrete and any(f & THETA for f in flow.inputs[1:]):
            return distribution.name if distribution else str(jit_name(eqn)).lstrip("_")
        return None
    if rule is not None and rule.kind in KINDS and any(f & THETA for f in flow.inputs):
        return jax_random_function(eqn, flow.outer)
    return None


def _note_fd_hazard(result: Scan, flow: Flow, rule, label, kink: bool) -> None:
    """Add why finite differences through ``flow`` cannot be trusted, if they cannot, to
    ``result.fd_hazards``; and to ``result.rough_draws`` where ``flow`` is a continuous draw
    whose sampler is not smooth in θ."""
    rough = False
    if label is not None:
        text = DRAW_HAZARD
    elif _is_draw(flow.eqn) and any(f & THETA for f in flow.inputs[1:]):
        # A continuous draw (a discrete one with θ in its parameters has a label). Its
        # sampler's own code, with θ's flags: is a rough step (gamma's rejection loop)
        # reached by θ, or only a smooth one (gamma's rate divides after it)?
        inside, _ = dataflow(call_jaxpr(flow.eqn), list(flow.inputs))
        rules = [rule_for(f.eqn) for f in inside if any(x & THETA for x in f.inputs)]
        text = next((r.fd_hazard for r in rules if r is not None and r.fd_hazard), "")
        distribution = site_distribution(flow.eqn)
        label = (distribution.name if distribution else str(jit_name(flow.eqn))).lstrip("_")
        rough = True
    else:
        text, label = (rule.fd_hazard if rule is not None else ""), flow.eqn.primitive.name
        if not text and rule is not None and not kink and _jumps_in_theta(flow, rule):
            text, label = FINDING_KINDS[rule.kind].fd_hazard, rule.kind  # one per line
    if not text:
        return
    file, line, function = location(flow)
    where = f" at {file}:{line}" if file is not None else ""
    result.fd_hazards.append(f"{label}{where}: {text}")
    if rough:
        result.rough_draws.append(
            Finding(
                "rough_draw",
                label,
                file,
                line,
                function,
                flow.context,
                True,
                "",
                text,
                continuous=True,
            )  # fmt: skip
        )


def _jumps_in_theta(flow: Flow, rule) -> bool:
    """A threshold or rounding of θ with no random draw upstream, outside the smooth
    library functions: the expectation itself jumps there (after a continuous draw it does
    not, and finite differences with common random numbers are consistent)."""
    union = 0
    for f in flow.inputs:
        union |= f
    kind = FINDING_KINDS.get(rule.kind)
    return bool(
        kind is not None
        and kind.fd_hazard
        and union & THETA
        and not union & RANDOM
        and not in_smooth_library(flow.eqn, flow.outer)
    )


def location(flow: Flow) -> tuple:
    """``(file, line, function)`` of the innermost frame of the user's own code that led to
    the equation (an equation inside a library, `jnp.linalg.eigh` or a diffrax solve, is
    attributed to the user's call of it); Nones when JAX kept no source information."""
    _, frame = emitted_by(flow.eqn, flow.outer)
    if frame is None:
        return None, None, None
    return frame.file, frame.line, frame.function
