"""Draws simgrad cannot see: discrete `jax.random` draws whose parameters depend on θ.

`jax.random.bernoulli(key, theta)` is an ordinary computation to the program core, not a
`simgrad.random` site: no estimator can score or perturb it, and its pathwise derivative is
zero. Estimators that depend on seeing draws (score function, hybrid, stochastic triples)
would silently drop its whole contribution; `hidden_draws` finds such draws so that they
refuse the simulator instead.

A draw is recognised by the `jax.random` function that emitted it: a sampler that traces
as a `jit` named after itself (``_bernoulli``, ``_poisson``, …, `JAX_RANDOM_DISCRETE`) or
an equation traced inside one of the discrete samplers (``categorical`` is an ``argmax``
of logits plus Gumbel noise, ``binomial`` and ``choice`` are inlined). It counts when one
of its inputs depends on θ (the core's `dataflow`, `simgrad.random` draws opaque) and it can
reach the output.
"""

from ._jax_compat import JAX_RANDOM_DISCRETE, ClosedJaxpr, jit_name, library_frames, source_line
from .core import dataflow
from .sites import site_distribution

# Public `jax.random` functions whose value is discrete: a frame of one of these (inside
# JAX's own code) marks an equation as part of such a draw.
JAX_RANDOM_DISCRETE_FUNCTIONS = frozenset(
    {"bernoulli", "categorical", "poisson", "binomial", "geometric", "randint", "choice",
     "multinomial", "rademacher", "permutation"}
)  # fmt: skip
_THETA = 1


def _opaque_draws(eqn, ins):
    if site_distribution(eqn) is None:
        return None
    return (_THETA if any(f & _THETA for f in ins) else 0,) * len(eqn.outvars)


def _sampler(eqn) -> str | None:
    name = jit_name(eqn)
    if name in JAX_RANDOM_DISCRETE:
        return name.lstrip("_")
    for _, function in library_frames(eqn):
        if function in JAX_RANDOM_DISCRETE_FUNCTIONS:
            return function
    return None


def hidden_draws(closed: ClosedJaxpr, wrt: list[bool]) -> list[str]:
    """The discrete `jax.random` draws of ``closed`` whose parameters depend on the inputs
    marked in ``wrt`` and that can reach an output, as ``"jax.random.NAME (file:line)"``."""
    flows, _ = dataflow(closed, [_THETA if w else 0 for w in wrt], _opaque_draws)
    found: dict[str, None] = {}
    for flow in flows:
        if not flow.live or not any(f & _THETA for f in flow.inputs):
            continue
        name = _sampler(flow.eqn)
        if name is None:
            continue
        where = source_line(flow.eqn) or next(
            (w for e in reversed(flow.outer) if (w := source_line(e))), None
        )
        at = f" ({where[0].rsplit('/', 1)[-1]}:{where[1]})" if where else ""
        found.setdefault(f"jax.random.{name}{at}", None)
    return list(found)
