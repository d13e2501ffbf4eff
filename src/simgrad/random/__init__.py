r"""Random draws that simgrad's estimators can see: `jax.random` with distributions attached.

Each function mirrors its `jax.random` namesake — key first, then the distribution's
parameters, then the keyword-only ``shape`` and ``dtype`` (``normal(key, shape=(3,))``:
`jax.random`'s ``normal(key, (3,))`` would put the shape where the mean goes, so a tuple
or list there is refused) — and adds two things:

* **It is a site.** The draw is traced as a call named after its distribution, with its
  parameters as inputs, so program transformations find it (the score function adds
  $\nabla_\theta \log p(x;\theta)$; stochastic triples perturb it; the checker lists it)
  under `jit`, `vmap`, `lax.scan`, `lax.fori_loop`, `lax.while_loop` and `lax.cond`.
* **Its gradient is the textbook one.** Continuous draws are reparameterised — pathwise
  gradients flow through them (``loc + scale * z``; gamma, beta, Dirichlet and Student-t
  by implicit reparameterisation; the truncated normal by its inverse CDF). Discrete draws
  return floats holding integers, so ``x + 2 * b - 1`` just works, and have a pathwise
  derivative of zero: the score function or stochastic triples see them.

Families: continuous `normal`, `lognormal`, `uniform`, `exponential`, `gamma`, `beta`,
`dirichlet`, `t`, `laplace`, `weibull_min`, `truncated_normal`, `multivariate_normal`;
discrete `bernoulli`, `categorical` (logits or probabilities), `poisson`, `binomial`,
`negative_binomial`, `geometric`, `multinomial`, `randint`, and `choice` (a categorical or
randint index into an array). Each is one record (`Distribution`) in one registry:
sampler, gradient-safe log-probability, parameter validation, support, how it is
reparameterised, its stochastic-triples proposal.

Parameters broadcast against each other and against ``shape``, the *batch* shape; a
multivariate draw (`dirichlet`, `multinomial`, `multivariate_normal`) has shape
``shape + (K,)``. ``dtype`` defaults to the floating dtype of the parameters (float64 only
when they are float64, or x64 is on and they are Python numbers). Invalid parameters
(``p`` outside [0, 1], a rate that is not positive) raise ``ValueError`` naming the
parameter and its valid range when they are concrete, and an error at run time when
traced — never a silent NaN. Inside `sg.gradient` (and `sg.expectation`, `sg.optimize`) a
traced parameter is checked without a host callback, so that JAX can cache the compiled
program on disk: a sample whose draw had an invalid parameter fails, and the
`sg.SimulationError` names the parameter and its range.

>>> import jax, simgrad as sg
>>> x = sg.random.poisson(jax.random.key(0), 3.0, shape=(4,))
>>> x.dtype.kind, bool((x == x.round()).all())
('f', True)
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from jaxtyping import Array

from .._types import Key, Shape
from . import _jax  # noqa: F401  (jax.random samplers become draw sites)
from ._continuous import (
    BETA,
    DIRICHLET,
    EXPONENTIAL,
    GAMMA,
    LAPLACE,
    LOGNORMAL,
    MULTIVARIATE_NORMAL,
    NORMAL,
    TRUNCATED_NORMAL,
    UNIFORM,
    WEIBULL_MIN,
    T,
)
from ._discrete import (
    BERNOULLI,
    BINOMIAL,
    CATEGORICAL,
    CATEGORICAL_PROBS,
    GEOMETRIC,
    MULTINOMIAL,
    NEGATIVE_BINOMIAL,
    POISSON,
    RANDINT,
)
from ._family import draw, refuse_sequence

__all__ = [
    "bernoulli",
    "beta",
    "binomial",
    "categorical",
    "choice",
    "dirichlet",
    "exponential",
    "gamma",
    "geometric",
    "laplace",
    "lognormal",
    "multinomial",
    "multivariate_normal",
    "negative_binomial",
    "normal",
    "poisson",
    "randint",
    "t",
    "truncated_normal",
    "uniform",
    "weibull_min",
]


# --- continuous -------------------------------------------------------------------------


def normal(
    key: Key,
    loc: ArrayLike = 0.0,
    scale: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Normal draws $x = \mathrm{loc} + \mathrm{scale}\cdot z$, $z \sim N(0, 1)$; reparameterised.

    $\log p = -\tfrac12 ((x - \mathrm{loc})/\mathrm{scale})^2 - \log \mathrm{scale}
    - \tfrac12 \log 2\pi$. ``scale`` must be positive.

    >>> import jax, simgrad as sg
    >>> sg.random.normal(jax.random.key(0), 1.0, 2.0, shape=(3,)).shape
    (3,)
    """
    return draw(NORMAL, "normal", key, {"loc": loc, "scale": scale}, shape, dtype)


