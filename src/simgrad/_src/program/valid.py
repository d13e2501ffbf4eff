"""`valid_draws`: a simulator that is NaN whenever one of its draws had invalid parameters.

`simgrad.random` checks concrete parameters when the draw is traced (a ``ValueError`` that
names the parameter and its range). A *traced* parameter (computed from θ or from earlier
draws) can only be checked at run time. A host callback next to each draw
(`equinox.error_if`) does that, but it keeps JAX from caching the compiled program on disk.
So the engine traces the simulator inside `draws_checked_by_caller` (an invalid traced
parameter then becomes NaN in its draw, without a callback) and runs it through
`valid_draws`, which reads every draw's parameters off its site, inside loops and branches
too, and makes the whole output NaN when one was invalid: no downstream comparison or
integer cast can hide it, and the engine's count of non-finite samples reports it.

Examples:
    >>> import jax, jax.numpy as jnp, simgrad as sg
    >>> from simgrad._src.program import trace
    >>> from simgrad._src.program.sites import draws_checked_by_caller
    >>> def sim(rate, key):                      # a threshold would hide a NaN draw
    ...     with draws_checked_by_caller():
    ...         return jnp.where(sg.random.poisson(key, rate) > 2, 1.0, 0.0)
    >>> f = valid_draws(trace(sim, 3.0, jax.random.key(0)))
    >>> float(f(-1.0, jax.random.key(0)))
    nan
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._jax_compat import JIT_PRIMITIVES, ClosedJaxpr
from .core import Interpretation, draw_sites, evaluate
from .sites import DrawSite

# Where the core can walk to a draw without changing what the program computes or how it
# is differentiated (it inlines custom_jvp/custom_vjp and checkpoint calls that contain
# draws, dropping their rules).
_TRANSPARENT = JIT_PRIMITIVES | {"closed_call", "core_call", "scan", "while", "cond"}


class _ValidDraws(Interpretation):
    """State: True while every draw met so far had valid parameters."""

    def initial_state(self):
        return jnp.asarray(True)

    def draw(self, site: DrawSite, state):
        return site.sample(), state & site.distribution.valid(*site.params)


def valid_draws(program: ClosedJaxpr) -> Callable | None:
    """``program`` (a traced ``f(*args)`` with one output) as a function of the same
    arguments whose output is NaN when some draw's parameters were invalid; None when it
    has no draw, or a draw the core cannot reach unchanged (inside a custom derivative
    rule, `jax.checkpoint`, a while loop's condition)."""
    sites = draw_sites(program)
    if not sites or any(not set(context) <= _TRANSPARENT for _, context in sites):
        return None

    def f(*args):
        interpretation = _ValidDraws()
        (y,), ok = evaluate(program, list(args), interpretation, interpretation.initial_state())
        return jnp.where(ok, y, jnp.nan)

    try:
        jax.eval_shape(f, *program.in_avals)
    except NotImplementedError:  # a draw in a while loop's condition
        return None
    return f
