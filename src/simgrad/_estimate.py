"""`gradient`, the one entry point; `Estimate`, what it returns; `estimate`, the engine.

The engine (`estimate`) is a pure JAX function: ravel θ and the simulator's outputs to
flat vectors, derive each sample's key from its index, run the estimator chunk by chunk,
accumulate means and variances as it goes (memory O(batch_size)), and restore the user's
structure. `gradient` validates, runs the engine through a compiled function cached on the
static parts (simulator, estimator, sizes), and returns at once: the `Estimate` holds
device arrays and a status; its numbers are checked the first time one is read.
"""

import contextlib
import copy
import functools
import inspect
import math
import os
import types
import weakref
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Int

from . import _blackbox
from ._check._scan import scan
from ._src.program import draw_sites, trace
from ._src.program.hidden import hidden_draws
from ._src.program.sites import draws_checked_by_caller
from ._src.program.valid import valid_draws
from ._types import SIMULATION_ERROR_MARK as _MARK
from ._types import Jacobian, Key, Output, Simulator, Theta
from .estimators.base import AbstractEstimator, Samples

_AXIS = "samples"  # the one axis of the device mesh: samples are split along it
MAX_SAMPLES = 2**32 - 1  # sample i's key is fold_in(key, i) with a 32-bit index


class SimulationError(RuntimeError):
    """The simulator produced NaN or inf for some samples, or θ was not finite at run time
    (a run-time error, tier 2).

    Raised by `sg.gradient` (when a number of the `Estimate` is first read) with the count
    of bad samples. Inside a compiled program (an outer `jax.jit`, `sg.optimize`) a run-time
    error can only surface as JAX's own ``JaxRuntimeError`` (or equinox's
    ``EquinoxRuntimeError``); `simulation_errors` turns those back into this class.
    """


@contextlib.contextmanager
def simulation_errors():
    """Turn simgrad's run-time errors raised inside compiled code into `SimulationError`.

    Inside an outer `jax.jit` the NaN check of `sg.gradient` runs on the device, and the
    error reaches Python as ``JaxRuntimeError`` (``EquinoxRuntimeError`` under
    `equinox.filter_jit`) when the result is first waited for. Wrap the code that waits:

    >>> import jax, jax.numpy as jnp, simgrad as sg
    >>> @jax.jit
    ... def grad_at(theta):
    ...     sim = lambda t, k: jnp.log(jax.random.uniform(k) - 0.5) * t   # NaN half the time
    ...     return sg.gradient(sim, theta, jax.random.key(0), method=sg.Pathwise(),
    ...                        n_samples=8).grad
    >>> try:
    ...     with sg.simulation_errors():
    ...         jax.block_until_ready(grad_at(1.0))
    ... except sg.SimulationError as e:
    ...     print(type(e).__name__)
    SimulationError

    Other exceptions pass through unchanged; the original is chained (``__cause__``).
    """
    try:
        yield
    except (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError) as error:
        text = str(error)
        if _MARK not in text:
            raise
        message = text.split(_MARK, 1)[1].split("\n", 1)[0]
        raise SimulationError(message) from error


