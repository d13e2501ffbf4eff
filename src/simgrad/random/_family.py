"""The machinery behind every `simgrad.random` draw: one record per family, one way to draw.

`family` registers a `Distribution` record with the program core and returns its site (a
`jax.jit` named after the family); `draw` checks the key, casts and broadcasts the
parameters, validates each against its `Constraint` (now when concrete, at run time when
traced) and calls the site. Constraints and the gradient-safe helpers the log-probabilities
share live here too.
"""

import reprlib
from collections.abc import Callable
from typing import NoReturn

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._result import fail_on_device
from .._src.program.sites import (
    SITE_PREFIX,
    Constraint,
    Distribution,
    checked_by_caller,
    register,
)

_SITES: dict[str, Callable] = {}


def family(distribution: Distribution) -> Distribution:
    """Register ``distribution`` and build its site; returns the record."""
    register(distribution)

    def site(key, *params, shape, dtype):
        return distribution.sample(key, *params, shape=shape, dtype=dtype)

    site.__name__ = site.__qualname__ = SITE_PREFIX + distribution.name
    _SITES[distribution.name] = jax.jit(site, static_argnames=("shape", "dtype"))
    return distribution


# --- constraints ------------------------------------------------------------------------


POSITIVE = Constraint("positive", lambda xp, v, ps: v > 0)
NONNEGATIVE = Constraint("non-negative and finite", lambda xp, v, ps: (v >= 0) & xp.isfinite(v))
PROBABILITY = Constraint("in [0, 1]", lambda xp, v, ps: (v >= 0) & (v <= 1))
POSITIVE_PROBABILITY = Constraint("in (0, 1]", lambda xp, v, ps: (v > 0) & (v <= 1))
WHOLE = Constraint("a non-negative whole number", lambda xp, v, ps: (v >= 0) & (v == xp.round(v)))
WEIGHTS = Constraint(
    "non-negative and finite, with a positive sum over the last axis",
    lambda xp, v, ps: xp.all((v >= 0) & xp.isfinite(v), -1) & (xp.sum(v, -1) > 0),
)
LOGITS = Constraint(
    "below +inf and not NaN, with at least one above -inf",
    lambda xp, v, ps: xp.all((v < xp.inf), -1) & xp.any(v > -xp.inf, -1),
)


def greater_than(other: str) -> Constraint:
    """``value > params[other]``: "… must be greater than <other>"."""
    return Constraint(f"greater than {other}", lambda xp, v, ps: v > ps[other])


# --- supports, for the change of variables (`Distribution.bounds`) --------------------------


def REAL(*params):
    """The support of a draw on the whole line."""
    return (-np.inf, np.inf)


def HALF_LINE(*params):
    """The support of a draw on ``[0, inf)``."""
    return (0.0, np.inf)


# --- gradient-safe pieces of log-probabilities -------------------------------------------


def xlogy(x, y):
    """``x log y`` with ``0 log 0 = 0`` *and* a zero derivative there (not ``0/0``).

    `jax.scipy.special.xlogy` gets the value right but its derivative in ``y`` is
    ``x / y = 0/0`` at ``x = y = 0`` — a NaN gradient whenever a probability or rate hits 0
    (an epidemic that died out). The double ``where`` keeps both clean.
    """
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log(jnp.where(zero, 1.0, y)))


def xlog1py(x, y):
    """``x log(1 + y)``, with the same care at ``x = 0``, ``y = -1``."""
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log1p(jnp.where(zero, 0.0, y)))


def safe_div(a, b):
    """``a / b``, and 0 where ``b = 0`` (with a zero derivative there)."""
    nonzero = b != 0
    return jnp.where(nonzero, a / jnp.where(nonzero, b, 1), 0)


# --- drawing ----------------------------------------------------------------------------


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


def _float_dtype(fn: str, params: dict, dtype):
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
    return dtype


def _batch_shape(fn: str, d: Distribution, arrays: dict, shape):
    batch_shapes = [arrays[p.name].shape[: arrays[p.name].ndim - p.event_ndim] for p in d.params]
    try:
        batch = jnp.broadcast_shapes(*batch_shapes)
    except ValueError:
        raise ValueError(
            f"simgrad.random.{fn}: the parameters' batch shapes {batch_shapes} do not "
            "broadcast together."
        ) from None
    if shape is None:
        return batch
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise TypeError(
            f"simgrad.random.{fn}: shape must be a tuple of non-negative ints, e.g. "
            f"shape=(3,), got {shape!r}."
        )
    shape = tuple(int(s) for s in shape)
    try:
        fits = jnp.broadcast_shapes(shape, batch) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"simgrad.random.{fn}: shape={shape} cannot hold parameters of batch shape "
            f"{batch}; pass shape=None or a shape that the parameters broadcast to."
        )
    return shape


