"""`gradient`, the one entry point, and `Estimate`, what it returns."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._types import Key, Simulator, Theta
from .estimators.base import AbstractEstimator


class SimulationError(RuntimeError):
    """The simulator produced NaN or inf for some samples (a run-time error, tier 2)."""


class Estimate(eqx.Module):
    r"""A Monte Carlo estimate of $\mathbb{E}[f]$ and $\nabla_\theta \mathbb{E}[f]$ with error bars.

    Attributes:
        value: the mean of the simulator's replicates.
        value_stderr: its standard error, ``std / sqrt(n_samples)``.
        grad: the mean of the per-sample gradient estimates; ``theta``'s structure.
        grad_std: the per-sample standard deviation of the single-sample estimator.
        grad_stderr: ``grad_std / sqrt(n_samples)``, the standard error of ``grad``.
        n_samples: the number of replicates (keys).
        n_evals: the simulator evaluations they cost (e.g. ``2N`` per sample for central
            finite differences with ``N`` parameters).
        method: the estimator that produced it.
    """

    value: Array
    value_stderr: Array
    grad: Theta
    grad_std: Theta
    grad_stderr: Theta
    n_samples: int = eqx.field(static=True)
    n_evals: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __repr__(self) -> str:
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(self)):
            return eqx.tree_pformat(self)
        lines = [f"Estimate({self.method}, n_samples={self.n_samples}, n_evals={self.n_evals})"]
        lines.append(f"  value = {_pm(self.value, self.value_stderr)}")
        paths = jax.tree_util.tree_flatten_with_path(self.grad)[0]
        for (path, g), s in zip(paths, jax.tree.leaves(self.grad_stderr), strict=True):
            lines.append(f"  grad{jax.tree_util.keystr(path)} = {_pm(g, s)}")
        return "\n".join(lines)


def _pm(x, stderr) -> str:
    """``1.2345 ± 0.0012`` elementwise, the standard error to 2 significant figures."""
    x, stderr = np.asarray(x), np.asarray(stderr)
    if x.ndim == 0:
        return f"{float(x):.6g} ± {float(stderr):.2g}"
    pairs = [f"{a:.6g} ± {b:.2g}" for a, b in zip(x.ravel()[:6], stderr.ravel()[:6], strict=True)]
    more = ", …" if x.size > 6 else ""
    return f"[{', '.join(pairs)}{more}] (shape {x.shape})"


def gradient(
    sim: Simulator,
    theta: Theta,
    key: Key,
    *,
    method: AbstractEstimator,
    n_samples: int,
    batch_size: int | None = None,
    executor=None,
) -> Estimate:
    r"""Estimate $\nabla_\theta \mathbb{E}_{key}[\mathrm{sim}(\theta, key)]$ and its standard error.

    ``key`` is split into ``n_samples`` keys; ``method`` turns each into one sample of the
    value and the gradient; all samples run batched in one compiled call, which is cached:
    a second call with the same simulator, estimator and shapes does not recompile.

    Arguments:
        sim: ``sim(theta, key) -> scalar``, one replicate, all randomness from ``key``.
        theta: a float, an array, or a pytree (dict, tuple, ``eqx.Module``) of floats.
        key: a JAX PRNG key, e.g. ``jax.random.key(0)``.
        method: an estimator, e.g. ``sg.Pathwise()`` or ``sg.FiniteDifference()``.
        n_samples: the number of replicates, at least 2 (a standard error needs two).
        batch_size: run the samples in chunks of this size (``lax.map``) instead of all
            at once, when all at once does not fit in memory.
        executor: for an `sg.BlackBox` simulator only: where its evaluations run — None
            (this process), a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.

    Example:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> def sim(theta, key):                       # E[sim] = theta², gradient 2 theta
        ...     return (theta + jax.random.normal(key)) ** 2 - 1.0
        >>> est = sg.gradient(sim, 1.5, jax.random.key(0), method=sg.Pathwise(),
        ...                   n_samples=10_000)
        >>> abs(float(est.grad) - 3.0) < 4 * float(est.grad_stderr)
        True

    Raises:
        TypeError, ValueError: on misuse that can be seen before running, naming the fix.
        SimulationError: when the simulator produces NaN or inf for some samples.
    """
    from . import _blackbox

    if isinstance(sim, _blackbox.BlackBox) or executor is not None:
        return _blackbox.gradient(
            sim, theta, key, method=method, n_samples=n_samples, batch_size=batch_size,
            executor=executor,
        )  # fmt: skip
    _check_method(method)
    if not callable(sim):
        raise TypeError(f"sim must be a function sim(theta, key) -> scalar, got {type(sim)}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"n_samples must be an int, got {type(n_samples).__name__}.")
    if n_samples < 2:
        raise ValueError(
            f"n_samples={n_samples}: at least 2 samples are needed for a standard error. "
            "For a deterministic simulator n_samples=2 gives the exact gradient with error 0."
        )
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size={batch_size!r}: must be a positive int or None.")
    _check_key(key)
    theta = _check_theta(theta)

    estimate, status = _estimate(sim, method, theta, key, n_samples, batch_size)
    if isinstance(status[0], jax.core.Tracer):  # inside an outer jit: check at run time
        theta_finite, n_bad_value, n_bad_grad = status
        estimate = eqx.error_if(
            estimate, ~theta_finite, "sg.gradient: theta is not finite: parameters must be finite."
        )
        message = _nonfinite_message(method, n_samples, "some", "")
        return eqx.error_if(estimate, n_bad_value + n_bad_grad > 0, message)
    theta_finite, n_bad_value, n_bad_grad = (x.item() for x in jax.device_get(status))
    if not theta_finite:
        for path, leaf in jax.tree_util.tree_flatten_with_path(theta)[0]:
            if not np.isfinite(np.asarray(leaf)).all():
                where = f"theta{jax.tree_util.keystr(path)}"
                raise ValueError(f"{where} is not finite ({leaf}): parameters must be finite.")
    if n_bad_value + n_bad_grad:
        what = f" (the value itself in {n_bad_value})" if n_bad_value else " (the gradient only)"
        raise SimulationError(_nonfinite_message(method, n_samples, n_bad_value + n_bad_grad, what))
    return estimate


@eqx.filter_jit
def _estimate(sim, method, theta, key, n, batch_size):
    _check_output(sim, theta, key)  # at trace time: once per compilation
    keys = jax.random.split(key, n)
    values, grads = method.sample_batch(sim, theta, keys, batch_size)

    def mean_std(x):
        mean = jnp.mean(x, axis=0)
        std = jnp.sqrt(jnp.sum((x - mean) ** 2, axis=0) / (n - 1))
        return mean, std

    value, value_std = mean_std(values)
    grad_and_std = jax.tree.map(mean_std, grads)
    is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
    grad = jax.tree.map(lambda p: p[0], grad_and_std, is_leaf=is_pair)
    grad_std = jax.tree.map(lambda p: p[1], grad_and_std, is_leaf=is_pair)
    grad_stderr = jax.tree.map(lambda s: s / math.sqrt(n), grad_std)

    # A non-finite sample makes its mean or standard deviation non-finite, so the cheap
    # check is on the aggregates; the samples are counted only when that check fails.
    aggregates = [value, value_std, *jax.tree.leaves(grad), *jax.tree.leaves(grad_std)]
    all_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in aggregates]))

    def count_bad():
        bad_value = ~jnp.isfinite(values)
        bad_grad = jnp.zeros_like(bad_value)
        for leaf in jax.tree.leaves(grads):
            bad_grad = bad_grad | ~jnp.all(jnp.isfinite(leaf.reshape(n, -1)), axis=1)
        count = lambda mask: jnp.sum(mask, dtype=jnp.int32)  # noqa: E731
        return count(bad_value), count(bad_grad & ~bad_value)

    zero = jnp.zeros((), jnp.int32)
    n_bad_value, n_bad_grad = jax.lax.cond(all_finite, lambda: (zero, zero), count_bad)
    n_params = sum(leaf.size for leaf in jax.tree.leaves(theta))
    estimate = Estimate(
        value=value,
        value_stderr=value_std / math.sqrt(n),
        grad=grad,
        grad_std=grad_std,
        grad_stderr=grad_stderr,
        n_samples=n,
        n_evals=n * method.evals_per_sample(n_params),
        method=repr(method),
    )
    theta_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(theta)]))
    return estimate, (theta_finite, n_bad_value, n_bad_grad)


def _nonfinite_message(method: AbstractEstimator, n_samples: int, n, what: str) -> str:
    return (
        f"{method!r}: the simulator gave NaN or inf in {n} of {n_samples} samples{what}. "
        "Look for log, sqrt, division or overflow that the sampled randomness can reach; "
        "NaN in the gradient only often comes from jnp.where with a NaN branch, or from "
        "sqrt/abs at 0. Fix the simulator; simgrad does not drop samples silently."
    )


def _check_method(method) -> None:
    if not isinstance(method, AbstractEstimator):
        hint = ""
        if isinstance(method, type) and issubclass(method, AbstractEstimator):
            hint = f" Did you mean method={method.__name__}()?"
        raise TypeError(
            f"method must be an estimator such as sg.Pathwise() or sg.FiniteDifference(), "
            f"got {method!r}.{hint}"
        )


def _check_key(key) -> None:
    key_like = isinstance(key, (jax.Array, np.ndarray))
    if key_like and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape == ():
            return
        raise ValueError(
            f"key must be a single PRNG key, got a batch of shape {key.shape}. Pass one key; "
            "simgrad splits it into n_samples keys itself."
        )
    if key_like and key.dtype == jnp.uint32 and key.shape == (2,):  # legacy raw key
        return
    raise TypeError(f"key must be a JAX PRNG key such as jax.random.key(0), got {_describe(key)}.")


def _check_theta(theta) -> Theta:
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(theta)
    if not leaves_with_paths:
        raise ValueError("theta has no parameters: pass a float, an array or a pytree of them.")
    leaves = []
    for path, leaf in leaves_with_paths:
        where = f"theta{jax.tree_util.keystr(path)}"
        if isinstance(leaf, bool) or not isinstance(
            leaf, (float, int, np.ndarray, np.generic, jax.Array)
        ):
            raise TypeError(f"{where} must be a float or a floating array, got {_describe(leaf)}.")
        dtype = leaf.dtype if isinstance(leaf, jax.Array) else np.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{where} has dtype {dtype}: parameters must be floating, e.g. 1.0 "
                "instead of 1, or x.astype(float)."
            )
        # Host values are checked here; device arrays inside the compiled call (no transfer).
        if not isinstance(leaf, jax.Array) and not np.isfinite(leaf).all():
            raise ValueError(f"{where} is not finite ({leaf}): parameters must be finite.")
        leaves.append(jnp.asarray(leaf))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _check_output(sim, theta, key) -> None:
    out = jax.eval_shape(sim, theta, key)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"sim must return one scalar, got {jax.tree.structure(out)}. Reduce the "
            "outputs to the objective whose gradient you want."
        )
    if out.shape != ():
        raise ValueError(
            f"sim must return a scalar (shape ()), got shape {out.shape}. Reduce it to the "
            "objective whose gradient you want, e.g. return jnp.mean(path) or path[-1]."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"sim returned dtype {out.dtype}: it must return a float. An integer output "
            "has no pathwise gradient; return e.g. count.astype(float) and use an "
            "estimator for discrete outputs."
        )


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (
        f" of shape {shape} and dtype {dtype}" if shape is not None else ""
    )