class Estimate(eqx.Module):
    r"""A Monte Carlo estimate of $\mathbb{E}[f]$ and $\nabla_\theta \mathbb{E}[f]$ with error bars.

    For a simulator with several outputs (an array or a pytree), ``grad`` is the Jacobian,
    laid out as `jax.jacrev` lays it out: the output's structure, in it θ's structure,
    each leaf of shape ``output_leaf.shape + theta_leaf.shape`` (for a scalar output,
    θ's structure and shapes). ``grad_std``, ``grad_stderr`` and ``grad_bias`` share that
    layout; ``value`` and ``value_stderr`` have the output's structure.

    Attributes:
        value: the mean of the simulator's replicates.
        value_stderr: its standard error, ``std / sqrt(n_samples)``.
        grad: the mean of the per-sample gradient (Jacobian) estimates.
        grad_std: the per-sample standard deviation of the single-sample estimator.
        grad_stderr: ``grad_std / sqrt(n_samples)``, the standard error of ``grad``.
        grad_bias: for a biased estimator (finite differences), an estimate of ``grad``'s
            deterministic error (its truncation error); None for unbiased estimators.
        n_samples: the number of replicates (keys).
        n_evals: the simulator evaluations they cost (e.g. ``4N + 1`` per sample for
            central finite differences with ``N`` parameters).
        method: the estimator that produced it.
        notes: diagnostics about how it was computed (tier 3), printed in the repr.
        status: ``int32[3]``: the number of samples with a non-finite value (-1: some
            sample failed, not yet counted), of samples with a finite value but a
            non-finite gradient, and the index of the first non-finite θ leaf (-1 for
            none). The numbers above are checked against it the first time one is read
            (`SimulationError`, or ValueError for θ), so no wrong number can be read.
    """

    _value: Output
    _value_stderr: Output
    _grad: Jacobian
    _grad_std: Jacobian
    _grad_stderr: Jacobian
    _grad_bias: Jacobian | None
    status: Int[Array, "3"]
    n_samples: int = eqx.field(static=True)
    n_evals: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    notes: tuple[str, ...] = eqx.field(static=True, default=())
    _theta_structure: jax.tree_util.PyTreeDef | None = eqx.field(static=True, default=None)
    _hint: str = eqx.field(static=True, default="")
    _recount: Callable[[], "Estimate"] | None = eqx.field(static=True, default=None)

    @property
    def value(self) -> Output:
        _raise_if_failed(self)
        return self._value

    @property
    def value_stderr(self) -> Output:
        _raise_if_failed(self)
        return self._value_stderr

    @property
    def grad(self) -> Jacobian:
        _raise_if_failed(self)
        return self._grad

    @property
    def grad_std(self) -> Jacobian:
        _raise_if_failed(self)
        return self._grad_std

    @property
    def grad_stderr(self) -> Jacobian:
        _raise_if_failed(self)
        return self._grad_stderr

    @property
    def grad_bias(self) -> Jacobian | None:
        _raise_if_failed(self)
        return self._grad_bias

    def raise_if_failed(self) -> None:
        """Raise if the run failed (waiting for it); nothing inside a trace, where
        `sg.gradient` checks on the device instead. Reading any number does this first."""
        _raise_if_failed(self)

    def __repr__(self) -> str:
        if isinstance(self.status, jax.core.Tracer):
            return eqx.tree_pformat(self)
        _raise_if_failed(self)
        keystr = jax.tree_util.keystr
        lines = [f"Estimate({self.method}, n_samples={self.n_samples}, n_evals={self.n_evals})"]
        out_def = jax.tree.structure(self._value)
        outs = jax.tree_util.tree_flatten_with_path(self._value)[0]
        scalar = len(outs) == 1 and not outs[0][0] and np.ndim(outs[0][1]) == 0
        for (path, v), s in zip(outs, jax.tree.leaves(self._value_stderr), strict=True):
            lines.append(f"  value{keystr(path)} = {_pm(v, s)}")
        if not scalar:
            lines.append("  grad, the Jacobian, one row per output entry:")

        def per_output(tree):
            return [None] * len(outs) if tree is None else out_def.flatten_up_to(tree)

        grads = (per_output(self._grad), per_output(self._grad_stderr), per_output(self._grad_bias))
        parts = zip(outs, *grads, strict=True)
        for (opath, v), g, s, b in parts:
            theta_leaves = jax.tree_util.tree_flatten_with_path(g)[0]
            s_leaves = jax.tree.leaves(s)
            b_leaves = [None] * len(theta_leaves) if b is None else jax.tree.leaves(b)
            if scalar:
                for (tpath, gl), sl, bl in zip(theta_leaves, s_leaves, b_leaves, strict=True):
                    lines.append(f"  grad{keystr(tpath)} = {_pm(gl, sl, bl)}")
                continue
            rows = list(np.ndindex(np.shape(v)))
            for row in rows[:6]:
                at = keystr(opath) + "".join(f"[{i}]" for i in row)
                for (tpath, gl), sl, bl in zip(theta_leaves, s_leaves, b_leaves, strict=True):
                    pick = lambda a, row=row: None if a is None else np.asarray(a)[row]  # noqa: E731
                    entry = _pm(pick(gl), pick(sl), pick(bl))
                    lines.append(f"  ∂value{at}/∂theta{keystr(tpath)} = {entry}")
            if len(rows) > 6:
                lines.append(f"  … {len(rows) - 6} more rows for value{keystr(opath)}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _raise_if_failed(est: Estimate) -> None:
    """`Estimate.raise_if_failed` (a function: equinox wraps methods, which is slow)."""
    status = est.status
    if isinstance(status, jax.core.Tracer) or not isinstance(status, jax.Array | np.ndarray):
        return  # inside a trace (checked on the device), or shapes only (jax.eval_shape)
    try:
        n_bad_value, n_bad_grad, bad_leaf = np.asarray(status).tolist()
    except jax.errors.JaxRuntimeError as error:
        raise _runtime_error(error, est.n_samples) from error
    if bad_leaf >= 0:
        where = _leaf_name(est._theta_structure, bad_leaf)
        raise ValueError(f"{where} is not finite: parameters must be finite.")
    if n_bad_value < 0 and est._recount is not None:  # some failed: count them
        try:
            n_bad_value, n_bad_grad, _ = np.asarray(est._recount().status).tolist()
        except (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError) as error:
            raise _runtime_error(error, est.n_samples) from error  # a draw's invalid parameter
        if n_bad_value == n_bad_grad == 0:
            raise SimulationError(
                f"{est.method}: every sample is finite but their mean or variance "
                "overflowed (inf): the outputs or gradients are too large for their "
                "dtype. Rescale the simulator's output, or use float64 "
                "(jax.config.update('jax_enable_x64', True))."
            )
    if n_bad_value or n_bad_grad:
        raise SimulationError(
            failure_message(est.method, est.n_samples, n_bad_value, n_bad_grad, est._hint)
        )


def _leaf_name(structure, index: int) -> str:
    if structure is None:
        return "theta"
    placeholders = jax.tree.unflatten(structure, list(range(structure.num_leaves)))
    path = jax.tree_util.tree_flatten_with_path(placeholders)[0][index][0]
    return f"theta{jax.tree_util.keystr(path)}"


def _pm(x, stderr, bias=None) -> str:
    """``1.2345 ± 0.0012`` elementwise, the standard error to 2 significant figures, and the
    truncation estimate of a biased estimator beside it (never a bare "± 0")."""
    x, stderr = np.asarray(x), np.asarray(stderr)
    flat_bias = [None] * x.size if bias is None else np.asarray(bias).ravel().tolist()

    def one(a, s, b):
        text = f"{a:.6g} ± {s:.2g}"
        return text if b is None else f"{text} (truncation ≈ {abs(b):.2g})"

    if x.ndim == 0:
        return one(float(x), float(stderr), flat_bias[0])
    parts = zip(x.ravel()[:6].tolist(), stderr.ravel()[:6].tolist(), flat_bias[:6], strict=True)
    more = ", …" if x.size > 6 else ""
    return f"[{', '.join(one(a, s, b) for a, s, b in parts)}{more}] (shape {x.shape})"


def gradient(
    sim: Simulator,
    theta: Theta,
    key: Key,
    *,
    method: AbstractEstimator,
    n_samples: int,
    batch_size: int | None = None,
    executor=None,
    devices: int | Sequence[jax.Device] | None = None,
) -> Estimate:
    r"""Estimate $\nabla_\theta \mathbb{E}_{key}[\mathrm{sim}(\theta, key)]$ and its standard error.

    Sample ``i`` uses the key ``jax.random.fold_in(key, i)`` (the same keys as
    ``jax.random.split(key, n_samples)``); ``method`` turns each into one sample of the
    value and the gradient; all samples run batched in one compiled call, which is cached:
    a second call with the same simulator, estimator and shapes does not recompile, and
    returns at once (the device works on while Python goes on). The `Estimate` is checked
    when one of its numbers is first read: NaN or inf from the simulator raises
    `SimulationError` then, never a wrong number.

    A simulator with several outputs (an array or a pytree of them) gets the Jacobian:
    ``grad`` has the output's structure, in it θ's, each leaf of shape
    ``output_leaf.shape + theta_leaf.shape`` (as `jax.jacrev`).

    Arguments:
        sim: ``sim(theta, key) -> output``, one replicate, all randomness from ``key``;
            the output a float, an array or a pytree of floats, written in JAX.
        theta: a float, an array, or a pytree (dict, tuple, list, ``eqx.Module``) of
            floating arrays, with at least one parameter. A module that also holds
            functions or integers (an ``eqx.nn.MLP``) is split with `eqx.partition` first.
        key: a JAX PRNG key, e.g. ``jax.random.key(0)``.
        method: an estimator, e.g. ``sg.Pathwise()`` or ``sg.FiniteDifference()``.
        n_samples: the number of replicates, 2 to 2**32 - 1 (a standard error needs two).
        batch_size: run the samples in chunks of this size, one after the other, with
            memory O(batch_size) whatever ``n_samples`` (means and variances are
            accumulated chunk by chunk). Every sample is the same for any batch size;
            the totals agree to rounding (the order of summation differs: relative
            differences of a few ε per chunk). Batch baselines of the score function
            (``"mean"``, ``"loo"``, ``"ema"``, ``"cv"``) then couple the samples within a
            chunk only (said in ``Estimate.notes``).
        executor: for an `sg.BlackBox` simulator only: where its evaluations run — None
            (this process), a ``concurrent.futures.Executor`` or a
            ``dask.distributed.Client`` (docs/scale.md).
        devices: the devices the samples are sharded over: None (the default) for every
            local device, an int ``k`` for the first ``k`` of them, or a sequence of
            devices (``jax.devices()`` for every device of a multi-host run started with
            `jax.distributed`). Each chunk's samples are split along one axis of a
            ``jax.sharding.Mesh``; statistics are reduced across devices. The same key
            gives the same estimate on any number of devices, up to the order of
            summation (docs/scale.md).

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> def sim(theta, key):                       # E[sim] = theta², gradient 2 theta
        ...     return (theta + jax.random.normal(key)) ** 2 - 1.0
        >>> est = sg.gradient(sim, 1.5, jax.random.key(0), method=sg.Pathwise(),
        ...                   n_samples=10_000)
        >>> abs(float(est.grad) - 3.0) < 4 * float(est.grad_stderr)
        True

    Raises:
        TypeError, ValueError: on misuse that can be seen before running, naming the fix
            (also for a simulator that breaks the contract: NumPy or Python control flow
            on traced values, the wrong number of arguments).
        SimulationError: when the simulator produces NaN or inf for some samples (on
            first reading the `Estimate`; inside `jax.jit`, see `simulation_errors`).
    """
    # Fast path: the static arguments of a recent call, the very same objects, were checked
    # then; only θ and the key change from call to call.
    recent = None
    if executor is None and type(n_samples) is int and type(batch_size) in _SIZE_TYPES:
        try:
            recent = _RECENT.get((id(sim), _method_key(method), n_samples, batch_size, devices))
        except TypeError:  # unhashable arguments: the checked path
            pass
    if recent is not None and recent[0]() is sim:
        runner = recent[1]
    elif executor is not None or isinstance(sim, _blackbox.BlackBox):
        _blackbox.check_devices(devices)
        return _blackbox.gradient(
            sim, theta, key, method=method, n_samples=n_samples, batch_size=batch_size,
            executor=executor,
        )  # fmt: skip
    else:
        n_samples, batch_size = check_arguments(sim, key, method, n_samples, batch_size)
        runner = _runner(sim, method, n_samples, batch_size, sample_mesh(devices))
        _remember_recent(sim, method, n_samples, batch_size, devices, runner)
    sim_arrays = runner.sim_arrays
    # The common case, checked fast: θ's leaves and the key are concrete JAX arrays of kinds
    # seen before; their dtypes and shapes are checked when the runner is traced for them.
    plain = runner.plain and _plain(theta, key)
    traced = False
    if not plain:
        _check_key(key)
        theta = check_theta(theta, to_device=runner.mesh is not None)
        traced = isinstance(key, jax.core.Tracer) or _traced(theta, sim_arrays)
        if runner.mesh is not None and not traced:  # arrays committed to one device, copied
            theta, key, sim_arrays = replicate((theta, key, sim_arrays), runner.mesh)
    if traced:  # differentiating an estimate by accident is an error, never a silent zero
        theta, sim_arrays = _no_derivative((theta, sim_arrays))
    try:
        est = runner.run(sim_arrays, theta, key)
    except jax.errors.JaxRuntimeError as error:
        raise _runtime_error(error, runner.n_samples) from error
    if traced or _traced(est._value):  # inside jit or vmap, or a closure over a traced value
        return check_on_device(_no_derivative(est))
    # The count of bad samples is needed only when some failed: then (on first reading)
    # the same samples run again, counting.
    object.__setattr__(est, "_recount", functools.partial(runner.count, sim_arrays, theta, key))
    return est


_SIZE_TYPES = (int, type(None))
_CONCRETE: set = set()  # the types of concrete JAX arrays (not tracers) seen by `check_theta`


def _plain(theta, key) -> bool:
    """Whether ``key`` and every leaf of ``theta`` are concrete JAX arrays (not tracers,
    not host values, which must be checked for finiteness and converted)."""
    if type(key) not in _CONCRETE:
        return False
    for leaf in jax.tree.leaves(theta):
        if type(leaf) not in _CONCRETE:
            return False
    return True


class _Runner:
    """A compiled `estimate` for one simulator, estimator, sample size and mesh: ``run``
    and ``count`` take only arrays (the simulator's own arrays, θ, the key). θ and the key
    are validated when they are traced (once per structure, dtype and shape), so that a
    call with arrays of a kind seen before needs no check in Python (`gradient`'s fast
    path)."""

    def __init__(self, sim_rest, method, n_samples, batch_size, mesh, sim_arrays):
        def go(count, sim_arrays, theta, key):
            _check_key(key)
            check_theta(theta)
            sim = eqx.combine(sim_arrays, sim_rest)
            return estimate(sim, theta, key, method=method, n_samples=n_samples,
                            batch_size=batch_size, count=count, mesh=mesh)  # fmt: skip

        self.run = jax.jit(functools.partial(go, False))
        self.count = jax.jit(functools.partial(go, True))
        self.n_samples, self.mesh = n_samples, mesh
        self.use(sim_arrays)
        self.sim_ref = lambda: None

    def use(self, sim_arrays) -> None:
        """Run with these arrays of the simulator; ``plain``: without a mesh, and with
        concrete arrays (eligible for `gradient`'s fast path)."""
        self.sim_arrays = sim_arrays
        self.plain = self.mesh is None and not _traced(sim_arrays)


_BY_IDENTITY: dict = {}
_BY_VALUE: dict = {}
_CACHE_SIZE = 128


def _runner(sim, method, n_samples, batch_size, mesh=None) -> _Runner:
    """The cached `_Runner`: looked up by the simulator's identity first (no hashing of
    the simulator, no equality test of modules), then by value (an equal simulator built
    anew); a new one is compiled on the first call with new static parts."""
    method_key = _method_key(method)
    identity = (id(sim), method_key, n_samples, batch_size, mesh)
    runner = _BY_IDENTITY.get(identity)
    if runner is not None and runner.sim_ref() is sim:
        return runner
    sim_arrays, sim_rest = None, sim
    if not isinstance(sim, types.FunctionType):
        arrays, rest = eqx.partition(sim, eqx.is_array)
        if jax.tree.leaves(arrays):  # no arrays: nothing to pass (or flatten) per call
            sim_arrays, sim_rest = arrays, rest
    value = (sim_rest, method_key, n_samples, batch_size, mesh)
    try:
        runner = _BY_VALUE.get(value)
    except TypeError:  # an unhashable simulator: compiled afresh on every call
        return _Runner(sim_rest, method, n_samples, batch_size, mesh, sim_arrays)
    if runner is None:
        runner = _Runner(sim_rest, method, n_samples, batch_size, mesh, sim_arrays)
        _remember(_BY_VALUE, value, runner)
    else:  # same static parts, perhaps other arrays: share the compiled functions
        runner = copy.copy(runner)
        runner.use(sim_arrays)
    try:
        runner.sim_ref = weakref.ref(sim)
    except TypeError:  # cannot be referenced weakly: looked up by value every call
        return runner
    _remember(_BY_IDENTITY, identity, runner)
    return runner


_RECENT: dict = {}


def _method_key(method):
    """An estimator's type and hyperparameters (its static fields), hashable; None for
    anything else (which then takes the checked path)."""
    if not isinstance(method, AbstractEstimator):
        return None
    return (type(method), *vars(method).values())


def _remember_recent(sim, method, n_samples, batch_size, devices, runner) -> None:
    try:
        key = (id(sim), _method_key(method), n_samples, batch_size, devices)
        _remember(_RECENT, key, (weakref.ref(sim), runner))
    except TypeError:  # not weakly referable, or unhashable hyperparameters
        return


def _remember(cache: dict, key, value) -> None:
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        del cache[next(iter(cache))]


def _traced(*trees) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def refuse_derivatives(message: str):
    """The identity, whose derivative raises ``TypeError(message)``: placed where JAX
    differentiating through would silently give a wrong number."""

    @jax.custom_jvp
    def guard(tree):
        return tree

    @guard.defjvp
    def guard_jvp(primals, tangents):
        raise TypeError(message)

    return guard


_no_derivative = refuse_derivatives(
    "sg.gradient's result is being differentiated (jax.grad, jax.jvp or jax.jacfwd "
    "through sg.gradient(...).value or .grad): JAX would differentiate the Monte Carlo "
    "estimator itself, not the expectation, and return a wrong (often zero) derivative. "
    "Use sg.expectation(sim, method=..., n_samples=...), whose value JAX differentiates "
    "with the estimator's gradient; or call sg.gradient outside the differentiated "
    "function and use est.grad directly."
)


def check_on_device(est: Estimate) -> Estimate:
    """Attach the run-time checks to an `Estimate` computed inside a trace (`jax.jit`,
    `vmap`): reading any number then raises if θ or a sample was not finite (as
    ``JaxRuntimeError``; see `simulation_errors`). Eager results are checked on reading."""
    n_bad_value, n_bad_grad, bad_leaf = est.status[0], est.status[1], est.status[2]
    numbers = (est._value, est._value_stderr, est._grad, est._grad_std, est._grad_stderr)
    numbers = (*numbers, est._grad_bias)
    numbers = eqx.error_if(
        numbers, bad_leaf >= 0, _MARK + "theta is not finite: parameters must be finite."
    )
    message = _nonfinite_message(est.method, est.n_samples, "some")
    what = " (count them by calling sg.gradient outside jit)"
    failed = (n_bad_value != 0) | (n_bad_grad != 0)
    numbers = eqx.error_if(numbers, failed, _MARK + message.format(what=what))
    fields = ("_value", "_value_stderr", "_grad", "_grad_std", "_grad_stderr", "_grad_bias")
    return eqx.tree_at(
        lambda e: [getattr(e, f) for f in fields], est, list(numbers), is_leaf=lambda x: x is None
    )


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
    out_def = jax.tree.structure(out)
    out_shapes = [leaf.shape for leaf in jax.tree.leaves(out)]
    chooser, (method, notes) = method, method.choose(f, x, key)
    name = repr(method) if method is chooser else f"{chooser!r} → {method!r}"
    if program is None and (method.sees_draws or method.perturbs_theta):  # chosen: Auto's
        program = trace(sim, theta, key)

    n_params, n_outputs = x.size, sum(math.prod(shape) for shape in out_shapes)
    if method.sees_draws:
        _refuse_hidden_draws(method, program, n_theta)
    if not count and (program is None or draw_sites(program)):
        # Traced parameters of simgrad.random draws are checked without host callbacks (so
        # that JAX can cache the compiled program on disk): a sample is NaN when a draw's
        # parameters were invalid. The counting run, made only when some sample failed,
        # keeps the draws' own run-time errors, which name the parameter.
        f = valid_draws(trace(functools.partial(f, checked_by_caller=True), x, key)) or f
    chunk = n_samples if batch_size is None else min(batch_size, n_samples)
    n_devices = 1 if mesh is None else mesh.size
    _check_memory(method, x, n_params, n_outputs, chunk, batch_size, n_devices)
    split = None if mesh is None else NamedSharding(mesh, PartitionSpec(_AXIS))

    theta_leaves, theta_def = jax.tree.flatten(theta)
    out_leaves = jax.tree.leaves(out)

    def pieces(leaves):  # (offset, size, shape, dtype) of each leaf in its ravel
        offsets = np.cumsum([0] + [math.prod(np.shape(a)) for a in leaves])
        return [(int(o), int(e - o), np.shape(a), a.dtype) for o, e, a in
                zip(offsets[:-1], offsets[1:], leaves, strict=True)]  # fmt: skip

    def structured(flat):  # (B, m) -> outputs, or (B, m, N) -> Jacobian; plain slices
        b = flat.shape[0]
        per_output = []
        for o, m, shape, dtype in pieces(out_leaves):
            rows = flat[:, o : o + m] if flat.shape[1] > m else flat
            if flat.ndim == 2:
                per_output.append(rows.reshape((b, *shape)).astype(dtype))
                continue
            # slice (B, N) directly for one output: XLA then sees the slices of the
            # concatenation that differentiating the ravel made, and removes both
            rows = rows.reshape(b, -1) if m == 1 else rows
            columns = [
                rows[..., c : c + k].reshape((b, *shape, *theta_shape)).astype(theta_dtype)
                for c, k, theta_shape, theta_dtype in pieces(theta_leaves)
            ]
            per_output.append(jax.tree.unflatten(theta_def, columns))
        return jax.tree.unflatten(out_def, per_output)

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
        per_sample = _PerSample(
            structured(s.value),
            structured(s.grad),
            None if s.bias is None else structured(s.bias),
        )
        return _Moments.of(per_sample, s, count)

    n_full, rest = divmod(n_samples, chunk)
    if n_full == 1 and rest == 0:
        moments = run(0, chunk)
    else:

        def step(carry, _):
            c, acc = carry
            return (c + 1, acc.merge(run(c * jnp.uint32(chunk), chunk))), None

        empty = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: run(0, chunk)))
        (_, moments), _ = jax.lax.scan(step, (jnp.uint32(0), empty), length=n_full)
        if rest:
            moments = moments.merge(run(n_full * chunk, rest))

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
    if chunk < n_samples and method.couples_samples:
        notes = (
            *notes,
            f"the baseline couples samples within each chunk of batch_size={chunk}, "
            f"not across all {n_samples}",
        )
    if method.perturbs_theta:  # at trace time: once per compilation, not per call
        notes = (*notes, *scan(program, n_theta).fd_hazards)
    return Estimate(
        _value=moments.mean.value,
        _value_stderr=jax.tree.map(lambda s: s / root_n, std.value),
        _grad=moments.mean.grad,
        _grad_std=std.grad,
        _grad_stderr=jax.tree.map(lambda s: s / root_n, std.grad),
        _grad_bias=moments.mean.bias,
        status=jnp.stack([n_bad_value, n_bad_grad, bad_leaf]),
        n_samples=n_samples,
        n_evals=n_samples * method.evals_per_sample(n_params, n_outputs),
        method=name,
        notes=notes,
        _theta_structure=jax.tree.structure(theta),
        _hint=method.gradient_nan_hint,
    )


