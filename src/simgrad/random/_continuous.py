"""The continuous families: one `Distribution` record each, reparameterised.

Samplers wrap `jax.random`, whose samplers have the right pathwise derivatives in their
parameters (location-scale or inverse-CDF transforms of a parameter-free draw; gamma, beta,
Dirichlet and Student-t by implicit reparameterisation of `jax.random.gamma`) — checked
against closed-form moments in tests/test_distributions.py. The one exception is
`truncated_normal`: `jax.random.truncated_normal` works in the erf domain and returns inf
for bounds past ~4 standard deviations in float32, so it is written here by the inverse CDF
on the tail nearer the interval. Log-densities are written out rather than wrapped from
numpyro: its log-probabilities use `jax.scipy.special.xlogy`, whose gradient is NaN at
``0 · log 0`` (numpyro 0.22: ``grad(Poisson(r).log_prob(0.))(0.)`` is NaN), and its
parameter checks do not say the valid range; simgrad's are gradient-safe (`xlogy` here).
TensorFlow Probability's JAX substrate (and distrax, built on it) would add a large
dependency for samplers that `jax.random` already has.
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, gammaln, log_ndtr, ndtr, ndtri

from .._src.program.sites import Constraint, Distribution, Param
from ._family import HALF_LINE, POSITIVE, REAL, family, greater_than, signed, xlog1py, xlogy

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _normal_lp(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - jnp.log(scale) - _HALF_LOG_2PI


def _normal_weak(key, x, params, dparams):
    r"""Mohamed et al. (2020, table 2): $\partial_\mu \mathcal N = \frac{1}{\sigma\sqrt{2\pi}}
    (\mu + \sigma W - (\mu - \sigma W))$, $W$ Weibull(scale √2, shape 2) shared by both
    sides; $\partial_\sigma \mathcal N = \frac1\sigma(\mathcal M - \mathcal N)$ with
    $M$ a double-sided Maxwell and the normal side $U M$ ($U$ uniform: a standard normal),
    their coupling."""
    (loc, scale), (dloc, dscale) = params, dparams
    loc, scale = jnp.broadcast_to(loc, x.shape), jnp.broadcast_to(scale, x.shape)
    k_w, k_m, k_s, k_u = jax.random.split(key, 4)
    w = jnp.sqrt(2 * jax.random.exponential(k_w, x.shape, x.dtype))
    maxwell = jnp.linalg.norm(jax.random.normal(k_m, (*x.shape, 3), x.dtype), axis=-1)
    maxwell = jnp.where(jax.random.bernoulli(k_s, 0.5, x.shape), maxwell, -maxwell)
    u = jax.random.uniform(k_u, x.shape, x.dtype)
    by_loc = signed(dloc / (scale * math.sqrt(2 * math.pi)), loc + scale * w, loc - scale * w)
    by_scale = signed(dscale / scale, loc + scale * maxwell, loc + scale * u * maxwell)
    return tuple(jnp.concatenate(pair, -1) for pair in zip(by_loc, by_scale, strict=True))


def _lognormal_weak(key, x, params, dparams):
    """The normal's sides, through exp: ``x = exp(N(mu, sigma²))``."""
    plus, minus, weights = _normal_weak(key, jnp.log(x), params, dparams)
    return jnp.exp(plus), jnp.exp(minus), weights


def _rate_weak(key, x, a, rate, drate):
    """Gamma(a, rate) in its rate: ∂ = (a/rate)(Gamma(a, rate) − Gamma(a + 1, rate)), the
    second side the draw plus an independent Exponential(rate) (shapes add)."""
    extra = jax.random.exponential(key, x.shape, x.dtype) / rate
    return signed(jnp.broadcast_to(a * drate / rate, x.shape), x, x + extra)