def lognormal(
    key: Key,
    mu: ArrayLike = 0.0,
    sigma: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Lognormal draws $x = e^{\mu + \sigma z}$, $z \sim N(0, 1)$; reparameterised.

    Note the parameters are those of $\log x$ (unlike `jax.random.lognormal`, which has
    only ``sigma``). ``sigma`` must be positive.
    """
    return draw(LOGNORMAL, "lognormal", key, {"mu": mu, "sigma": sigma}, shape, dtype)


def uniform(
    key: Key,
    minval: ArrayLike = 0.0,
    maxval: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Uniform draws on $[\mathrm{minval}, \mathrm{maxval})$; reparameterised.

    The support moves with the bounds, so the score function alone is biased for
    θ-dependent bounds and `sg.ScoreFunction` refuses them; the pathwise and hybrid
    estimators handle them. ``maxval`` must exceed ``minval``.
    """
    return draw(UNIFORM, "uniform", key, {"minval": minval, "maxval": maxval}, shape, dtype)


def exponential(
    key: Key, rate: ArrayLike = 1.0, *, shape: Shape | None = None, dtype: DTypeLike | None = None
) -> Array:
    r"""Exponential draws with the given ``rate`` (mean $1/\mathrm{rate}$); reparameterised.

    $x = E/\mathrm{rate}$, $E \sim \mathrm{Exp}(1)$; $\log p = \log \mathrm{rate} -
    \mathrm{rate}\, x$. ``rate`` must be positive.
    """
    return draw(EXPONENTIAL, "exponential", key, {"rate": rate}, shape, dtype)


def gamma(
    key: Key,
    a: ArrayLike,
    rate: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Gamma draws with shape ``a`` and ``rate``; reparameterised (implicitly in ``a``).

    $\log p = a \log \mathrm{rate} + (a-1)\log x - \mathrm{rate}\,x - \log\Gamma(a)$.
    Both parameters must be positive.
    """
    return draw(GAMMA, "gamma", key, {"a": a, "rate": rate}, shape, dtype)


def beta(
    key: Key,
    a: ArrayLike,
    b: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Beta draws on [0, 1], mean $a/(a+b)$; reparameterised implicitly (two gammas).

    $\log p = (a-1)\log x + (b-1)\log(1-x) - \log B(a, b)$. Both must be positive.
    """
    return draw(BETA, "beta", key, {"a": a, "b": b}, shape, dtype)


def dirichlet(
    key: Key, alpha: ArrayLike, *, shape: Shape | None = None, dtype: DTypeLike | None = None
) -> Array:
    r"""Dirichlet draws on the simplex (last axis of ``alpha``); reparameterised implicitly.

    $\log p = \sum_j (\alpha_j - 1)\log x_j + \log\Gamma(\sum_j\alpha_j) -
    \sum_j\log\Gamma(\alpha_j)$. Every $\alpha_j$ must be positive. The draws have shape
    ``shape + alpha.shape[-1:]``.
    """
    return draw(DIRICHLET, "dirichlet", key, {"alpha": alpha}, shape, dtype)


def t(
    key: Key,
    df: ArrayLike,
    loc: ArrayLike = 0.0,
    scale: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Student-t draws with ``df`` degrees of freedom, ``loc + scale * T``; reparameterised.

    Implicitly in ``df`` (through the gamma inside `jax.random.t`). $\log p =
    \log\Gamma(\tfrac{\nu+1}2) - \log\Gamma(\tfrac\nu2) - \tfrac12\log(\nu\pi) - \log s
    - \tfrac{\nu+1}2\log(1 + z^2/\nu)$, $z = (x - \mathrm{loc})/s$. ``df`` and ``scale``
    must be positive.
    """
    return draw(T, "t", key, {"df": df, "loc": loc, "scale": scale}, shape, dtype)


def laplace(
    key: Key,
    loc: ArrayLike = 0.0,
    scale: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Laplace (double-exponential) draws $\mathrm{loc} + \mathrm{scale}\cdot L$; reparameterised.

    $\log p = -|x - \mathrm{loc}|/\mathrm{scale} - \log(2\,\mathrm{scale})$. ``scale`` must
    be positive.
    """
    return draw(LAPLACE, "laplace", key, {"loc": loc, "scale": scale}, shape, dtype)


def weibull_min(
    key: Key,
    scale: ArrayLike,
    concentration: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Weibull draws $x = \lambda (-\log(1 - U))^{1/k}$; reparameterised (inverse CDF).

    ``scale`` $\lambda$ and ``concentration`` $k$, as `jax.random.weibull_min`;
    $\log p = \log k - \log\lambda + (k-1)\log(x/\lambda) - (x/\lambda)^k$. Both must be
    positive.
    """
    params = {"scale": scale, "concentration": concentration}
    return draw(WEIBULL_MIN, "weibull_min", key, params, shape, dtype)


def truncated_normal(
    key: Key,
    lower: ArrayLike,
    upper: ArrayLike,
    loc: ArrayLike = 0.0,
    scale: ArrayLike = 1.0,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Normal(``loc``, ``scale``) draws conditioned on $[\mathrm{lower}, \mathrm{upper}]$.

    Reparameterised by the inverse CDF, $x = \mathrm{loc} + \mathrm{scale}\,
    \Phi^{-1}(\Phi(a) + U(\Phi(b) - \Phi(a)))$ with $a, b$ the bounds in standard units
    (computed on the tail nearer the interval, so that bounds far out stay accurate).
    ``lower`` and ``upper`` are in the units of $x$ and may be infinite. The support
    moves with the bounds: `sg.ScoreFunction` refuses θ-dependent bounds (the pathwise and
    hybrid estimators handle them). $\log p = \log \varphi((x - \mathrm{loc})/s) - \log s
    - \log(\Phi(b) - \Phi(a))$.
    """
    params = {"lower": lower, "upper": upper, "loc": loc, "scale": scale}
    return draw(TRUNCATED_NORMAL, "truncated_normal", key, params, shape, dtype)


def multivariate_normal(
    key: Key,
    loc: ArrayLike,
    scale_tril: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Multivariate normal draws $x = \mathrm{loc} + L z$, with $L$ the Cholesky factor.

    ``scale_tril`` is $L$ (lower triangular, positive diagonal; the covariance is $LL^T$ —
    for a covariance ``cov`` pass ``jnp.linalg.cholesky(cov)``). Reparameterised.
    $\log p = -\tfrac12\|L^{-1}(x - \mathrm{loc})\|^2 - \sum_i \log L_{ii} -
    \tfrac d2\log 2\pi$. The draws have shape ``shape + loc.shape[-1:]``.
    """
    params = {"loc": loc, "scale_tril": scale_tril}
    return draw(MULTIVARIATE_NORMAL, "multivariate_normal", key, params, shape, dtype)


# --- discrete ---------------------------------------------------------------------------


def bernoulli(
    key: Key, p: ArrayLike = 0.5, *, shape: Shape | None = None, dtype: DTypeLike | None = None
) -> Array:
    r"""Bernoulli draws: 1.0 with probability ``p``, else 0.0. Discrete: zero pathwise gradient.

    $\log p(x) = x \log p + (1 - x)\log(1 - p)$. ``p`` must lie in [0, 1]. The draws
    are floats holding 0 or 1, of ``dtype`` (floating; by default the parameters').
    """
    return draw(BERNOULLI, "bernoulli", key, {"p": p}, shape, dtype)


def categorical(
    key: Key,
    logits: ArrayLike | None = None,
    axis: int = -1,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
    probs: ArrayLike | None = None,
) -> Array:
    r"""Category indices (as floats), with probabilities ``softmax(logits)`` or ``probs``.

    Give exactly one of ``logits`` (any reals; ``-inf`` masks a category out, as in an
    action mask) and ``probs`` (non-negative weights along ``axis``, normalised by their
    sum — so a zero is a category that cannot occur, with a gradient that stays finite).
    Discrete: zero pathwise gradient; stochastic triples move a draw to the next category
    that can occur, skipping masked ones. $\log p(x) = \mathrm{log\_softmax}(\mathrm{logits})_x$
    or $\log(\mathrm{probs}_x / \sum_j \mathrm{probs}_j)$. ``shape`` is the batch shape (the
    parameters' shape without ``axis`` by default). The draws are floats holding indices,
    of ``dtype`` (floating; by default the parameters'): ``x.astype(int)`` to index.

    >>> import jax, jax.numpy as jnp, simgrad as sg
    >>> logits = jnp.where(jnp.array([True, False, True]), 0.0, -jnp.inf)  # 1 is masked
    >>> x = sg.random.categorical(jax.random.key(0), logits, shape=(100,))
    >>> sorted(set(x.tolist()))
    [0.0, 2.0]
    """
    name, value = ("logits", logits) if probs is None else ("probs", probs)
    if value is None or (logits is not None and probs is not None):
        raise TypeError("simgrad.random.categorical: give exactly one of logits= and probs=.")
    if isinstance(value, (list, tuple)):
        refuse_sequence("categorical", name, value, [])
    if getattr(value, "ndim", 0) < 1:
        raise ValueError(f"simgrad.random.categorical: {name} must have at least one axis.")
    if isinstance(value, jax.Array):
        value = jnp.moveaxis(value, axis, -1)
    else:
        value = np.moveaxis(np.asanyarray(value), axis, -1)
    record = CATEGORICAL if probs is None else CATEGORICAL_PROBS
    return draw(record, "categorical", key, {name: value}, shape, dtype)


def poisson(
    key: Key, rate: ArrayLike, *, shape: Shape | None = None, dtype: DTypeLike | None = None
) -> Array:
    r"""Poisson counts (as floats) with mean ``rate``. Discrete: zero pathwise gradient.

    $\log p(x) = x \log \mathrm{rate} - \mathrm{rate} - \log x!$. ``rate`` must be
    non-negative and finite.
    The draws are floats holding whole numbers, of ``dtype`` (floating; by default the
    parameters').
    """
    return draw(POISSON, "poisson", key, {"rate": rate}, shape, dtype)


def binomial(
    key: Key,
    n: ArrayLike,
    p: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Binomial counts (as floats): successes in ``n`` trials of probability ``p``. Discrete.

    $\log p(x) = \log\binom{n}{x} + x\log p + (n - x)\log(1 - p)$. ``n`` must be a
    non-negative whole number, ``p`` in [0, 1]. ``n`` is a count, not a parameter to
    differentiate: every estimator treats it as a constant.
    The draws are floats holding whole numbers, of ``dtype`` (floating; by default the
    parameters').
    """
    return draw(BINOMIAL, "binomial", key, {"n": n, "p": p}, shape, dtype)


def negative_binomial(
    key: Key,
    n: ArrayLike,
    p: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Negative binomial counts (as floats): failures before the ``n``-th success. Discrete.

    As `scipy.stats.nbinom`: success probability ``p`` in (0, 1], ``n`` > 0 (real: the
    Gamma–Poisson mixture $X \sim \mathrm{Poisson}(G(1-p)/p)$, $G \sim \mathrm{Gamma}(n)$,
    which is how it is drawn). Mean $n(1-p)/p$. $\log p(x) = \log\Gamma(x + n) -
    \log\Gamma(n) - \log x! + n\log p + x\log(1 - p)$. Stochastic triples perturb ``p``
    only; a θ-dependent ``n`` is for the score function (`sg.ScoreFunction`, `sg.Hybrid`).
    The draws are floats holding whole numbers, of ``dtype`` (floating; by default the
    parameters').
    """
    return draw(NEGATIVE_BINOMIAL, "negative_binomial", key, {"n": n, "p": p}, shape, dtype)


def geometric(
    key: Key, p: ArrayLike, *, shape: Shape | None = None, dtype: DTypeLike | None = None
) -> Array:
    r"""Geometric draws (as floats): the number of trials up to the first success, 1, 2, …

    Discrete. $\log p(x) = (x - 1)\log(1 - p) + \log p$. ``p`` must lie in (0, 1].
    The draws are floats holding whole numbers, of ``dtype`` (floating; by default the
    parameters').
    """
    return draw(GEOMETRIC, "geometric", key, {"p": p}, shape, dtype)


def multinomial(
    key: Key,
    n: ArrayLike,
    probs: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Multinomial count vectors (as floats): ``n`` draws over the categories of ``probs``.

    ``probs``: non-negative weights on the last axis, normalised by their sum. The draws
    have shape ``shape + probs.shape[-1:]`` (``shape`` is the batch shape, unlike
    `jax.random.multinomial`'s). $\log p(x) = \log n! - \sum_j \log x_j! + \sum_j x_j
    \log p_j$. ``n`` must be a non-negative whole number (a count: not differentiated).
    The counts are floats holding whole numbers, of ``dtype`` (floating; by default the
    parameters').
    """
    return draw(MULTINOMIAL, "multinomial", key, {"n": n, "probs": probs}, shape, dtype)


def randint(
    key: Key,
    minval: ArrayLike,
    maxval: ArrayLike,
    *,
    shape: Shape | None = None,
    dtype: DTypeLike | None = None,
) -> Array:
    r"""Uniform integers (as floats) in $\{\mathrm{minval}, …, \mathrm{maxval} - 1\}$.

    The bounds are whole numbers (``maxval > minval``) and, like binomial's ``n``, counts
    rather than parameters to differentiate: the expectation is piecewise constant in
    them, so its derivative in them is zero wherever it exists, and that is what every
    estimator returns. For probabilities that move with θ use `categorical`.
    $\log p(x) = -\log(\mathrm{maxval} - \mathrm{minval})$. The draws are floats holding
    whole numbers (not `jax.random.randint`'s ints), of ``dtype`` (floating; by default
    the parameters').
    """
    return draw(RANDINT, "randint", key, {"minval": minval, "maxval": maxval}, shape, dtype)


def choice(
    key: Key,
    a: ArrayLike,
    *,
    shape: Shape | None = None,
    replace: bool = True,
    p: ArrayLike | None = None,
    axis: int = 0,
) -> Array:
    r"""Elements of ``a`` drawn with replacement, uniformly or with probabilities ``p``.

    As `jax.random.choice`: ``a`` is an array (draws are slices along ``axis``) or an int
    $n$ (draws from $0, …, n-1$, as floats). The index is a `categorical` draw (with
    ``probs=p``) or a `randint` draw, so estimators see it: the score function and
    stochastic triples differentiate through ``p``, and pathwise gradients flow into the
    values of ``a``. Without replacement the draws are not independent; use
    `jax.random.choice` (estimators do not see it) or draw indices yourself. The draws have
    ``a``'s dtype, or for an int ``a`` are floats holding whole numbers (the dtype of ``p``;
    by default the default float).
    """
    if not replace:
        raise ValueError(
            "simgrad.random.choice: replace=False is not supported (the draws would not be "
            "independent draws of one distribution). Use jax.random.choice, which the "
            "estimators cannot see, or draw the indices one at a time."
        )
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        n, values = int(a), None
    else:
        values = a if isinstance(a, jax.Array) else jnp.asarray(a)
        if values.ndim < 1:
            raise ValueError(
                "simgrad.random.choice: a must be an int or have an axis to draw from."
            )
        n = values.shape[axis]
    if n < 1:
        raise ValueError(f"simgrad.random.choice: there is nothing to draw from (a={a!r}).")
    if p is None:
        index = draw(RANDINT, "choice", key, {"minval": 0, "maxval": n}, shape, None)
    else:
        if isinstance(p, (list, tuple)):
            refuse_sequence("choice", "p", p, [])
        if getattr(p, "shape", np.shape(p)) != (n,):
            raise ValueError(
                f"simgrad.random.choice: p must have shape ({n},), one probability per "
                f"element of a along axis {axis}, got shape {np.shape(p)}."
            )
        if shape is None:
            shape = ()
        index = draw(CATEGORICAL_PROBS, "choice", key, {"probs": p}, shape, None)
    if values is None:
        return index
    return jnp.take(values, index.astype(jnp.int32), axis=axis)