def flat_problem(sim: Simulator, theta: Theta, key: Key, program: bool = False):
    """``(x, f, out, program)``: θ raveled to a vector ``x``, the flat simulator
    ``f(x, key) -> y`` (outputs raveled, the estimators' contract), the shapes of ``sim``'s
    output, checked against the simulator's contract, and with ``program`` its traced
    program from the same trace (else None; see `_check_simulator`)."""
    with jax.numpy_dtype_promotion("standard"):
        x, unravel_theta = ravel_pytree(theta)
    out, program = _check_simulator(sim, theta, key, program)

    def f(x, key, checked_by_caller=False):
        with draws_checked_by_caller(checked_by_caller):
            y = sim(unravel_theta(x), key)
        with jax.numpy_dtype_promotion("standard"):
            return ravel_pytree(y)[0]

    return x, f, out, program


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


def failure_message(method: str, n_samples: int, n_bad_value, n_bad_grad, hint: str) -> str:
    """The `SimulationError` text for counted failures (``n_bad_value = -1``: uncounted);
    ``hint`` is the estimator's ``gradient_nan_hint``, used when only gradients failed."""
    if n_bad_value < 0:
        return _nonfinite_message(method, n_samples, "some").format(what="")
    what = f" (the value itself in {n_bad_value})" if n_bad_value else " (the gradient only)"
    hint = hint if n_bad_grad and not n_bad_value else ""
    message = _nonfinite_message(method, n_samples, n_bad_value + n_bad_grad, hint)
    return message.format(what=what)


