"""`jax.random`'s samplers as draw sites: one record per sampler, read like simgrad's own.

`jax.random.normal(key, shape)` traces as a `jax.jit` named ``_normal`` whose inputs are
the key (and, for ``uniform``, ``gamma``, ``bernoulli``…, the distribution's parameters),
so the program core can see it as a draw (`register_sampler`). Each record here says what
that draw is: its parameters in the order the `jit` takes them, its log-probability, its
support — the same facts as simgrad's own records, which they reuse. tests/test_random.py
checks every name and input layout on the installed JAX; a sampler traced differently (or
not listed) is not a site, and the estimators that must see draws refuse it.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from .._src.program.sites import Distribution, Param, register_sampler
from ._continuous import BETA, EXPONENTIAL, GAMMA, LAPLACE, NORMAL, UNIFORM, _laplace_cdf
from ._discrete import BERNOULLI, POISSON
from ._family import HALF_LINE, REAL


def _standard(name, base, sample, log_prob, bounds, cdf, reparameterisation="location-scale"):
    return Distribution(
        name=f"jax.random.{name}",
        params=(),
        support=base.support if base is not None else "real",
        discrete=False,
        reparameterisation=reparameterisation,
        sample=sample,
        log_prob=log_prob,
        bounds=bounds,
        cdf=cdf,
    )


def _logistic_lp(x):
    return -x - 2 * jax.nn.softplus(-x)


def _gumbel_lp(x):
    return -x - jnp.exp(-x)


JAX_SAMPLERS: dict[str, Distribution] = {
    "_normal": _standard(
        "normal", NORMAL, lambda key, *, shape, dtype: jax.random.normal(key, shape, dtype),
        lambda x: NORMAL.log_prob(x, 0.0, 1.0), REAL, ndtr,
    ),
    "_exponential": _standard(
        "exponential", EXPONENTIAL,
        lambda key, *, shape, dtype: jax.random.exponential(key, shape, dtype),
        lambda x: EXPONENTIAL.log_prob(x, 1.0), HALF_LINE, lambda x: -jnp.expm1(-jnp.maximum(x, 0)),
        "scale",
    ),
    "_laplace": _standard(
        "laplace", LAPLACE, lambda key, *, shape, dtype: jax.random.laplace(key, shape, dtype),
        lambda x: LAPLACE.log_prob(x, 0.0, 1.0), REAL, lambda x: _laplace_cdf(x, 0.0, 1.0),
    ),
    "_logistic": _standard(
        "logistic", None, lambda key, *, shape, dtype: jax.random.logistic(key, shape, dtype),
        _logistic_lp, REAL, jax.nn.sigmoid,
    ),
    "_gumbel": _standard(
        "gumbel", None, lambda key, *, shape, dtype: jax.random.gumbel(key, shape, dtype),
        _gumbel_lp, REAL, lambda x: jnp.exp(-jnp.exp(-x)),
    ),
    "_uniform": Distribution(
        name="jax.random.uniform",
        params=(Param("minval", moves_support=True), Param("maxval", moves_support=True)),
        support=UNIFORM.support,
        discrete=False,
        reparameterisation="location-scale",
        sample=lambda key, lo, hi, *, shape, dtype: jax.random.uniform(key, shape, dtype, lo, hi),
        log_prob=UNIFORM.log_prob,
        bounds=UNIFORM.bounds,
        cdf=UNIFORM.cdf,
    ),
    "_gamma": Distribution(
        name="jax.random.gamma",
        params=(Param("a"),),
        support=GAMMA.support,
        discrete=False,
        reparameterisation="implicit (jax.random.gamma)",
        sample=lambda key, a, *, shape, dtype: jax.random.gamma(key, a, shape, dtype),
        log_prob=lambda x, a: GAMMA.log_prob(x, a, 1.0),
        bounds=HALF_LINE,
    ),
    "_beta": Distribution(
        name="jax.random.beta",
        params=(Param("a"), Param("b")),
        support=BETA.support,
        discrete=False,
        reparameterisation="implicit (two gammas)",
        sample=lambda key, a, b, *, shape, dtype: jax.random.beta(key, a, b, shape, dtype),
        log_prob=BETA.log_prob,
        bounds=BETA.bounds,
    ),
    # Discrete draws keep jax's dtypes (bool, int): scored by their log-probability.
    "_bernoulli": Distribution(
        name="jax.random.bernoulli",
        params=(Param("p"),),
        support=BERNOULLI.support,
        discrete=True,
        reparameterisation=None,
        sample=lambda key, p, *, shape, dtype: jax.random.bernoulli(key, p, shape),
        log_prob=lambda x, p: BERNOULLI.log_prob(x.astype(jnp.result_type(p)), p),
    ),
    "_poisson": Distribution(
        name="jax.random.poisson",
        params=(Param("rate"),),
        support=POISSON.support,
        discrete=True,
        reparameterisation=None,
        sample=lambda key, rate, *, shape, dtype: jax.random.poisson(key, rate, shape),
        log_prob=lambda x, rate: POISSON.log_prob(x.astype(jnp.result_type(rate)), rate),
    ),
}  # fmt: skip
"""`jax.random` samplers by the name of the `jit` they trace as."""

for _name, _distribution in JAX_SAMPLERS.items():
    register_sampler(_name, _distribution)
