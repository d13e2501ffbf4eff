"""The engine: `estimate`, a pure JAX function from a simulator, θ and a key to an
`Estimate`.

Ravel θ and the simulator's outputs to flat vectors, derive each sample's key from its
index, run the estimator chunk by chunk, accumulate means and variances as it goes (memory
O(batch_size)), and restore the user's structure. No validation, no host synchronisation:
`sg.gradient` (simgrad._estimate) compiles it, `sg.optimize` and `sg.expectation` call it
inside their own compiled programs.
"""

import functools
import math
import os
import sys
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh
from jaxtyping import Array

from . import random as _random  # noqa: F401  (registers jax.random samplers as sites)
from ._result import BiasWarning, Estimate, Status
from ._scan import scan
from ._src.devices import split_samples
from ._src.program import draw_sites, find, trace
from ._src.program.hidden import hidden_draws
from ._src.program.rules import calls_back
from ._src.program.sites import draws_checked_by_caller
from ._src.program.valid import valid_draws
from ._src.validate import check_simulator
from ._types import Jacobian, Key, Output, Simulator, Theta
from .estimators.base import AbstractEstimator, Samples


def estimate(
    sim: Simulator,
    theta: Theta,
    key: Key,
    *,
    method: AbstractEstimator,
    n_samples: int,
    batch_size: int | None = None,
    count: bool = False,
    mesh: Mesh | None = None,
) -> Estimate:
    r"""The engine: the `Estimate` of ``sim`` at ``theta``, as a pure JAX function.

    No validation beyond the simulator's contract (use `check_arguments` and
    `check_theta` first), no host synchronisation, no check of the results: its
    ``status`` says what failed. Callable under `jax.jit`, `vmap` and inside
    `jax.custom_vjp` rules (it is what `sg.gradient` compiles, and what an expectation
    with a custom derivative builds on).

    Sample ``i`` uses ``fold_in(key, i)``; chunk ``c`` of ``batch_size`` samples runs
    ``method.sample_batch`` on samples ``c·b … c·b + b - 1``, and the chunks' means and
    sums of squared deviations are merged one after the other (Chan, Golub & LeVeque's
    pairwise update), so memory is O(batch_size).

    With a ``mesh`` (`sample_mesh`), each chunk's samples are sharded along its one axis
    (sharded ``jit``: the sample index, and every per-sample result, is constrained to
    be split over the devices; XLA partitions the estimator's work and reduces the
    statistics across devices). Each sample is computed exactly as on one device; only
    the order of summation differs.

    ``status[0]`` is -1 when some statistic is not finite (some sample failed); with
    ``count=True`` the samples are counted instead (per-sample finiteness of the
    simulator's values and of the raw gradient contributions, before any baseline mixes
    samples) — a second run that `Estimate` makes only when the first one failed.
    """
    # The estimators that read the program get it from the same trace as the output shapes.
    x, f, out, program = flat_problem(sim, theta, key, method.sees_draws or method.perturbs_theta)
    n_theta = len(jax.tree.leaves(theta))
    chooser, (method, notes) = method, method.choose(f, x, key)
    name = repr(method) if method is chooser else f"{chooser!r} → {method!r}"
    if method is not chooser:  # the chosen estimator's own notes (its changes of variables)
        notes = (*notes, *method.choose(f, x, key)[1])
    if program is None:  # the scan reads it for the claim, once per compilation
        program = trace(sim, theta, key)
    scanned = scan(program, n_theta)
    hazards = [*scanned.findings, *scanned.rough_draws]
    claim, reasons = method.claim(hazards, bool(find(program, calls_back)))
    notes = (*notes, *(f"claim: {claim} — {reason}" for reason in reasons))
    if claim == "biased":
        warnings.warn(BiasWarning(f"{name}: {notes[-1]}"), stacklevel=_caller_level())
    if method.sees_draws:
        _refuse_hidden_draws(method, program, n_theta)
    if not count and (program is None or draw_sites(program)):
        # Traced parameters of simgrad.random draws are checked without host callbacks (so
        # that JAX can cache the compiled program on disk): a sample is NaN when a draw's
        # parameters were invalid. The counting run, made only when some sample failed,
        # keeps the draws' own run-time errors, which name the parameter.
        f = valid_draws(trace(functools.partial(f, checked_by_caller=True), x, key)) or f
    n_params, n_outputs = x.size, sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(out))
    chunk = n_samples if batch_size is None else min(batch_size, n_samples)
    _check_memory(
        method, x, n_params, n_outputs, chunk, batch_size, 1 if mesh is None else mesh.size
    )
    layout = _Layout(jax.tree.flatten(theta), jax.tree.flatten(out))
    split = split_samples(mesh)

    def run(start, size):
        index = start + jnp.arange(size, dtype=jnp.uint32)
        if split is not None:  # samples along the mesh: each device makes its own keys
            index = jax.lax.with_sharding_constraint(index, split)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
        s = method.sample_batch(f, x, keys)
        if split is not None:
            s = jax.lax.with_sharding_constraint(s, split)
        # Statistics leaf by leaf in the user's structure: XLA then fuses the ravel away
        # (a (B, m·N) array reduced over B is slow for small m·N).
        bias = None if s.bias is None else layout.structured(s.bias)
        per_sample = _PerSample(layout.structured(s.value), layout.structured(s.grad), bias)
        return _Moments.of(per_sample, s, count)

    moments = _accumulate(run, n_samples, chunk)
    if chunk < n_samples and method.couples_samples:
        notes = (
            *notes,
            f"the baseline couples samples within each chunk of batch_size={chunk}, "
            f"not across all {n_samples}",
        )
    if method.perturbs_theta:  # at trace time: once per compilation, not per call
        notes = (*notes, *scanned.fd_hazards)
    described = (name, notes, claim)
    return _finish(moments, theta, n_samples, count, method, described, n_params, n_outputs)