def _validate(fn: str, d: Distribution, arrays: dict) -> list:
    """Each parameter, checked: ``ValueError`` now when concrete; when traced, a run-time
    error (``equinox.error_if``, a host callback) — or, for a caller that checks the draws
    itself (the engine, through `valid_draws`), NaN in place of an invalid value."""
    out = []
    for p in d.params:
        value = arrays[p.name]
        if p.valid is None:
            out.append(value)
            continue
        xp = np if isinstance(value, np.ndarray) else jnp
        ok = p.valid.check(xp, value, arrays)
        text = f"simgrad.random.{fn}: {p.name} must be {p.valid.text}"
        if isinstance(ok, jax.core.Tracer) and checked_by_caller():
            value = jnp.where(jnp.all(ok), value, jnp.nan)
        elif isinstance(ok, jax.core.Tracer):
            bad = jnp.logical_not(jnp.all(ok))
            value = fail_on_device(value, bad, text + " (at run time).")
        elif not bool(np.all(ok)):
            shown = np.array2string(np.asarray(value), threshold=8)
            raise ValueError(f"{text} (got {p.name}={shown}).")
        out.append(value)
    return out


def refuse_sequence(fn: str, name: str, value, before) -> NoReturn:
    """Refuse a tuple or list given as parameter ``name`` of ``simgrad.random.<fn>``.

    ``jax.random`` takes the shape second (``normal(key, (3,))``); here the distribution's
    parameters come first and ``shape``, ``dtype`` are keyword-only, so that habit would
    otherwise draw once with ``loc=3``. Parameter values are numbers or arrays, as
    everywhere in JAX. ``before`` names the parameters ahead of ``name`` (for the fix).
    """
    ahead = "".join(f", {p}" for p in before)
    looks_like_shape = all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in value
    )
    fix = (
        f"shape and dtype are keyword-only here (sg.random.{fn}(key{ahead}, "
        f"shape={tuple(value)!r})), unlike jax.random. If these are values of {name}, "
        f"pass an array: {name}=np.asarray(...)."
        if looks_like_shape
        else f"pass parameter values as numbers or arrays ({name}=np.asarray(...)), as "
        "jax.random does; shape and dtype are keyword-only here (shape=...)."
    )
    raise TypeError(
        f"simgrad.random.{fn}: {name}={reprlib.repr(value)} is a {type(value).__name__}: {fix}"
    )


def draw(d: Distribution, fn: str, key, params: dict, shape, dtype):
    """Draw from the family ``d`` as the public function ``fn``: check, cast, validate, sample.

    ``shape`` is the batch shape (``None``: the parameters' broadcast batch shape); the
    draws have shape ``shape + event shape``.
    """
    _check_key(fn, key)
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            refuse_sequence(fn, name, value, list(params)[: list(params).index(name)])
        if isinstance(value, bool) or not isinstance(
            value, (int, float, np.ndarray, np.generic, jax.Array)
        ):
            raise TypeError(
                f"simgrad.random.{fn}: {name} must be a number or an array, "
                f"got {type(value).__name__}."
            )
    dtype = _float_dtype(fn, params, dtype)
    # Concrete parameters stay NumPy, so that their validity is checked now, for free.
    arrays = {
        k: v.astype(dtype) if isinstance(v, jax.Array) else np.asarray(v, dtype)
        for k, v in params.items()
    }
    for p in d.params:
        if arrays[p.name].ndim < p.event_ndim:
            raise ValueError(
                f"simgrad.random.{fn}: {p.name} must have at least {p.event_ndim} "
                f"axis(es) (one draw's), got shape {arrays[p.name].shape}."
            )
    try:
        d.event_shape(arrays)
    except ValueError as error:
        raise ValueError(f"simgrad.random.{fn}: {error}") from None
    shape = _batch_shape(fn, d, arrays, shape)
    values = _validate(fn, d, arrays)
    # A count is not a parameter to differentiate: no estimator sees a derivative in it.
    values = [
        jax.lax.stop_gradient(v) if p.count else v for p, v in zip(d.params, values, strict=True)
    ]
    site: Callable = _SITES[d.name]
    return site(key, *values, shape=shape, dtype=dtype)


# --- measure-valued derivatives ------------------------------------------------------------


def signed(weight, plus, minus):
    """``(plus, minus, |weight|)`` with ``plus`` and ``minus`` swapped where ``weight < 0``:
    a weak derivative ``w (E⁺ f − E⁻ f)`` with a negative ``w`` is ``|w| (E⁻ f − E⁺ f)``.
    Candidate axis appended (``C = 1``)."""
    negative = weight < 0
    up = jnp.where(negative, minus, plus)
    down = jnp.where(negative, plus, minus)
    return up[..., None], down[..., None], jnp.abs(weight)[..., None]