def count_failures(
    sim, theta, key, *, method, n_samples, batch_size=None, mesh=None
) -> tuple[int, int]:
    """``(n_bad_value, n_bad_grad)`` of a run that failed: the same samples run again,
    counting (compiled once per simulator and estimator, like `gradient`). For callers that
    run `estimate` inside their own compiled loop (`sg.optimize`) and must say how many
    samples failed."""
    runner = _runner(sim, method, n_samples, batch_size, mesh)
    sim_arrays, theta, key = replicate((runner.sim_arrays, theta, key), mesh)
    try:
        status = np.asarray(runner.count(sim_arrays, theta, key).status)
    except (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError) as error:
        raise _runtime_error(error, n_samples) from error  # a draw's invalid parameter
    n_bad_value, n_bad_grad, _ = status
    return int(n_bad_value), int(n_bad_grad)


def _nonfinite_message(method: str, n_samples: int, n, hint: str = "") -> str:
    """The `SimulationError` text; ``{what}`` is left for the caller to fill."""
    return f"{method}: the simulator gave NaN or inf in {n} of {n_samples} samples{{what}}." + (
        hint
        or " Look for log, sqrt, division or overflow that the sampled randomness can reach; "
        "NaN in the gradient only often comes from jnp.where with a NaN branch, or from "
        "sqrt/abs at 0. Fix the simulator; simgrad does not drop samples silently."
    )