NORMAL = family(
    Distribution(
        name="normal",
        params=(Param("loc"), Param("scale", POSITIVE)),
        support="real",
        discrete=False,
        reparameterisation="location-scale",
        sample=lambda key, loc, scale, *, shape, dtype: (
            loc + scale * jax.random.normal(key, shape, dtype)
        ),
        log_prob=_normal_lp,
        bounds=REAL,
        cdf=lambda x, loc, scale: ndtr((x - loc) / scale),
        weak_derivative=_normal_weak,
    )
)

LOGNORMAL = family(
    Distribution(
        name="lognormal",
        params=(Param("mu"), Param("sigma", POSITIVE)),
        support="(0, inf)",
        discrete=False,
        reparameterisation="location-scale of log x",
        sample=lambda key, mu, sigma, *, shape, dtype: jnp.exp(
            mu + sigma * jax.random.normal(key, shape, dtype)
        ),
        log_prob=lambda x, mu, sigma: _normal_lp(jnp.log(x), mu, sigma) - jnp.log(x),
        bounds=HALF_LINE,
        weak_derivative=_lognormal_weak,
    )
)

UNIFORM = family(
    Distribution(
        name="uniform",
        params=(
            Param("minval", moves_support=True),
            Param("maxval", greater_than("minval"), moves_support=True),
        ),
        support="[minval, maxval)",
        discrete=False,
        reparameterisation="location-scale",
        sample=lambda key, lo, hi, *, shape, dtype: (
            lo + (hi - lo) * jax.random.uniform(key, shape, dtype)
        ),
        log_prob=lambda x, lo, hi: jnp.broadcast_to(
            -jnp.log(hi - lo), jnp.broadcast_shapes(jnp.shape(x), jnp.shape(lo), jnp.shape(hi))
        ),
        bounds=lambda lo, hi: (lo, hi),
        cdf=lambda x, lo, hi: jnp.clip((x - lo) / (hi - lo), 0, 1),
    )
)

EXPONENTIAL = family(
    Distribution(
        name="exponential",
        params=(Param("rate", POSITIVE),),
        support="[0, inf)",
        discrete=False,
        reparameterisation="scale",
        sample=lambda key, rate, *, shape, dtype: jax.random.exponential(key, shape, dtype) / rate,
        log_prob=lambda x, rate: jnp.log(rate) - rate * x,
        bounds=HALF_LINE,
        cdf=lambda x, rate: -jnp.expm1(-rate * jnp.maximum(x, 0)),
        weak_derivative=lambda key, x, ps, dps: _rate_weak(key, x, 1.0, ps[0], dps[0]),
    )
)

GAMMA = family(
    Distribution(
        name="gamma",
        params=(Param("a", POSITIVE), Param("rate", POSITIVE)),
        support="(0, inf)",
        discrete=False,
        reparameterisation="implicit (jax.random.gamma) in a, scale in rate",
        sample=lambda key, a, rate, *, shape, dtype: (
            jax.random.gamma(key, jnp.broadcast_to(a, shape), shape, dtype) / rate
        ),
        log_prob=lambda x, a, rate: xlogy(a, rate) + xlogy(a - 1, x) - rate * x - gammaln(a),
        bounds=HALF_LINE,
        # in the shape a, the draw is differentiated pathwise (implicit reparameterisation)
        weak_derivative=lambda key, x, ps, dps: _rate_weak(key, x, ps[0], ps[1], dps[1]),
        weak_params=("rate",),
    )
)

BETA = family(
    Distribution(
        name="beta",
        params=(Param("a", POSITIVE), Param("b", POSITIVE)),
        support="[0, 1]",
        discrete=False,
        reparameterisation="implicit (two gammas, jax.random.beta)",
        sample=lambda key, a, b, *, shape, dtype: jax.random.beta(key, a, b, shape, dtype),
        log_prob=lambda x, a, b: xlogy(a - 1, x) + xlog1py(b - 1, -x) - betaln(a, b),
        bounds=lambda a, b: (0.0, 1.0),
    )
)


def _dirichlet_lp(x, alpha):
    return (
        jnp.sum(xlogy(alpha - 1, x), -1) + gammaln(jnp.sum(alpha, -1)) - jnp.sum(gammaln(alpha), -1)
    )


