"""Every argument check of the public functions, one wording each.

Misuse that can be seen before running (tier 1 of the design's errors) is refused here
with a message that names the argument and the fix: the simulator and its contract, θ, the
key, the estimator, the sizes. `sg.gradient`, `sg.expectation`, `sg.optimize`, `sg.check`,
the smoothing sweep and the surrogate fit all call these.
"""

import inspect
import math

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._types import Theta
from .names import leaf_name
from .program import trace

MAX_SAMPLES = 2**32 - 1  # sample i's key is fold_in(key, i) with a 32-bit index
_CONCRETE: set = set()  # the types of concrete JAX arrays (not tracers) seen by `check_theta`


def check_callable(sim, name: str = "sim", signature: str = "sim(theta, key) -> float") -> None:
    """Refuse a simulator (or other function argument) that cannot be called.

    >>> check_callable(3.0)
    Traceback (most recent call last):
    TypeError: sim must be a function sim(theta, key) -> float, got float.
    """
    if not callable(sim):
        raise TypeError(f"{name} must be a function {signature}, got {type(sim).__name__}.")


def check_size(name: str, value, minimum: int, *, optional: bool = False) -> int | None:
    """``value`` as a Python int ≥ ``minimum`` (NumPy integers accepted; None if
    ``optional``), or a ValueError that names the argument.

    >>> check_size("steps", 0, 1)
    Traceback (most recent call last):
    ValueError: steps=0: must be an int ≥ 1.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        none = " or None" if optional else ""
        raise ValueError(f"{name}={value!r}: must be an int ≥ {minimum}{none}.")
    return int(value)


def check_arguments(sim, key, n_samples, batch_size) -> tuple[int, int | None]:
    """Validate what `sg.gradient` takes besides θ and the estimator (`check_method`);
    returns ``(n_samples, batch_size)`` as Python ints (NumPy integers accepted)."""
    check_callable(sim)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be an int, got {type(n_samples).__name__}.")
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(
            f"n_samples={n_samples}: at least 2 samples are needed for a standard error. "
            "For a deterministic simulator n_samples=2 gives the exact gradient with error 0."
        )
    if n_samples > MAX_SAMPLES:
        raise ValueError(
            f"n_samples={n_samples}: at most 2**32 - 1 samples per call (sample i's key is "
            "fold_in(key, i) with a 32-bit index). Average several calls with different "
            "keys, each with batch_size= to bound its memory."
        )
    check_key(key)
    return n_samples, check_size("batch_size", batch_size, 1, optional=True)


def check_key(key) -> None:
    """Refuse anything but one JAX PRNG key (typed, or a legacy ``uint32[2]``)."""
    if isinstance(key, jax.Array) and key.shape == () and key.dtype in _KEY_DTYPES:
        return  # the common case, fast: a typed key seen before
    key_like = isinstance(key, (jax.Array, np.ndarray))
    if key_like and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape == ():
            _KEY_DTYPES.add(key.dtype)
            note_concrete([key])
            return
        raise ValueError(
            f"key must be a single PRNG key, got a batch of shape {key.shape}. Pass one key; "
            "simgrad derives the n_samples keys itself (or jax.vmap over a batch of keys)."
        )
    if key_like and key.dtype == jnp.uint32 and key.shape == (2,):  # legacy raw key
        note_concrete([key])
        return
    raise TypeError(f"key must be a JAX PRNG key such as jax.random.key(0), got {describe(key)}.")


def note_concrete(arrays) -> None:
    """Remember the types of concrete JAX arrays that passed a check (see `is_plain`)."""
    for x in arrays:
        if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
            _CONCRETE.add(type(x))


_KEY_DTYPES: set = set()
_PARTITION = (
    "theta must hold only floating arrays. If theta is an equinox module that also holds "
    "functions or integers (an eqx.nn.MLP holds its activation function), partition it with "
    "eqx.partition: params, static = eqx.partition(model, eqx.is_inexact_array); pass params "
    "as theta and rebuild the model inside sim with eqx.combine(params, static)."
)


_FLOATS = frozenset(np.dtype(t) for t in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))


def check_theta(theta, to_device: bool = True) -> Theta:
    """Validate θ (floating leaves, finite host values, at least one parameter) and turn
    host leaves into JAX arrays; device arrays are checked for finiteness on the device.
    With ``to_device=False`` host leaves stay on the host (NumPy arrays copied), for a
    compiled function to take as they are: it converts them faster than `jnp.asarray`."""
    leaves, treedef = jax.tree.flatten(theta)
    if leaves and all(isinstance(leaf, jax.Array) and leaf.dtype in _FLOATS for leaf in leaves):
        if any(leaf.size for leaf in leaves):  # the common case, fast: floating JAX arrays
            note_concrete(leaves)
            return theta
    checked = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, jax.Array):
            dtype = leaf.dtype
        elif isinstance(leaf, (float, int, np.ndarray, np.generic)) and not isinstance(leaf, bool):
            dtype = np.asarray(leaf).dtype
        else:
            where = leaf_name(treedef, i)
            hint = f" {_PARTITION}" if len(leaves) > 1 or callable(leaf) else ""
            raise TypeError(
                f"{where} must be a float or a floating array, got {describe(leaf)}.{hint}"
            )
        if not jnp.issubdtype(dtype, jnp.floating):
            where = leaf_name(treedef, i)
            hint = f" {_PARTITION}" if isinstance(theta, eqx.Module) else ""
            raise TypeError(
                f"{where} has dtype {dtype}: parameters must be floating, e.g. 1.0 "
                f"instead of 1, or x.astype(float).{hint}"
            )
        if not isinstance(leaf, jax.Array):
            if not np.isfinite(leaf).all():
                where = leaf_name(treedef, i)
                raise ValueError(f"{where} is not finite ({leaf}): parameters must be finite.")
            if to_device:
                leaf = jnp.asarray(leaf)
            elif isinstance(leaf, np.ndarray):
                leaf = np.array(leaf)  # a copy: the caller may change theirs in place
        checked.append(leaf)
    if sum(math.prod(np.shape(leaf)) for leaf in checked) == 0:
        shapes = [np.shape(leaf) for leaf in checked]
        raise ValueError(
            f"theta has no parameters (leaves of shapes {shapes}): pass a float, an array or "
            "a pytree of them with at least one entry."
        )
    return jax.tree.unflatten(treedef, checked)


_CONTRACT = (
    "sim must be a JAX function sim(theta, key) -> output (a float, or an array or pytree of "
    "floats), all randomness from key: simgrad traces it with abstract values. "
)


def check_simulator(sim, theta, key, program: bool = False):
    """``(output structure, program)``: the output checked at the simulator's first trace,
    and with ``program`` its traced program (inputs: θ's leaves, then the key's), from the
    same trace (else None). A simulator that breaks the contract gets a message naming it
    and the fix (the original chained)."""
    try:
        inspect.signature(sim).bind(theta, key)
    except TypeError as error:
        raise TypeError(
            f"{_CONTRACT}It cannot be called with two arguments ({error}). Write "
            "def sim(theta, key): ...; a deterministic simulator ignores key."
        ) from error
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    try:
        if program:
            traced, out = trace(sim, theta, key, return_shape=True)
        else:
            traced, out = None, jax.eval_shape(sim, theta, key)
    except jax.errors.TracerArrayConversionError as error:
        raise TypeError(
            f"{_CONTRACT}It turned a traced value into a NumPy array (np.exp, np.asarray, "
            "float() on theta or something computed from it). Use jax.numpy instead: "
            "import jax.numpy as jnp, then jnp.exp(...). Code that cannot be written in JAX "
            "runs as sg.BlackBox(fn), fn(theta, seed) -> float, with an estimator that needs "
            "only evaluations (sg.FiniteDifference(), sg.SPSA())."
        ) from error
    except (jax.errors.TracerBoolConversionError, jax.errors.ConcretizationTypeError) as error:
        raise TypeError(
            f"{_CONTRACT}It uses Python control flow (if, while, bool(), int()) on a value "
            "that depends on theta or key. Use jnp.where(cond, a, b) for a choice, "
            "jax.lax.cond for a branch, jax.lax.while_loop or jax.lax.scan for a loop."
        ) from error
    except jax.errors.TracerIntegerConversionError as error:
        raise TypeError(
            f"{_CONTRACT}It uses a traced value as a Python int (an index, a shape, a range). "
            "Index with jnp.take or jax.lax.dynamic_slice, and keep shapes fixed."
        ) from error
    leaves = jax.tree.leaves(out)
    if not leaves:
        raise ValueError(f"{_CONTRACT}It returned {out!r}, with no output at all.")
    for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"sim returned dtype {leaf.dtype}: it must return floats. An integer output "
                "has no pathwise gradient; return e.g. count.astype(float) and use an "
                "estimator for discrete outputs."
            )
    if sum(math.prod(leaf.shape) for leaf in leaves) == 0:
        raise ValueError(
            f"{_CONTRACT}It returned an empty output (shapes {[leaf.shape for leaf in leaves]})."
        )
    return out, traced


def describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (
        f" of shape {shape} and dtype {dtype}" if shape is not None else ""
    )


def is_plain(theta, key) -> bool:
    """Whether ``key`` and every leaf of ``theta`` are concrete JAX arrays (not tracers,
    not host values, which must be checked for finiteness and converted)."""
    if type(key) not in _CONCRETE:
        return False
    for leaf in jax.tree.leaves(theta):
        if type(leaf) not in _CONCRETE:
            return False
    return True


def is_traced(*trees) -> bool:
    """Whether any leaf of ``trees`` is a tracer (inside `jit`, `vmap` or `grad`)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))