def _runtime_error(error: Exception, n_samples: int) -> Exception:
    text = str(error)
    if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
        return MemoryError(
            f"sg.gradient ran out of memory with n_samples={n_samples}: pass batch_size= "
            "(e.g. batch_size=2**14) to run the samples in chunks; memory is then "
            "proportional to batch_size, not n_samples."
        )
    if _MARK in text:
        return SimulationError(text.split(_MARK, 1)[1].split("\n", 1)[0])
    return error


# --- validation ---------------------------------------------------------------------------


def check_arguments(sim, key, method, n_samples, batch_size) -> tuple[int, int | None]:
    """Validate what `sg.gradient` takes besides θ; returns ``(n_samples, batch_size)`` as
    Python ints (NumPy integers accepted)."""
    _check_method(method)
    if not callable(sim):
        raise TypeError(f"sim must be a function sim(theta, key) -> float, got {type(sim)}.")
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
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"batch_size={batch_size!r}: must be a positive int or None.")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be a positive int or None.")
    _check_key(key)
    return n_samples, batch_size


def sample_mesh(devices) -> Mesh | None:
    """The mesh that samples are sharded over, from a ``devices=`` argument (see
    `gradient`); None for the default device alone: the single-device program, unchanged."""
    local = jax.local_devices()
    if devices is None:
        chosen = local
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={devices}: this process has {len(local)} local "
                f"{local[0].platform} device(s); pass 1 to {len(local)}, None for all of "
                "them, or a sequence of jax.Device (jax.devices() in a multi-host run)."
            )
        chosen = local[: int(devices)]
    else:
        chosen = list(devices) if isinstance(devices, (list, tuple)) else None
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise TypeError(
                "devices must be None (every local device), an int k (the first k local "
                "devices) or a non-empty list of jax.Device such as jax.devices(), got "
                f"{devices!r}."
            )
        if len(set(chosen)) < len(chosen):
            raise ValueError(f"devices={devices!r} names a device twice: list each once.")
    if len(chosen) == 1 and chosen[0] == local[0]:
        return None
    return _mesh(tuple(chosen))