DIRICHLET = family(
    Distribution(
        name="dirichlet",
        params=(Param("alpha", POSITIVE, event_ndim=1),),
        support="the probability simplex",
        discrete=False,
        reparameterisation="implicit (normalised gammas, jax.random.dirichlet)",
        sample=lambda key, alpha, *, shape, dtype: jax.random.dirichlet(key, alpha, shape, dtype),
        log_prob=_dirichlet_lp,
        event_ndim=1,
        event_shape=lambda ps: ps["alpha"].shape[-1:],
    )
)


def _t_lp(x, df, loc, scale):
    z = (x - loc) / scale
    return (
        gammaln((df + 1) / 2)
        - gammaln(df / 2)
        - 0.5 * jnp.log(df * math.pi)
        - jnp.log(scale)
        - (df + 1) / 2 * jnp.log1p(z**2 / df)
    )


T = family(
    Distribution(
        name="t",
        params=(Param("df", POSITIVE), Param("loc"), Param("scale", POSITIVE)),
        support="real",
        discrete=False,
        reparameterisation="implicit in df (a gamma, jax.random.t), location-scale",
        sample=lambda key, df, loc, scale, *, shape, dtype: (
            loc + scale * jax.random.t(key, jnp.broadcast_to(df, shape), shape, dtype)
        ),
        log_prob=_t_lp,
        bounds=REAL,
    )
)


def _laplace_cdf(x, loc, scale):
    u = (x - loc) / scale
    return jnp.where(u < 0, 0.5 * jnp.exp(jnp.minimum(u, 0)), 1 - 0.5 * jnp.exp(-jnp.maximum(u, 0)))


LAPLACE = family(
    Distribution(
        name="laplace",
        params=(Param("loc"), Param("scale", POSITIVE)),
        support="real",
        discrete=False,
        reparameterisation="location-scale",
        sample=lambda key, loc, scale, *, shape, dtype: (
            loc + scale * jax.random.laplace(key, shape, dtype)
        ),
        log_prob=lambda x, loc, scale: -jnp.abs(x - loc) / scale - jnp.log(2 * scale),
        bounds=REAL,
        cdf=_laplace_cdf,
    )
)


def _weibull_lp(x, scale, k):
    z = x / scale
    return jnp.log(k) - jnp.log(scale) + xlogy(k - 1, z) - z**k


WEIBULL_MIN = family(
    Distribution(
        name="weibull_min",
        params=(Param("scale", POSITIVE), Param("concentration", POSITIVE)),
        support="[0, inf)",
        discrete=False,
        reparameterisation="inverse CDF (jax.random.weibull_min)",
        sample=lambda key, scale, k, *, shape, dtype: jax.random.weibull_min(
            key, scale, k, shape, dtype
        ),
        log_prob=_weibull_lp,
        bounds=HALF_LINE,
    )
)


# --- truncated normal -------------------------------------------------------------------

_FAR = 1e4  # standard deviations that stand in for an infinite bound: Φ(-1e4) = 0 exactly


def _standard_bounds(lower, upper, loc, scale):
    """The bounds in standard units, on the side of 0 where the interval's mass is small.

    Returns ``(flip, lo, hi)`` with ``lo + hi <= 0`` (``flip``: the interval was mirrored),
    infinite bounds replaced by ±`_FAR` before any arithmetic so that no derivative is
    ``0 · inf``.
    """
    far = _FAR * scale
    lower = jnp.where(lower < loc - far, loc - far, lower)
    upper = jnp.where(upper > loc + far, loc + far, upper)
    a, b = (lower - loc) / scale, (upper - loc) / scale
    flip = a + b > 0
    return flip, jnp.where(flip, -b, a), jnp.where(flip, -a, b)


