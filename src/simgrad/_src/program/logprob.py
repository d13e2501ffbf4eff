"""`LogProb`: the interpretation that adds up ``log p(draw; θ)`` over a program's draws."""

import jax
import jax.numpy as jnp

from .core import Interpretation
from .sites import Distribution, DrawSite


class LogProb(Interpretation):
    """Run the program and accumulate the log-probability of its draws.

    State: ``(log_prob, support_log_prob)``, two scalars of ``dtype``; the second collects
    the draws whose support moves with their parameters (uniform), for which the score
    function alone is biased, so that callers can refuse them when they depend on θ.

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
        if distribution.support_depends_on_params:
            support = support + log_prob
        return x, (total + log_prob, support)
