"""`LogProb`: the interpretation that adds up ``log p(draw; θ)`` over a program's draws."""

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._jax_compat import bind
from .core import Interpretation
from .rules import COMPARISONS
from .sites import Distribution, DrawSite, Pushforward


class LogProb(Interpretation):
    r"""Run the program and accumulate the log-probability of its draws.

    State: ``(log_prob, support)``, two scalars of ``dtype``; the second adds up the
    parameters that move their draw's support (uniform's bounds), for which the score
    function alone is biased — only its dependence on θ matters: callers refuse such
    programs when it depends on θ.

    A scored draw ``Z`` followed by strictly monotone maps ``X = g(θ, Z)`` (a
    `Pushforward`: ``θ + Z``, ``S0·exp(σZ)``, ``-log(U)/λ``) is scored as ``X``: ``X`` is
    held fixed and contributes ``log q_θ(X)``, ``q_θ(x) = p(z) / |∂g/∂z|`` at
    ``z = g⁻¹(θ, x)``, whose θ-derivative is the generalized likelihood ratio weight
    $-(\partial_\theta g/\partial_z g)\,\partial_z \log p - \partial_z(\partial_\theta g
    /\partial_z g)$ (Peng, Fu, Hu & Heidergott 2018). The support of ``X`` adds to the
    second scalar where the maps move an end of ``Z``'s (``θ + Exponential``).

    Arguments:
        scored: which draws to score. A scored draw is held fixed (`stop_gradient`) and
            contributes ``log p``; an unscored draw keeps its pathwise derivative and
            contributes nothing. ``lambda d: True`` is the score function;
            ``lambda d: not d.reparameterised`` the hybrid estimator.
        dtype: the accumulator's dtype.
        rao_blackwell: skip draws that cannot reach the outputs (their score has mean zero
            given the rest and only adds variance).
        change_variables: score draws through the maps that follow them (`Pushforward`);
            else every draw is scored as drawn and the maps are differentiated pathwise.
    """

    def __init__(self, scored, dtype, rao_blackwell: bool = True, change_variables=True):
        self.changes_variables = change_variables
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

    def pushforward(self, pushed: Pushforward, state):
        x = pushed.value()
        site = pushed.site
        if not self.scored(site.distribution) or (self.rao_blackwell and not site.live):
            return x, state
        total, support = state
        z = jax.lax.stop_gradient(pushed.noise)
        params = [jax.lax.stop_gradient(p) for p in site.params]
        log_p = site.distribution.log_prob
        last, invals, position = pushed.steps[-1]
        if last.primitive.name in COMPARISONS:
            # B = 1{X < c}: a Bernoulli draw of P(X < c) = F(g⁻¹(c)) (1 - F where g
            # decreases), scored in place of the draw it reads.
            maps = Pushforward(site, pushed.noise, pushed.steps[:-1])
            assert site.distribution.cdf is not None  # a chain ends so only with a CDF
            cdf = site.distribution.cdf(maps.invert(invals[1 - position]), *site.params)
            rising = maps.slope(z) > 0 if maps.steps else True
            below = jnp.where(rising, cdf, 1 - cdf)
            p = below if COMPARISONS[last.primitive.name] == (position == 0) else 1 - below
            change = jnp.log(jnp.where(x, p, 1 - p)) - log_p(z, *site.params)
            (x,) = bind(last, [jax.lax.stop_gradient(v) for v in invals])  # scored: fixed
            return x, (total + jnp.sum(change).astype(self.dtype), support)
        # z(θ) = g⁻¹(θ, x) at fixed x, to first order: its value is the draw, its derivative
        # -∂θg/∂zg (all the score needs); then log q = log p(z(θ)) - log |∂z g(θ, z(θ))|.
        z_at_x = z - (x - jax.lax.stop_gradient(x)) / jax.lax.stop_gradient(pushed.slope(z))
        change = log_p(z_at_x, *params) - log_p(z, *params)
        change = change - jnp.log(jnp.abs(pushed.slope(z_at_x)))
        total = total + jnp.sum(change).astype(self.dtype)
        for end in _moving_ends(pushed, z):
            support = support + jnp.sum(jnp.where(jnp.isfinite(end), end, 0)).astype(self.dtype)
        return jax.lax.stop_gradient(x), (total, support)


def _moving_ends(pushed: Pushforward, z) -> list:
    """The images ``g(θ, end)`` of the ends of the draw's support that the maps may move
    (an infinite end that stays infinite, or an end that every operand leaves in place,
    does not move: ``exp(-inf)·S0 = 0``); the caller refuses a program where one depends
    on θ. Decided at trace time, by evaluating the maps at the end with two sets of
    values for their traced operands (each operand its own value: ``w + z - a`` must not
    cancel)."""
    assert pushed.site.distribution.bounds is not None  # chains start only with bounds
    bounds = pushed.site.distribution.bounds(*pushed.site.params)
    moving = []
    for end in bounds:
        if isinstance(end, jax.core.Tracer):  # a traced bound: the draw's record refuses it
            continue
        at_end = np.full(z.shape, end, z.dtype)
        with jax.ensure_compile_time_eval():
            images = [_image(pushed, at_end, np.random.default_rng(seed)) for seed in (1, 2)]
        if not (np.array_equal(images[0], images[1]) and not np.isnan(images[0]).any()):
            moving.append(pushed.apply(at_end))
    return moving


def _image(pushed: Pushforward, end, rng: np.random.Generator):
    """``g(end)`` with every traced operand of the maps replaced by a value of ``rng``."""
    for eqn, invals, position in pushed.steps:
        values = [
            np.full(v.shape, rng.uniform(0.5, 3.0), v.dtype)
            if isinstance(v, jax.core.Tracer) else v
            for v in invals
        ]  # fmt: skip
        values[position] = end
        (end,) = bind(eqn, values)
        end = np.asarray(end)
    return end