@functools.cache
def _mesh(devices: tuple) -> Mesh:
    return Mesh(np.array(devices), (_AXIS,))


def replicate(tree, mesh: Mesh | None):
    """``tree`` on every device of ``mesh`` (a no-op without one): a compiled run over a
    mesh refuses arguments committed to one device (``jax.device_put(x, device)``). Over
    several processes (`jax.distributed`) each process passes its own copy of the same
    values, assembled into one global array."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(functools.partial(_global, sharding=sharding), tree)


def _global(x, sharding):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x  # already global
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _global(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


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
    if isinstance(key, jax.Array) and key.shape == () and key.dtype in _KEY_DTYPES:
        return  # the common case, fast: a typed key seen before
    key_like = isinstance(key, (jax.Array, np.ndarray))
    if key_like and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape == ():
            _KEY_DTYPES.add(key.dtype)
            _note_concrete([key])
            return
        raise ValueError(
            f"key must be a single PRNG key, got a batch of shape {key.shape}. Pass one key; "
            "simgrad derives the n_samples keys itself (or jax.vmap over a batch of keys)."
        )
    if key_like and key.dtype == jnp.uint32 and key.shape == (2,):  # legacy raw key
        _note_concrete([key])
        return
    raise TypeError(f"key must be a JAX PRNG key such as jax.random.key(0), got {_describe(key)}.")


def _note_concrete(arrays) -> None:
    """Remember the types of concrete JAX arrays that passed a check (see `_plain`)."""
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
            _note_concrete(leaves)
            return theta
    checked = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, jax.Array):
            dtype = leaf.dtype
        elif isinstance(leaf, (float, int, np.ndarray, np.generic)) and not isinstance(leaf, bool):
            dtype = np.asarray(leaf).dtype
        else:
            where = _leaf_name(treedef, i)
            hint = f" {_PARTITION}" if len(leaves) > 1 or callable(leaf) else ""
            raise TypeError(
                f"{where} must be a float or a floating array, got {_describe(leaf)}.{hint}"
            )
        if not jnp.issubdtype(dtype, jnp.floating):
            where = _leaf_name(treedef, i)
            hint = f" {_PARTITION}" if isinstance(theta, eqx.Module) else ""
            raise TypeError(
                f"{where} has dtype {dtype}: parameters must be floating, e.g. 1.0 "
                f"instead of 1, or x.astype(float).{hint}"
            )
        if not isinstance(leaf, jax.Array):
            if not np.isfinite(leaf).all():
                where = _leaf_name(treedef, i)
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


def _check_simulator(sim, theta, key, program: bool = False):
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
            program, out = trace(sim, theta, key, return_shape=True)
        else:
            program, out = None, jax.eval_shape(sim, theta, key)
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
    return out, program


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


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (
        f" of shape {shape} and dtype {dtype}" if shape is not None else ""
    )