def _caller_level() -> int:
    """The `warnings` stack level of the first frame outside simgrad, JAX and equinox (the
    user's call of `sg.gradient`, `sg.expectation` or `sg.optimize`): where a warning
    issued while the engine is traced should point."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and any(
        part in frame.f_code.co_filename.replace("\\", "/")
        for part in ("/simgrad/", "/jax/", "/jaxlib/", "/equinox/", "/contextlib.py")
    ):
        level, frame = level + 1, frame.f_back
    return level


def _accumulate(run, n_samples: int, chunk: int) -> "_Moments":
    """The moments of ``n_samples`` samples, ``run(start, size)`` giving those of a chunk:
    one chunk, or a ``scan`` over full chunks and a last partial one (memory O(chunk))."""
    n_full, rest = divmod(n_samples, chunk)
    if n_full == 1 and rest == 0:
        return run(0, chunk)

    def step(carry, _):
        c, acc = carry
        return (c + 1, acc.merge(run(c * jnp.uint32(chunk), chunk))), None

    empty = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: run(0, chunk)))
    (_, moments), _ = jax.lax.scan(step, (jnp.uint32(0), empty), length=n_full)
    return moments.merge(run(n_full * chunk, rest)) if rest else moments


def _finish(moments, theta, n_samples, count, method, described, n_params, n_outputs):
    """The `Estimate` from the moments: standard errors and the failure status;
    ``described``: the estimator's name, the notes and the claim."""
    name, notes, claim = described
    root_n = math.sqrt(n_samples)
    std = jax.tree.map(lambda m2: jnp.sqrt(m2 / (n_samples - 1)), moments.m2)
    finite = jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(theta)])
    bad_leaf = jnp.where(jnp.all(finite), -1, jnp.argmin(finite)).astype(jnp.int32)
    if count:
        n_bad_value, n_bad_grad = moments.n_bad_value, moments.n_bad_grad
    else:  # cheap: a failed sample makes the statistics non-finite
        statistics = jax.tree.leaves((moments.mean, moments.m2.value, moments.m2.grad))
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in statistics]))
        n_bad_value, n_bad_grad = jnp.where(ok, 0, -1).astype(jnp.int32), jnp.int32(0)
    return Estimate(
        _value=moments.mean.value,
        _value_stderr=jax.tree.map(lambda s: s / root_n, std.value),
        _grad=moments.mean.grad,
        _grad_std=std.grad,
        _grad_stderr=jax.tree.map(lambda s: s / root_n, std.grad),
        _grad_bias=moments.mean.bias,
        status=jnp.stack(Status(n_bad_value, n_bad_grad, bad_leaf)),
        n_samples=n_samples,
        n_evals=n_samples * method.evals_per_sample(n_params, n_outputs),
        method=name,
        notes=notes,
        claim=claim,
        _theta_structure=jax.tree.structure(theta),
        _hint=method.gradient_nan_hint,
    )


