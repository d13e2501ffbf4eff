r"""The discrete families: one `Distribution` record each, with its stochastic-triples proposal.

A discrete draw returns floats holding integers and has a zero pathwise derivative (its
sampler stops gradients). Its *proposal* says how the draw would change if its parameters
moved by $\varepsilon\,\dot\theta$, under the **inverse-CDF coupling** $X = F^{-1}(U)$:
the boundaries $F(k)$ of the CDF move by $\varepsilon\,\dot F(k)$, and a draw in category
$k$ crosses into the neighbouring category with probability
$\varepsilon\,|\dot F|/P(X = k)$ — up when $\dot F(k) < 0$, down when $\dot F(k-1) > 0$.
So ``E[Σ w (f(alt) − f(x))] = d/dε E f`` for every ``f`` (Arya et al. 2022). For a
categorical the neighbour across a moving boundary is the next category that **can occur**:
zero-probability categories between (an action mask) are skipped over.

Samplers wrap `jax.random` (negative binomial as its Gamma–Poisson mixture). The
log-probabilities are written here, gradient-safe where a probability or rate reaches 0
(`xlogy`): numpyro's use `jax.scipy.special.xlogy`, whose gradient is NaN there.
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import gammaln

from .._src.program.sites import Constraint, Distribution, Param
from ._family import (
    LOGITS,
    NONNEGATIVE,
    POSITIVE,
    POSITIVE_PROBABILITY,
    PROBABILITY,
    WEIGHTS,
    WHOLE,
    family,
    safe_div,
    signed,
    xlog1py,
    xlogy,
)

_stop = jax.lax.stop_gradient


def _take(a, index):
    """``a[..., index]`` along the last axis, ``index`` clipped into range."""
    index = jnp.clip(index, 0, a.shape[-1] - 1)
    return jnp.take_along_axis(a, index.astype(jnp.int32), axis=-1)


# --- bernoulli, binomial, poisson, geometric, negative binomial: one step up or down ------


def _bernoulli_proposal(x, params, dparams):
    (p,), (dp,) = params, dparams
    up = jnp.where(x == 0, safe_div(dp, 1 - p), 0)  # 0 → 1 when p grows
    down = jnp.where(x == 1, safe_div(-dp, p), 0)  # 1 → 0 when p shrinks
    weight = jnp.where(dp > 0, up, down)
    return (1 - x)[..., None], weight[..., None]


BERNOULLI = family(
    Distribution(
        name="bernoulli",
        params=(Param("p", PROBABILITY),),
        support="{0, 1}",
        discrete=True,
        reparameterisation=None,
        sample=lambda key, p, *, shape, dtype: jax.random.bernoulli(key, _stop(p), shape).astype(
            dtype
        ),
        log_prob=lambda x, p: xlogy(x, p) + xlog1py(1 - x, -p),
        proposal=_bernoulli_proposal,
        finite_support=lambda params: 2,
        # ∂p E f = f(1) − f(0)
        weak_derivative=lambda key, x, ps, dps: signed(
            jnp.broadcast_to(dps[0], x.shape), jnp.ones_like(x), jnp.zeros_like(x)
        ),
    )
)


def _binomial_proposal(x, params, dparams):
    (n, p), (_, dp) = params, dparams
    up = safe_div((n - x) * dp, 1 - p)  # one failed trial succeeds
    down = safe_div(-x * dp, p)  # one success fails
    alt = jnp.where(dp > 0, x + 1, x - 1)
    return alt[..., None], jnp.where(dp > 0, up, down)[..., None]


def _binomial_weak(key, x, params, dparams):
    """∂p E f(X) = n (E f(Y + 1) − E f(Y)), Y ~ Binomial(n − 1, p): Y is the draw less one
    of its n trials picked at random (a success with probability x/n)."""
    (n, _), (_, dp) = params, dparams
    u = jax.random.uniform(key, x.shape, x.dtype)
    y = x - (u < safe_div(x, jnp.broadcast_to(n, x.shape))).astype(x.dtype)
    return signed(jnp.broadcast_to(n * dp, x.shape), y + 1, y)


def _binomial_lp(x, n, p):
    log_choose = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
    return log_choose + xlogy(x, p) + xlog1py(n - x, -p)


def _binomial_support(params):
    """``n + 1`` values, the largest ``n`` where the program fixes it."""
    n = params[0]
    return None if n is None or n.size == 0 else int(n.max()) + 1


BINOMIAL = family(
    Distribution(
        name="binomial",
        params=(Param("n", WHOLE, count=True), Param("p", PROBABILITY)),
        support="{0, 1, …, n}",
        discrete=True,
        reparameterisation=None,
        sample=lambda key, n, p, *, shape, dtype: jax.random.binomial(
            key, n, _stop(p), shape, dtype
        ).astype(dtype),
        log_prob=_binomial_lp,
        proposal=_binomial_proposal,
        weak_derivative=_binomial_weak,
        finite_support=_binomial_support,
    )
)


def _poisson_proposal(x, params, dparams):
    (rate,), (drate,) = params, dparams
    up = jnp.broadcast_to(drate, x.shape)  # d/dλ E f(X) = E[f(X + 1) − f(X)]
    down = safe_div(-drate * x, rate)  # = E[X/λ (f(X) − f(X − 1))]
    alt = jnp.where(drate > 0, x + 1, x - 1)
    return alt[..., None], jnp.where(drate > 0, up, down)[..., None]


POISSON = family(
    Distribution(
        name="poisson",
        params=(Param("rate", NONNEGATIVE),),
        support="{0, 1, 2, …}",
        discrete=True,
        reparameterisation=None,
        sample=lambda key, rate, *, shape, dtype: jax.random.poisson(
            key, _stop(rate), shape
        ).astype(dtype),
        log_prob=lambda x, rate: xlogy(x, rate) - rate - gammaln(x + 1),
        proposal=_poisson_proposal,
        # ∂λ E f(X) = E f(X + 1) − E f(X)
        weak_derivative=lambda key, x, ps, dps: signed(jnp.broadcast_to(dps[0], x.shape), x + 1, x),
    )
)


def _geometric_proposal(x, params, dparams):
    (p,), (dp,) = params, dparams  # x = trials to the first success, P(X > k) = (1 - p)^k
    up = safe_div(-dp * x, p)  # p shrinks: one more trial
    down = safe_div(dp * (x - 1), p * (1 - p))  # p grows: one fewer
    alt = jnp.where(dp < 0, x + 1, x - 1)
    return alt[..., None], jnp.where(dp < 0, up, down)[..., None]


GEOMETRIC = family(
    Distribution(
        name="geometric",
        params=(Param("p", POSITIVE_PROBABILITY),),
        support="{1, 2, 3, …}",
        discrete=True,
        reparameterisation=None,
        sample=lambda key, p, *, shape, dtype: jax.random.geometric(key, _stop(p), shape).astype(
            dtype
        ),
        log_prob=lambda x, p: xlog1py(x - 1, -p) + jnp.log(p),
        proposal=_geometric_proposal,
    )
)


def _negative_binomial_sample(key, n, p, *, shape, dtype):
    n, p = _stop(n), _stop(p)
    k_rate, k_count = jax.random.split(key)
    rate = jax.random.gamma(k_rate, jnp.broadcast_to(n, shape), shape, dtype) * (1 - p) / p
    return jax.random.poisson(k_count, rate, shape).astype(dtype)


def _negative_binomial_proposal(x, params, dparams):
    # F(k) = I_p(n, k + 1), so dF(k)/dp = P(k) (n + k)/p and dF(k-1)/dp = P(k) k/(p(1-p)).
    (n, p), (_, dp) = params, dparams
    up = safe_div(-dp * (n + x), p)  # p shrinks: one more failure
    down = safe_div(dp * x, p * (1 - p))  # p grows: one fewer
    alt = jnp.where(dp < 0, x + 1, x - 1)
    return alt[..., None], jnp.where(dp < 0, up, down)[..., None]


def _negative_binomial_lp(x, n, p):
    return gammaln(x + n) - gammaln(n) - gammaln(x + 1) + n * jnp.log(p) + xlog1py(x, -p)


NEGATIVE_BINOMIAL = family(
    Distribution(
        name="negative_binomial",
        params=(Param("n", POSITIVE), Param("p", POSITIVE_PROBABILITY)),
        support="{0, 1, 2, …}",
        discrete=True,
        reparameterisation=None,
        sample=_negative_binomial_sample,
        log_prob=_negative_binomial_lp,
        proposal=_negative_binomial_proposal,
        # dF/dn has no closed form (a derivative of the incomplete beta function in its
        # first argument): a θ-dependent n is the score function's (sg.ScoreFunction).
        proposal_params=("p",),
    )
)


# --- categorical and multinomial: the inverse-CDF coupling over categories ---------------


def _moves(prob, dprob):
    r"""Where the inverse-CDF coupling of a categorical sends mass, per target category ``j``.

    With ``F`` the CDF and ``Ḟ`` its tangent, a uniform ``U = F(i) + ε t`` near a boundary
    lands, once the boundaries move, in the category ``j`` with ``Ḟ(j-1) ≤ t < Ḟ(j)``.
    Between two categories that can occur sit zero-probability ones (``F`` flat), so:

    * *up* into ``j``: from the last category below ``j`` with probability > 0, for
      ``t`` in ``[Ḟ(j-1), min(0, Ḟ(j)))`` (``j`` possible: ``[Ḟ(j-1), 0)``);
    * *down* into ``j``: from the first category above ``j`` with probability > 0, for
      ``t`` in ``[max(0, Ḟ(j-1)), Ḟ(j))`` (``j`` possible: ``[0, Ḟ(j))``).

    A zero-probability category receives mass only if its own probability grows
    (``ṗ_j > 0``, a one-sided derivative at the edge of the parameter space); otherwise
    the neighbour across a moving boundary is the next category that can occur. Returns
    ``(source_up, weight_up, source_down, weight_down)``, each ``prob.shape``: weights are
    the lengths of those intervals over ``P(source)``, 0 where there is no source.
    """
    n_cat = prob.shape[-1]
    axis = prob.ndim - 1
    index = jnp.arange(n_cat, dtype=jnp.int32)
    possible = prob > 0
    grows = ~possible & (dprob > 0)
    dcdf = jnp.cumsum(dprob, axis=-1)
    dcdf_below = jnp.concatenate([jnp.zeros_like(dcdf[..., :1]), dcdf[..., :-1]], -1)
    up = jnp.where(possible, -dcdf_below, jnp.minimum(dcdf, 0) - dcdf_below)
    down = jnp.where(possible, dcdf, dcdf - jnp.maximum(dcdf_below, 0))
    up = jnp.where(possible | grows, jnp.maximum(up, 0), 0)
    down = jnp.where(possible | grows, jnp.maximum(down, 0), 0)
    last = lax.cummax(jnp.where(possible, index, -1), axis=axis)
    source_up = jnp.concatenate([jnp.full_like(last[..., :1], -1), last[..., :-1]], -1)
    first = lax.cummin(jnp.where(possible, index, n_cat), axis=axis, reverse=True)
    source_down = jnp.concatenate([first[..., 1:], jnp.full_like(first[..., :1], n_cat)], -1)
    weight_up = jnp.where(source_up >= 0, safe_div(up, _take(prob, source_up)), 0)
    weight_down = jnp.where(source_down < n_cat, safe_div(down, _take(prob, source_down)), 0)
    return source_up, weight_up, source_down, weight_down


def _normalised(probs):
    return probs / jnp.sum(probs, -1, keepdims=True)


def _categorical_moves(x, prob, dprob):
    """Candidates: every category; weight = the rate at which the coupling moves ``x`` there."""
    source_up, weight_up, source_down, weight_down = _moves(prob, dprob)
    shape = x.shape + prob.shape[-1:]
    k = x.astype(jnp.int32)[..., None]
    weight = jnp.where(jnp.broadcast_to(source_up, shape) == k, weight_up, 0) + jnp.where(
        jnp.broadcast_to(source_down, shape) == k, weight_down, 0
    )
    alts = jnp.broadcast_to(jnp.arange(prob.shape[-1], dtype=x.dtype), shape)
    return alts, jnp.broadcast_to(weight, shape)


def _categorical_logits_proposal(x, params, dparams):
    (logits,), (dlogits,) = params, dparams
    # A masked category (logit -inf) stays masked whatever its tangent, which may be NaN
    # when the mask was made as log(0).
    dlogits = jnp.where(logits == -jnp.inf, 0, dlogits)
    prob, dprob = jax.jvp(lambda z: jax.nn.softmax(z, axis=-1), (logits,), (dlogits,))
    return _categorical_moves(x, prob, dprob)


def _categorical_probs_proposal(x, params, dparams):
    (probs,), (dprobs,) = params, dparams
    prob, dprob = jax.jvp(_normalised, (probs,), (dprobs,))
    return _categorical_moves(x, prob, dprob)


def _categorical_weak_from(key, x, prob, dprob):
    """∂ E f = c (E⁺ f − E⁻ f), ``c = Σ max(ṗ, 0)``, ``p± ∝ max(±ṗ, 0)``: both sides drawn by
    their inverse CDF at one shared uniform."""
    rise, fall = jnp.maximum(dprob, 0), jnp.maximum(-dprob, 0)
    c = jnp.broadcast_to(jnp.sum(rise, -1), x.shape)
    u = jax.random.uniform(key, x.shape, x.dtype)[..., None]
    last = prob.shape[-1] - 1

    def pick(mass):
        cdf = jnp.cumsum(mass, -1)
        return jnp.minimum(jnp.sum(cdf <= u * cdf[..., -1:], -1), last).astype(x.dtype)

    return pick(rise)[..., None], pick(fall)[..., None], c[..., None]


def _categorical_logits_weak(key, x, params, dparams):
    (logits,), (dlogits,) = params, dparams
    dlogits = jnp.where(logits == -jnp.inf, 0, dlogits)  # a masked category stays masked
    prob, dprob = jax.jvp(lambda z: jax.nn.softmax(z, axis=-1), (logits,), (dlogits,))
    return _categorical_weak_from(key, x, prob, dprob)


def _categorical_probs_weak(key, x, params, dparams):
    (probs,), (dprobs,) = params, dparams
    prob, dprob = jax.jvp(_normalised, (probs,), (dprobs,))
    return _categorical_weak_from(key, x, prob, dprob)


def _categorical_sample(key, logits, *, shape, dtype):
    return jax.random.categorical(key, _stop(logits), axis=-1, shape=shape).astype(dtype)


def _categorical_logits_lp(x, logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_p = jnp.broadcast_to(log_p, x.shape + log_p.shape[-1:])
    return _take(log_p, x[..., None])[..., 0]


def _categorical_probs_lp(x, probs):
    # log p_x − log Σ p: the derivative in a p_j that is 0 is −1/Σp, not 0 · ∞.
    probs = jnp.broadcast_to(probs, x.shape + probs.shape[-1:])
    return jnp.log(_take(probs, x[..., None])[..., 0]) - jnp.log(jnp.sum(probs, -1))


CATEGORICAL = family(
    Distribution(
        name="categorical",
        params=(Param("logits", LOGITS, event_ndim=1),),
        support="{0, 1, …, K-1}",
        discrete=True,
        reparameterisation=None,
        sample=_categorical_sample,
        log_prob=_categorical_logits_lp,
        proposal=_categorical_logits_proposal,
        weak_derivative=_categorical_logits_weak,
        finite_support=lambda params: params[0].shape[-1],
    )
)

CATEGORICAL_PROBS = family(
    Distribution(
        name="categorical_probs",
        params=(Param("probs", WEIGHTS, event_ndim=1),),
        support="{0, 1, …, K-1}",
        discrete=True,
        reparameterisation=None,
        sample=lambda key, probs, *, shape, dtype: _categorical_sample(
            key, jnp.log(_stop(probs)), shape=shape, dtype=dtype
        ),
        log_prob=_categorical_probs_lp,
        proposal=_categorical_probs_proposal,
        weak_derivative=_categorical_probs_weak,
        finite_support=lambda params: params[0].shape[-1],
    )
)


def _multinomial_proposal(x, params, dparams):
    # n independent categorical draws, each coupled by its inverse CDF: one count moves
    # from the source category to the target, at rate (count of the source) × weight.
    (_, probs), (_, dprobs) = params, dparams
    prob, dprob = jax.jvp(_normalised, (probs,), (dprobs,))
    n_cat = prob.shape[-1]
    moves = _moves(prob, dprob)
    alts, weights = [], []
    for source, weight in (moves[:2], moves[2:]):
        source = jnp.broadcast_to(source, x.shape)
        count = jnp.where((source >= 0) & (source < n_cat), _take(x, source), 0)
        weights.append(count * weight)
        moved = jnp.eye(n_cat, dtype=x.dtype) - jax.nn.one_hot(source, n_cat, dtype=x.dtype)
        alts.append(x[..., None, :] + moved)
    return jnp.concatenate(alts, -2), jnp.concatenate(weights, -1)


def _multinomial_sample(key, n, probs, *, shape, dtype):
    probs = _normalised(_stop(probs))
    event = shape + probs.shape[-1:]
    return jax.random.multinomial(key, n, probs, shape=event, dtype=dtype).astype(dtype)


def _multinomial_lp(x, n, probs):
    log_norm = n * jnp.log(jnp.sum(probs, -1))
    terms = jnp.sum(xlogy(x, probs) - gammaln(x + 1), -1)
    return gammaln(n + 1) + terms - log_norm


MULTINOMIAL = family(
    Distribution(
        name="multinomial",
        params=(Param("n", WHOLE, count=True), Param("probs", WEIGHTS, event_ndim=1)),
        support="count vectors summing to n",
        discrete=True,
        reparameterisation=None,
        sample=_multinomial_sample,
        log_prob=_multinomial_lp,
        proposal=_multinomial_proposal,
        event_ndim=1,
        event_shape=lambda ps: ps["probs"].shape[-1:],
    )
)


# --- randint ----------------------------------------------------------------------------

_INTEGER = Constraint("a whole number", lambda xp, v, ps: v == xp.round(v))


def _randint_sample(key, lo, hi, *, shape, dtype):
    int_dtype = jnp.int64 if jnp.dtype(dtype).itemsize == 8 else jnp.int32
    lo, hi = _stop(lo).astype(int_dtype), _stop(hi).astype(int_dtype)
    return jax.random.randint(key, shape, lo, hi, int_dtype).astype(dtype)


RANDINT = family(
    Distribution(
        name="randint",
        params=(
            Param("minval", _INTEGER, count=True),
            Param(
                "maxval",
                Constraint(
                    "a whole number greater than minval",
                    lambda xp, v, ps: (v == xp.round(v)) & (v > ps["minval"]),
                ),
                count=True,
            ),
        ),
        support="{minval, …, maxval - 1}",
        discrete=True,
        reparameterisation=None,
        sample=_randint_sample,
        log_prob=lambda x, lo, hi: jnp.broadcast_to(
            -jnp.log(hi - lo), jnp.broadcast_shapes(jnp.shape(x), jnp.shape(lo), jnp.shape(hi))
        ),
    )
)
