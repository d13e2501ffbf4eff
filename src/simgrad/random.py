r"""Random draws that simgrad's estimators can see: `jax.random` with distributions attached.

Each function mirrors its `jax.random` namesake — key first, then the distribution's
parameters, then an optional ``shape`` and ``dtype`` — and adds two things:

* **It is a site.** The draw is traced as a call named after its distribution, with its
  parameters as inputs, so program transformations find it (the score function adds
  $\nabla_\theta \log p(x;\theta)$; the checker lists it) under `jit`, `vmap`, `lax.scan`,
  `lax.fori_loop`, `lax.while_loop` and `lax.cond`.
* **Its gradient is the textbook one.** Continuous draws are reparameterised — pathwise
  gradients flow through them (``loc + scale * z``; `gamma` by implicit
  reparameterisation). Discrete draws (`bernoulli`, `categorical`, `poisson`, `binomial`,
  `geometric`) return floats holding integers, so ``x + 2 * b - 1`` just works, and have a
  pathwise derivative of zero: the score function or the hybrid estimator sees them.

Parameters broadcast against each other and against ``shape``. ``dtype`` defaults to the
floating dtype of the parameters (float64 only when they are float64 or x64 is on and they
are Python numbers). Invalid parameters (``p`` outside [0, 1], a rate that is not
positive) raise ``ValueError`` when they are concrete and an error at run time when traced
— never a silent NaN.

>>> import jax, simgrad as sg
>>> x = sg.random.poisson(jax.random.key(0), 3.0, shape=(4,))
>>> x.dtype.kind, bool((x == x.round()).all())
('f', True)
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy

from ._src.program.sites import SITE_PREFIX, Distribution, register

__all__ = [
    "bernoulli",
    "binomial",
    "categorical",
    "exponential",
    "gamma",
    "geometric",
    "lognormal",
    "normal",
    "poisson",
    "uniform",
]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# --- log-probabilities (elementwise, broadcasting) --------------------------------------


def _normal_lp(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - jnp.log(scale) - _HALF_LOG_2PI


def _lognormal_lp(x, mu, sigma):
    return _normal_lp(jnp.log(x), mu, sigma) - jnp.log(x)


def _uniform_lp(x, minval, maxval):
    return jnp.broadcast_to(-jnp.log(maxval - minval), jnp.broadcast_shapes(x.shape))


def _exponential_lp(x, rate):
    return jnp.log(rate) - rate * x


def _gamma_lp(x, a, rate):
    return xlogy(a, rate) + xlogy(a - 1, x) - rate * x - gammaln(a)


def _xlogy(x, y):
    """``x log y`` with ``0 log 0 = 0`` *and* a zero derivative there (not ``0/0``).

    `jax.scipy.special.xlogy` gets the value right but its derivative in ``y`` is
    ``x / y = 0/0`` at ``x = y = 0`` — a NaN gradient whenever a probability or rate hits 0
    (an epidemic that died out). The double ``where`` keeps both clean.
    """
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log(jnp.where(zero, 1.0, y)))


def _xlog1py(x, y):
    """``x log(1 + y)``, with the same care at ``x = 0``, ``y = -1``."""
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log1p(jnp.where(zero, 0.0, y)))


def _bernoulli_lp(x, p):
    return _xlogy(x, p) + _xlog1py(1 - x, -p)


def _categorical_lp(x, logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_p = jnp.broadcast_to(log_p, x.shape + log_p.shape[-1:])
    index = x.astype(jnp.int32)[..., None]
    return jnp.take_along_axis(log_p, index, axis=-1)[..., 0]


def _poisson_lp(x, rate):
    return _xlogy(x, rate) - rate - gammaln(x + 1)


def _binomial_lp(x, n, p):
    n = jax.lax.stop_gradient(n)  # the number of trials is a count, not a parameter to tune
    log_choose = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
    return log_choose + _xlogy(x, p) + _xlog1py(n - x, -p)


def _geometric_lp(x, p):
    return _xlog1py(x - 1, -p) + jnp.log(p)


# --- samplers, each one traced as a named site ------------------------------------------


def _normal(key, loc, scale, *, shape, dtype):
    return loc + scale * jax.random.normal(key, shape, dtype)


def _lognormal(key, mu, sigma, *, shape, dtype):
    return jnp.exp(mu + sigma * jax.random.normal(key, shape, dtype))


def _uniform(key, minval, maxval, *, shape, dtype):
    return minval + (maxval - minval) * jax.random.uniform(key, shape, dtype)


def _exponential(key, rate, *, shape, dtype):
    return jax.random.exponential(key, shape, dtype) / rate


def _gamma(key, a, rate, *, shape, dtype):
    # jax.random.gamma differentiates through its shape parameter (implicit reparam.).
    return jax.random.gamma(key, jnp.broadcast_to(a, shape), shape, dtype) / rate


def _bernoulli(key, p, *, shape, dtype):
    return jax.random.bernoulli(key, jax.lax.stop_gradient(p), shape).astype(dtype)


def _categorical(key, logits, *, shape, dtype):
    logits = jax.lax.stop_gradient(logits)
    return jax.random.categorical(key, logits, axis=-1, shape=shape).astype(dtype)


def _poisson(key, rate, *, shape, dtype):
    return jax.random.poisson(key, jax.lax.stop_gradient(rate), shape).astype(dtype)


def _binomial(key, n, p, *, shape, dtype):
    n, p = jax.lax.stop_gradient(n), jax.lax.stop_gradient(p)
    return jax.random.binomial(key, n, p, shape, dtype).astype(dtype)


def _geometric(key, p, *, shape, dtype):
    return jax.random.geometric(key, jax.lax.stop_gradient(p), shape).astype(dtype)


def _make_site(name, sampler, log_prob, param_names, *, discrete, support=False):
    register(
        Distribution(
            name=name,
            param_names=param_names,
            discrete=discrete,
            reparameterised=not discrete,
            log_prob=log_prob,
            support_depends_on_params=support,
        )
    )

    def site(key, *params, shape, dtype):
        return sampler(key, *params, shape=shape, dtype=dtype)

    site.__name__ = site.__qualname__ = SITE_PREFIX + name
    return jax.jit(site, static_argnames=("shape", "dtype"))


_SITES = {
    "normal": _make_site("normal", _normal, _normal_lp, ("loc", "scale"), discrete=False),
    "lognormal": _make_site(
        "lognormal", _lognormal, _lognormal_lp, ("mu", "sigma"), discrete=False
    ),
    "uniform": _make_site(
        "uniform", _uniform, _uniform_lp, ("minval", "maxval"), discrete=False, support=True
    ),
    "exponential": _make_site(
        "exponential", _exponential, _exponential_lp, ("rate",), discrete=False
    ),
    "gamma": _make_site("gamma", _gamma, _gamma_lp, ("a", "rate"), discrete=False),
    "bernoulli": _make_site("bernoulli", _bernoulli, _bernoulli_lp, ("p",), discrete=True),
    "categorical": _make_site(
        "categorical", _categorical, _categorical_lp, ("logits",), discrete=True
    ),
    "poisson": _make_site("poisson", _poisson, _poisson_lp, ("rate",), discrete=True),
    "binomial": _make_site("binomial", _binomial, _binomial_lp, ("n", "p"), discrete=True),
    "geometric": _make_site("geometric", _geometric, _geometric_lp, ("p",), discrete=True),
}


# --- argument checking ------------------------------------------------------------------


def _check_key(fn: str, key) -> None:
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return
    if dtype == jnp.uint32 and shape == (2,):
        return
    raise TypeError(
        f"simgrad.random.{fn}: key must be one PRNG key such as jax.random.key(0), got "
        f"{type(key).__name__}{'' if shape is None else f' of shape {shape}'}. "
        "For several draws pass shape=..., or split the key."
    )


def _prepare(fn: str, params: dict, shape, dtype, *, event_dims: int = 0):
    """Cast parameters to one floating dtype and settle the output shape."""
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(
            value, (int, float, np.ndarray, np.generic, jax.Array)
        ):
            raise TypeError(
                f"simgrad.random.{fn}: {name} must be a number or an array, "
                f"got {type(value).__name__}."
            )
    if dtype is None:  # Python numbers are weakly typed: they follow the arrays' dtype
        floats = [
            v
            for v in params.values()
            if isinstance(v, float) or jnp.issubdtype(getattr(v, "dtype", int), jnp.floating)
        ]
        dtype = jnp.result_type(*floats) if floats else jnp.asarray(0.0).dtype
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"simgrad.random.{fn}: dtype must be floating (discrete draws return floats "
            f"holding integers), got {dtype}."
        )
    # Concrete parameters stay NumPy, so that their validity is checked now, for free.
    arrays = {
        k: v.astype(dtype) if isinstance(v, jax.Array) else np.asarray(v, dtype)
        for k, v in params.items()
    }
    batch_shapes = [a.shape[: a.ndim - event_dims] for a in arrays.values()]
    try:
        batch = jnp.broadcast_shapes(*batch_shapes)
    except ValueError:
        raise ValueError(
            f"simgrad.random.{fn}: the parameters' shapes {batch_shapes} do not broadcast together."
        ) from None
    if shape is None:
        shape = batch
    else:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise TypeError(
                f"simgrad.random.{fn}: shape must be a tuple of non-negative ints, e.g. "
                f"shape=(3,), got {shape!r}."
            )
        shape = tuple(int(d) for d in shape)
        try:
            fits = jnp.broadcast_shapes(shape, batch) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"simgrad.random.{fn}: shape={shape} cannot hold parameters of shape {batch}; "
                f"pass shape=None or a shape that the parameters broadcast to."
            )
    return arrays, shape, dtype


def _xp(a):
    """NumPy for concrete NumPy parameters (checked now), jax.numpy for the rest."""
    return np if isinstance(a, np.ndarray) else jnp


def _require(fn: str, value, ok, message: str):
    """``ValueError`` now if ``value`` is concrete and not ``ok``; else a run-time check."""
    text = f"simgrad.random.{fn}: {message}"
    if isinstance(ok, jax.core.Tracer):
        return eqx.error_if(value, jnp.logical_not(jnp.all(ok)), text)
    if not bool(np.all(ok)):
        raise ValueError(f"{text} (got {np.asarray(value)}).")
    return value


def _draw(fn: str, key, params: dict, shape, dtype, *, event_dims: int = 0):
    arrays, shape, dtype = _prepare(fn, params, shape, dtype, event_dims=event_dims)
    return arrays, shape, dtype, lambda *ps: _SITES[fn](key, *ps, shape=shape, dtype=dtype)


# --- the public draws -------------------------------------------------------------------


def normal(key, loc=0.0, scale=1.0, shape=None, dtype=None):
    r"""Normal draws $x = \mathrm{loc} + \mathrm{scale}\cdot z$, $z \sim N(0, 1)$; reparameterised.

    $\log p = -\tfrac12 ((x - \mathrm{loc})/\mathrm{scale})^2 - \log \mathrm{scale}
    - \tfrac12 \log 2\pi$. ``scale`` must be positive.

    >>> import jax, simgrad as sg
    >>> sg.random.normal(jax.random.key(0), 1.0, 2.0, shape=(3,)).shape
    (3,)
    """
    _check_key("normal", key)
    p, shape, dtype, site = _draw("normal", key, {"loc": loc, "scale": scale}, shape, dtype)
    scale = _require("normal", p["scale"], p["scale"] > 0, "scale must be positive")
    return site(p["loc"], scale)


def lognormal(key, mu=0.0, sigma=1.0, shape=None, dtype=None):
    r"""Lognormal draws $x = e^{\mu + \sigma z}$, $z \sim N(0, 1)$; reparameterised.

    Note the parameters are those of $\log x$ (unlike `jax.random.lognormal`, which has
    only ``sigma``). ``sigma`` must be positive.
    """
    _check_key("lognormal", key)
    p, shape, dtype, site = _draw("lognormal", key, {"mu": mu, "sigma": sigma}, shape, dtype)
    sigma = _require("lognormal", p["sigma"], p["sigma"] > 0, "sigma must be positive")
    return site(p["mu"], sigma)


def uniform(key, minval=0.0, maxval=1.0, shape=None, dtype=None):
    r"""Uniform draws on $[\mathrm{minval}, \mathrm{maxval})$; reparameterised.

    The support moves with the bounds, so the score function alone is biased for
    θ-dependent bounds and `sg.ScoreFunction` refuses them; the pathwise and hybrid
    estimators handle them. ``maxval`` must exceed ``minval``.
    """
    _check_key("uniform", key)
    p, shape, dtype, site = _draw(
        "uniform", key, {"minval": minval, "maxval": maxval}, shape, dtype
    )
    hi = _require("uniform", p["maxval"], p["maxval"] > p["minval"], "maxval must exceed minval")
    return site(p["minval"], hi)


def exponential(key, rate=1.0, shape=None, dtype=None):
    r"""Exponential draws with the given ``rate`` (mean $1/\mathrm{rate}$); reparameterised.

    $x = E/\mathrm{rate}$, $E \sim \mathrm{Exp}(1)$; $\log p = \log \mathrm{rate} -
    \mathrm{rate}\, x$. ``rate`` must be positive.
    """
    _check_key("exponential", key)
    p, shape, dtype, site = _draw("exponential", key, {"rate": rate}, shape, dtype)
    return site(_require("exponential", p["rate"], p["rate"] > 0, "rate must be positive"))


def gamma(key, a, rate=1.0, shape=None, dtype=None):
    r"""Gamma draws with shape ``a`` and ``rate``; reparameterised (implicitly in ``a``).

    $\log p = a \log \mathrm{rate} + (a-1)\log x - \mathrm{rate}\,x - \log\Gamma(a)$.
    Both parameters must be positive.
    """
    _check_key("gamma", key)
    p, shape, dtype, site = _draw("gamma", key, {"a": a, "rate": rate}, shape, dtype)
    a = _require("gamma", p["a"], p["a"] > 0, "a (the shape) must be positive")
    return site(a, _require("gamma", p["rate"], p["rate"] > 0, "rate must be positive"))


def bernoulli(key, p=0.5, shape=None, dtype=None):
    r"""Bernoulli draws: 1.0 with probability ``p``, else 0.0. Discrete: zero pathwise gradient.

    $\log p(x) = x \log p + (1 - x)\log(1 - p)$. ``p`` must lie in [0, 1].
    """
    _check_key("bernoulli", key)
    q, shape, dtype, site = _draw("bernoulli", key, {"p": p}, shape, dtype)
    return site(_require("bernoulli", q["p"], (q["p"] >= 0) & (q["p"] <= 1), "p must be in [0, 1]"))


def categorical(key, logits, axis=-1, shape=None, dtype=None):
    r"""Category indices (as floats) drawn with probabilities ``softmax(logits, axis)``.

    Discrete: zero pathwise gradient. $\log p(x) = \mathrm{log\_softmax}(\mathrm{logits})_x$.
    ``shape`` is the batch shape (``logits``' shape without ``axis`` by default).
    """
    _check_key("categorical", key)
    if isinstance(logits, (list, tuple)):
        logits = jnp.asarray(logits)
    if getattr(logits, "ndim", 0) < 1:
        raise ValueError("simgrad.random.categorical: logits must have at least one axis.")
    if isinstance(logits, jax.Array):
        logits = jnp.moveaxis(logits, axis, -1)
    else:
        logits = np.moveaxis(np.asarray(logits), axis, -1)
    q, shape, dtype, site = _draw(
        "categorical", key, {"logits": logits}, shape, dtype, event_dims=1
    )
    lg = q["logits"]
    return site(_require("categorical", lg, ~_xp(lg).isnan(lg), "logits must not be NaN"))


def poisson(key, rate, shape=None, dtype=None):
    r"""Poisson counts (as floats) with mean ``rate``. Discrete: zero pathwise gradient.

    $\log p(x) = x \log \mathrm{rate} - \mathrm{rate} - \log x!$. ``rate`` must be
    non-negative and finite.
    """
    _check_key("poisson", key)
    q, shape, dtype, site = _draw("poisson", key, {"rate": rate}, shape, dtype)
    r = q["rate"]
    ok = (r >= 0) & _xp(r).isfinite(r)
    return site(_require("poisson", r, ok, "rate must be non-negative and finite"))


def binomial(key, n, p, shape=None, dtype=None):
    r"""Binomial counts (as floats): successes in ``n`` trials of probability ``p``. Discrete.

    $\log p(x) = \log\binom{n}{x} + x\log p + (n - x)\log(1 - p)$. ``n`` must be a
    non-negative whole number, ``p`` in [0, 1]; only ``p`` is a parameter to differentiate.
    """
    _check_key("binomial", key)
    q, shape, dtype, site = _draw("binomial", key, {"n": n, "p": p}, shape, dtype)
    n_ok = (q["n"] >= 0) & (q["n"] == _xp(q["n"]).round(q["n"]))
    n_ = _require("binomial", q["n"], n_ok, "n must be a non-negative whole number")
    p_ = _require("binomial", q["p"], (q["p"] >= 0) & (q["p"] <= 1), "p must be in [0, 1]")
    return site(n_, p_)


def geometric(key, p, shape=None, dtype=None):
    r"""Geometric draws (as floats): the number of trials up to the first success, 1, 2, …

    Discrete. $\log p(x) = (x - 1)\log(1 - p) + \log p$. ``p`` must lie in (0, 1].
    """
    _check_key("geometric", key)
    q, shape, dtype, site = _draw("geometric", key, {"p": p}, shape, dtype)
    return site(_require("geometric", q["p"], (q["p"] > 0) & (q["p"] <= 1), "p must be in (0, 1]"))