class _Layout:
    """Where each leaf of θ and of the output sits in their ravels, to restore per-sample
    results to the user's structure with plain slices."""

    def __init__(self, theta_flat, out_flat):
        (self.theta_leaves, self.theta_def), (self.out_leaves, self.out_def) = theta_flat, out_flat

    @staticmethod
    def pieces(leaves):
        """``(offset, size, shape, dtype)`` of each leaf in its ravel."""
        offsets = np.cumsum([0] + [math.prod(np.shape(a)) for a in leaves])
        return [(int(o), int(e - o), np.shape(a), a.dtype) for o, e, a in
                zip(offsets[:-1], offsets[1:], leaves, strict=True)]  # fmt: skip

    def structured(self, flat):
        """``(B, m)`` → the outputs, or ``(B, m, N)`` → the Jacobian, with a sample axis."""
        b = flat.shape[0]
        per_output = []
        for o, m, shape, dtype in self.pieces(self.out_leaves):
            rows = flat[:, o : o + m] if flat.shape[1] > m else flat
            if flat.ndim == 2:
                per_output.append(rows.reshape((b, *shape)).astype(dtype))
                continue
            # slice (B, N) directly for one output: XLA then sees the slices of the
            # concatenation that differentiating the ravel made, and removes both
            rows = rows.reshape(b, -1) if m == 1 else rows
            columns = [
                rows[..., c : c + k].reshape((b, *shape, *theta_shape)).astype(theta_dtype)
                for c, k, theta_shape, theta_dtype in self.pieces(self.theta_leaves)
            ]
            per_output.append(jax.tree.unflatten(self.theta_def, columns))
        return jax.tree.unflatten(self.out_def, per_output)


def flat_problem(sim: Simulator, theta: Theta, key: Key, program: bool = False):
    """``(x, f, out, program)``: θ raveled to a vector ``x``, the flat simulator
    ``f(x, key) -> y`` (outputs raveled, the estimators' contract), the shapes of ``sim``'s
    output, checked against the simulator's contract, and with ``program`` its traced
    program from the same trace (else None; see `_check_simulator`)."""
    with jax.numpy_dtype_promotion("standard"):
        x, unravel_theta = ravel_pytree(theta)
    out, traced = check_simulator(sim, theta, key, program)

    def f(x, key, checked_by_caller=False):
        with draws_checked_by_caller(checked_by_caller):
            y = sim(unravel_theta(x), key)
        with jax.numpy_dtype_promotion("standard"):
            return ravel_pytree(y)[0]

    return x, f, out, traced


def choose(method: AbstractEstimator, sim: Simulator, theta: Theta, key: Key):
    """``(estimator, notes)``: the estimator that runs for ``sim`` (``method`` itself, or
    the one `sg.Auto` chooses from the program) and the notes saying why."""
    x, f, _, _ = flat_problem(sim, theta, key)
    return method.choose(f, x, key)


class _PerSample(eqx.Module):
    """Per-sample values, gradients and bias estimates in the user's structure (a leading
    sample axis on every leaf); also their means, and sums of squared deviations."""

    value: Output
    grad: Jacobian
    bias: Jacobian | None