def _truncated_normal_sample(key, lower, upper, loc, scale, *, shape, dtype):
    flip, lo, hi = _standard_bounds(lower, upper, loc, scale)
    u = 1 - jax.random.uniform(key, shape, dtype)  # (0, 1]: never ndtri(0)
    cdf_lo = ndtr(lo)
    y = ndtri(cdf_lo + u * (ndtr(hi) - cdf_lo))
    y = jnp.where(y < lo, lo, jnp.where(y > hi, hi, y))  # rounding at the ends
    return loc + scale * jnp.where(flip, -y, y)


def _truncated_normal_lp(x, lower, upper, loc, scale):
    _, lo, hi = _standard_bounds(lower, upper, loc, scale)
    log_hi = log_ndtr(hi)
    log_mass = log_hi + jnp.log1p(-jnp.exp(log_ndtr(lo) - log_hi))  # log(Φ(hi) − Φ(lo))
    return _normal_lp(x, loc, scale) - log_mass


def _samplable(xp, upper, ps):
    """``upper > lower``, and the interval's mass on its small side is well above the
    dtype's smallest normal number (so that the inverse CDF can sample it)."""
    _, _, hi = _standard_bounds(ps["lower"], upper, ps["loc"], ps["scale"])
    info = jnp.finfo(jnp.result_type(upper))
    mass = (ps["scale"] <= 0) | (ndtr(hi) * info.eps > 1e6 * info.tiny)  # scale: its own check
    return (upper > ps["lower"]) & mass


TRUNCATED_NORMAL = family(
    Distribution(
        name="truncated_normal",
        params=(
            Param("lower", moves_support=True),
            Param(
                "upper",
                Constraint(
                    "greater than lower, with [lower, upper] reaching within ~10 (float32) or ~36 "
                    "(float64) standard deviations of loc (else its probability underflows)",
                    _samplable,
                ),
                moves_support=True,
            ),
            Param("loc"),
            Param("scale", POSITIVE),
        ),
        support="[lower, upper]",
        discrete=False,
        reparameterisation="inverse CDF",
        sample=_truncated_normal_sample,
        log_prob=_truncated_normal_lp,
    )
)


# --- multivariate normal ----------------------------------------------------------------


def _mvn_event(ps):
    d = ps["loc"].shape[-1:]
    if ps["scale_tril"].shape[-2:] != d * 2:
        raise ValueError(
            f"scale_tril must be square with the size of loc's last axis {d}, got "
            f"shape {ps['scale_tril'].shape}."
        )
    return d


def _mvn_sample(key, loc, scale_tril, *, shape, dtype):
    z = jax.random.normal(key, shape + loc.shape[-1:], dtype)
    return loc + jnp.einsum("...ij,...j->...i", jnp.tril(scale_tril), z)


def _mvn_lp(x, loc, scale_tril):
    tril = jnp.tril(scale_tril)
    batch = jnp.broadcast_shapes(x.shape[:-1], loc.shape[:-1], tril.shape[:-2])
    d = x.shape[-1]
    diff = jnp.broadcast_to(x - loc, batch + (d,))
    tril = jnp.broadcast_to(tril, batch + (d, d))
    z = jax.scipy.linalg.solve_triangular(tril, diff[..., None], lower=True)[..., 0]
    log_det = jnp.sum(jnp.log(jnp.diagonal(tril, axis1=-2, axis2=-1)), -1)
    return -0.5 * jnp.sum(z**2, -1) - log_det - d * _HALF_LOG_2PI


MULTIVARIATE_NORMAL = family(
    Distribution(
        name="multivariate_normal",
        params=(
            Param("loc", event_ndim=1),
            Param(
                "scale_tril",
                Constraint(
                    "a lower-triangular Cholesky factor with a positive diagonal (its "
                    "upper triangle is ignored)",
                    lambda xp, v, ps: xp.all(xp.diagonal(v, axis1=-2, axis2=-1) > 0, -1),
                ),
                event_ndim=2,
            ),
        ),
        support="real vectors",
        discrete=False,
        reparameterisation="location-scale (loc + scale_tril @ z)",
        sample=_mvn_sample,
        log_prob=_mvn_lp,
        event_ndim=1,
        event_shape=_mvn_event,
    )
)
