"""Where does a NaN or inf in AD's derivative come from?

Two interpretations of the program core that watch the places where a derivative can be
infinite (the rule table's singular functions and eigendecompositions, as found by the
static scan): `Tangents` adds up each place's input and output tangents under forward
mode, `Cotangents` perturbs each place's inputs and outputs by zeros whose gradients are
the cotangents there. A place whose inputs carry finite (co)tangents and whose outputs do
not (forward), or the reverse (reverse mode), is where the NaN is born.
"""

import jax
import jax.numpy as jnp
import numpy as np

from .._scan import location, scan
from .._src.program import AtSites, evaluate
from .._src.program._jax_compat import bind
from .._src.program.rules import rule_for


def _floats(values):
    return [jnp.asarray(v) for v in values if jnp.issubdtype(jnp.result_type(v), jnp.floating)]


def _total(values, dtype):
    return sum((jnp.sum(v).astype(dtype) for v in _floats(values)), jnp.zeros((), dtype))


class Tangents(AtSites):
    """Add up the inputs and outputs of each place (run under `jax.jvp`: the state's
    tangent is then the sum of their tangents)."""

    inline_custom_vjp = True

    def __init__(self, flows, dtype):
        super().__init__(flows)
        self.dtype = dtype

    def initial_state(self):
        zero = jnp.zeros((), self.dtype)
        return tuple((zero, zero) for _ in self.flows)

    def at(self, i, eqn, invals, state):
        outs = bind(eqn, invals)
        s_in, s_out = state[i]
        new = (s_in + _total(invals, self.dtype), s_out + _total(outs, self.dtype))
        return outs, (*state[:i], new, *state[i + 1 :])


class Cotangents(AtSites):
    """Add ``deltas`` (zeros) to each place's float inputs and outputs: the gradient with
    respect to them is the cotangent there."""

    def __init__(self, flows, deltas):
        super().__init__(flows)
        self.deltas = deltas

    def initial_state(self):
        return ()

    def at(self, i, eqn, invals, state):
        d_in, d_out = self.deltas[i]
        it = iter(d_in)
        invals = [
            x + next(it) if _is_float_var(v) else x for x, v in zip(invals, eqn.invars, strict=True)
        ]
        outs = bind(eqn, invals)
        it = iter(d_out)
        return [
            o + next(it) if _is_float_var(v) else o for o, v in zip(outs, eqn.outvars, strict=True)
        ], state


def _is_float_var(v) -> bool:
    dtype = getattr(getattr(v, "aval", None), "dtype", None)
    return dtype is not None and bool(jnp.issubdtype(dtype, np.floating))


def _zeros(variables):
    return [jnp.zeros(v.aval.shape, v.aval.dtype) for v in variables if _is_float_var(v)]


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def reverse_origins(program, leaves, rest, flows) -> list[int]:
    """The places (indices into ``flows``) where reverse mode's cotangent turns non-finite:
    finite at their outputs, not at their inputs."""
    zeros = [(_zeros(f.eqn.invars), _zeros(f.eqn.outvars)) for f in flows]

    def output(deltas):
        outs, _ = evaluate(program, [*leaves, *rest], Cotangents(flows, deltas))
        return outs[0]

    grads = jax.grad(output)(zeros)
    return [i for i, (g_in, g_out) in enumerate(grads) if _finite(g_out) and not _finite(g_in)]


def forward_origins(program, leaves, rest, flows, direction) -> list[int]:
    """The places where forward mode's tangent along ``direction`` turns non-finite."""
    dtype = jnp.result_type(*[x.dtype for x in leaves])
    interp = Tangents(flows, dtype)

    def run(*xs):
        return evaluate(program, [*xs, *rest], interp)[1]

    _, tangents = jax.jvp(run, leaves, direction)
    return [
        i
        for i, (d_in, d_out) in enumerate(tangents)
        if bool(jnp.isfinite(d_in)) and not bool(jnp.isfinite(d_out))
    ]


def explain_nonfinite(program, leaves, rest, direction) -> str:
    """One line: which singular function makes forward mode non-finite along ``direction``
    (or which eigen- or singular-value decomposition is at a tie, where the one-sided
    rules give its vectors, and a nonsymmetric matrix's eigenvalues, no slope)."""
    found = scan(program, len(leaves))
    flows = found.trap_sites
    origins = forward_origins(program, leaves, rest, flows, direction) if flows else []
    if origins:
        flow = flows[origins[0]]
    else:
        spectral = [f for f in found.tie_sites if _kind(f.eqn) == "eigen"]
        ties = evaluate(program, [*leaves, *rest], Ties(spectral))[1] if spectral else ()
        tied = [f for f, tie in zip(spectral, ties, strict=True) if bool(tie)]
        if not tied:
            return "no singular function found: the NaN or inf comes from the program's values"
        flow = tied[0]
    file, line, _ = location(flow)
    where = f" at {file}:{line}" if file is not None else ""
    if _kind(flow.eqn) == "eigen":
        return (
            f"{flow.eqn.primitive.name}{where} is at a tie of its eigen- or singular values: "
            "the tied vectors (and a nonsymmetric matrix's tied eigenvalues) have no derivative"
        )
    return f"{flow.eqn.primitive.name}{where} is at a singular point"


def _kind(eqn) -> str:
    rule = rule_for(eqn)
    return "" if rule is None else rule.kind


class Ties(AtSites):
    """Record, for each of the given places, whether its operands tie at θ (the rule
    table's tie test: ``a == b`` for ``min``/``max``/comparisons, ``x == 0`` for ``abs``,
    an integer for ``floor``): where a kink at θ can come from."""

    def initial_state(self):
        return tuple(jnp.zeros((), bool) for _ in self.flows)

    def at(self, i, eqn, invals, state):
        rule = rule_for(eqn)
        assert rule is not None and rule.tie is not None  # tie sites have a tie test
        tie = rule.tie(eqn, invals)
        return bind(eqn, invals), (*state[:i], state[i] | tie, *state[i + 1 :])