class _Moments(eqx.Module):
    """Count, means and sums of squared deviations of a set of samples, and bad counts."""

    count: Array
    mean: _PerSample
    m2: _PerSample
    n_bad_value: Array
    n_bad_grad: Array

    @classmethod
    def of(cls, per_sample: _PerSample, s: Samples, count_bad: bool) -> "_Moments":
        zero = jnp.zeros((), jnp.int32)
        mean = jax.tree.map(lambda a: jnp.mean(a, axis=0), per_sample)
        m2 = jax.tree.map(lambda a, m: jnp.sum((a - m) ** 2, axis=0), per_sample, mean)
        return cls(
            count=jnp.asarray(s.value.shape[0], jnp.int32),
            mean=mean,
            m2=m2,
            n_bad_value=jnp.sum(~s.value_ok, dtype=jnp.int32) if count_bad else zero,
            n_bad_grad=jnp.sum(s.value_ok & ~s.grad_ok, dtype=jnp.int32) if count_bad else zero,
        )

    def merge(self, other: "_Moments") -> "_Moments":
        """Chan, Golub & LeVeque: the moments of the union of two disjoint sets."""

        def mean(a, b):
            n_a, n_b = self.count.astype(a.dtype), other.count.astype(a.dtype)
            return a + (b - a) * (n_b / (n_a + n_b))

        def m2(m2_a, m2_b, mean_a, mean_b):
            n_a, n_b = self.count.astype(m2_a.dtype), other.count.astype(m2_a.dtype)
            return m2_a + m2_b + (mean_b - mean_a) ** 2 * (n_a * n_b / (n_a + n_b))

        return _Moments(
            self.count + other.count,
            jax.tree.map(mean, self.mean, other.mean),
            jax.tree.map(m2, self.m2, other.m2, self.mean, other.mean),
            self.n_bad_value + other.n_bad_value,
            self.n_bad_grad + other.n_bad_grad,
        )


def _refuse_hidden_draws(method, program, n_theta: int) -> None:
    n_rest = len(program.jaxpr.invars) - n_theta
    hidden = hidden_draws(program, [True] * n_theta + [False] * n_rest)
    if hidden:
        raise ValueError(
            f"{method!r}: theta reaches the parameters of {', '.join(hidden)}, a discrete "
            "draw made with jax.random that simgrad cannot see: its contribution to the "
            "gradient would be silently zero. Draw it through simgrad.random instead (e.g. "
            "sg.random.bernoulli(key, p) for jax.random.bernoulli(key, p)), which every "
            "estimator can score or perturb."
        )


def _check_memory(method, x, n_params, n_outputs, chunk, batch_size, n_devices) -> None:
    """Refuse a run whose per-sample results alone cannot fit in one device's memory (a
    lower bound: what the simulator keeps per run is not counted; a chunk is split over
    ``n_devices``), naming ``batch_size``."""
    itemsize = x.dtype.itemsize
    runs = method.evals_per_sample(n_params, n_outputs)
    per_sample = itemsize * (n_outputs * (1 + 3 * n_params) + runs * n_outputs)
    budget = _memory_bytes() // 2
    if -(-chunk // n_devices) * per_sample <= budget:
        return
    fits = max(1, 2 ** int(math.log2(max(1, n_devices * budget // (8 * per_sample)))))
    which = f"batch_size={chunk}" if batch_size is not None else f"n_samples={chunk} at once"
    raise ValueError(
        f"{which}: the per-sample results alone need {chunk * per_sample / 2**30:.1f} "
        f"GiB, more than half of the {2 * budget / 2**30:.0f} GiB of memory"
        + (f" of each of {n_devices} devices" if n_devices > 1 else "")
        + f". Pass "
        f"batch_size={fits} (or smaller): samples then run in chunks with memory "
        "proportional to batch_size, and the statistics are accumulated chunk by chunk."
    )


@functools.cache
def _memory_bytes() -> int:
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
