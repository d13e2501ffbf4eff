"""`LogProb`: the interpretation that adds up ``log p(draw; θ)`` over a program's draws."""

import jax
import jax.numpy as jnp

from .core import Interpretation
from .sites import Distribution, DrawSite


class LogProb(Interpretation):
    """Run the program and accumulate the log-probability of its draws.

    State: ``(log_prob, support)``, two scalars of ``dtype``; the second adds up the
    parameters that move their draw's support (uniform's bounds), for which the score
    function alone is biased — only its dependence on θ matters: callers refuse such
    programs when it depends on θ.

    Arguments:
        scored: which draws to score. A scored draw is held fixed (`stop_gradient`) and
            contributes ``log p``; an unscored draw keeps its pathwise derivative and
            contributes nothing. ``lambda d: True`` is the score function;
            ``lambda d: not d.reparameterised`` the hybrid estimator.
        dtype: the accumulator's dtype.
        rao_blackwell: skip draws that cannot reach the outputs (their score has mean zero
            given the rest and only adds variance).
    """

    def __init__(self, scored, dtype, rao_blackwell: bool = True):
        self.scored = scored
        self.dtype = dtype
        self.rao_blackwell = rao_blackwell

    def initial_state(self):
        zero = jnp.zeros((), self.dtype)
        return (zero, zero)

    def draw(self, site: DrawSite, state):
        x = site.sample()
        distribution: Distribution = site.distribution
        if not self.scored(distribution):
            return x, state
        x = jax.lax.stop_gradient(x)
        if self.rao_blackwell and not site.live:
            return x, state
        log_prob = jnp.sum(distribution.log_prob(x, *site.params)).astype(self.dtype)
        total, support = state
        for i in distribution.support_params:
            support = support + jnp.sum(site.params[i]).astype(self.dtype)
        return x, (total + log_prob, support)
