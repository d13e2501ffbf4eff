"""Draws simgrad cannot see: discrete `jax.random` draws, of samplers no record lists,
whose parameters depend on θ.

`jax.random.binomial(key, n, theta)` is an ordinary computation to the program core, not a
site (`jax.random`'s listed samplers, `simgrad.random/_jax.py`, are sites): no estimator
can score or perturb it, and its pathwise derivative is zero. Estimators that depend on
seeing draws (score function, hybrid, stochastic triples) would silently drop its whole
contribution; `hidden_draws` finds such draws so that they refuse the simulator instead.

A draw is recognised as the checker recognises it, from the rule table's knowledge of
`jax.random`: a sampler that traces as a `jit` named after itself (``_bernoulli``,
``_poisson``, …: `JAX_RANDOM_DISCRETE`), or an equation emitted by a discrete sampler's
own code (`rules.jax_random_function`: ``categorical`` is an ``argmax`` of logits plus
Gumbel noise, ``binomial`` and ``choice`` are inlined). It counts when one of its inputs
depends on θ (the core's `dataflow`, `simgrad.random` draws opaque) and it can reach the
output.
"""

from ._jax_compat import JAX_RANDOM_DISCRETE, ClosedJaxpr, jit_name
from .core import dataflow
from .rules import emitted_by, jax_random_function
from .sites import SAMPLERS, site_distribution

_THETA = 1


def _opaque_draws(eqn, ins):
    if site_distribution(eqn) is None:
        return None
    return (_THETA if any(f & _THETA for f in ins) else 0,) * len(eqn.outvars)


def hidden_draws(closed: ClosedJaxpr, wrt: list[bool]) -> list[str]:
    """The discrete `jax.random` draws of ``closed`` whose parameters depend on the inputs
    marked in ``wrt`` and that can reach an output, as ``"jax.random.NAME (file:line)"``."""
    flows, _ = dataflow(closed, [_THETA if w else 0 for w in wrt], _opaque_draws)
    found: dict[str, None] = {}
    for flow in flows:
        if not flow.live or not any(f & _THETA for f in flow.inputs):
            continue
        if site_distribution(flow.eqn) is not None:  # a draw the estimators see
            continue
        name = jit_name(flow.eqn)
        name = name.lstrip("_") if name in JAX_RANDOM_DISCRETE else None
        name = name or jax_random_function(flow.eqn, flow.outer)
        if name is None or f"_{name}" in SAMPLERS:  # a listed sampler's own code: its draw
            continue  # is a site
        _, frame = emitted_by(flow.eqn, flow.outer)
        at = f" ({frame.file.rsplit('/', 1)[-1]}:{frame.line})" if frame is not None else ""
        found.setdefault(f"jax.random.{name}{at}", None)
    return list(found)
