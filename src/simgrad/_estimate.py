"""`gradient`, the one entry point, and its compile cache.

`gradient` validates, runs the engine (`simgrad._engine.estimate`) through a compiled
function cached on the static parts (simulator, estimator, sizes, devices), and returns at
once: the `Estimate` holds device arrays and a status; its numbers are checked the first
time one is read (simgrad._result).
"""

import copy
import functools
import types
import weakref
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.core
import numpy as np

from . import _blackbox
from ._engine import estimate
from ._result import Estimate, check_on_device, refuse_derivatives, runtime_error
from ._src.devices import replicate, sample_mesh
from ._src.executables import Kept, keeping
from ._src.validate import check_arguments, check_key, check_theta, is_plain, is_traced
from ._types import Key, Simulator, Theta
from .estimators.base import AbstractEstimator, check_method

_SIZE_TYPES = (int, type(None))  # sizes that `gradient`'s fast path takes as they are


def gradient(
    sim: Simulator,
    theta: Theta,
    key: Key,
    *,
    method: AbstractEstimator,
    n_samples: int,
    batch_size: int | None = None,
    executor=None,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
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
            recent = _RECENT.get((id(sim), method_key(method), n_samples, batch_size, devices))
        except TypeError:  # unhashable arguments: the checked path
            pass
    if recent is not None and recent[0]() is sim:
        runner = recent[1]
    elif executor is not None or isinstance(sim, _blackbox.BlackBox):
        # A black box runs as a JAX simulator whose body is one host callback; the
        # adapter holds the run's executor, progress bar and first failure around it.
        with _blackbox.evaluations(sim, theta, key, method, n_samples, executor, devices) as bound:
            est = gradient(bound, theta, key, method=method, n_samples=n_samples,
                           batch_size=batch_size, devices=1)  # fmt: skip
            jax.block_until_ready(est)  # every evaluation runs inside the adapter
        object.__setattr__(est, "_recount", None)  # the adapter names a failure; no recount
        return est
    else:
        check_method(method)
        n_samples, batch_size = check_arguments(sim, key, n_samples, batch_size)
        runner = _runner(sim, method, n_samples, batch_size, sample_mesh(devices))
        _remember_recent(sim, method, n_samples, batch_size, devices, runner)
    sim_arrays = runner.sim_arrays
    # The common case, checked fast: θ's leaves and the key are concrete JAX arrays of kinds
    # seen before; their dtypes and shapes are checked when the runner is traced for them.
    plain = runner.plain and is_plain(theta, key)
    traced = False
    if not plain:
        check_key(key)
        theta = check_theta(theta, to_device=runner.mesh is not None)
        traced = isinstance(key, jax.core.Tracer) or is_traced(theta, sim_arrays)
        if runner.mesh is not None and not traced:  # arrays committed to one device, copied
            theta, key, sim_arrays = replicate((theta, key, sim_arrays), runner.mesh)
    if traced:  # differentiating an estimate by accident is an error, never a silent zero
        theta, sim_arrays = _no_derivative((theta, sim_arrays))
    try:
        est = runner.run(sim_arrays, theta, key)
    except jax.errors.JaxRuntimeError as error:
        raise runtime_error(error, runner.n_samples) from error
    if traced or is_traced(est._value):  # inside jit or vmap, or a closure over a traced value
        return check_on_device(_no_derivative(est))
    # The count of bad samples is needed only when some failed: then (on first reading)
    # the same samples run again, counting.
    object.__setattr__(est, "_recount", functools.partial(runner.count, sim_arrays, theta, key))
    return est


class _Runner:
    """A compiled `estimate` for one simulator, estimator, sample size and mesh: ``run``
    and ``count`` take only arrays (the simulator's own arrays, θ, the key). θ and the key
    are validated when they are traced (once per structure, dtype and shape), so that a
    call with arrays of a kind seen before needs no check in Python (`gradient`'s fast
    path)."""

    def __init__(self, sim_rest, method, n_samples, batch_size, mesh, sim_arrays):
        def go(count, sim_arrays, theta, key):
            check_key(key)
            check_theta(theta)
            sim = eqx.combine(sim_arrays, sim_rest)
            return estimate(sim, theta, key, method=method, n_samples=n_samples,
                            batch_size=batch_size, count=count, mesh=mesh)  # fmt: skip

        self.run = jax.jit(functools.partial(go, False))
        if mesh is None and keeping():  # kept on disk (the demo), named by its static parts
            static = (type(sim_rest), sim_rest, method, n_samples, batch_size)
            self.run = Kept(self.run, functools.partial(repr, static))
        self.count = jax.jit(functools.partial(go, True))
        self.n_samples, self.mesh = n_samples, mesh
        self.use(sim_arrays)
        self.sim_ref: Callable[[], object] = lambda: None  # a weak reference, once known

    def use(self, sim_arrays) -> None:
        """Run with these arrays of the simulator; ``plain``: without a mesh, and with
        concrete arrays (eligible for `gradient`'s fast path)."""
        self.sim_arrays = sim_arrays
        self.plain = self.mesh is None and not is_traced(sim_arrays)


_BY_IDENTITY: dict = {}
_BY_VALUE: dict = {}
_CACHE_SIZE = 128


def _runner(sim, method, n_samples, batch_size, mesh=None) -> _Runner:
    """The cached `_Runner`: looked up by the simulator's identity first (no hashing of
    the simulator, no equality test of modules), then by value (an equal simulator built
    anew); a new one is compiled on the first call with new static parts."""
    hyper = method_key(method)
    identity = (id(sim), hyper, n_samples, batch_size, mesh)
    runner = _BY_IDENTITY.get(identity)
    if runner is not None and runner.sim_ref() is sim:
        return runner
    sim_arrays, sim_rest = None, sim
    if not isinstance(sim, types.FunctionType):
        arrays, rest = eqx.partition(sim, eqx.is_array)
        if jax.tree.leaves(arrays):  # no arrays: nothing to pass (or flatten) per call
            sim_arrays, sim_rest = arrays, rest
    value = (sim_rest, hyper, n_samples, batch_size, mesh)
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


def method_key(method):
    """An estimator's type and hyperparameters (its static fields), hashable; None for
    anything else (which then takes the checked path)."""
    if not isinstance(method, AbstractEstimator):
        return None
    return (type(method), *vars(method).values())


def _remember_recent(sim, method, n_samples, batch_size, devices, runner) -> None:
    try:
        key = (id(sim), method_key(method), n_samples, batch_size, devices)
        _remember(_RECENT, key, (weakref.ref(sim), runner))
    except TypeError:  # not weakly referable, or unhashable hyperparameters
        return


def _remember(cache: dict, key, value) -> None:
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        del cache[next(iter(cache))]


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
        raise runtime_error(error, n_samples) from error  # a draw's invalid parameter
    n_bad_value, n_bad_grad, _ = status
    return int(n_bad_value), int(n_bad_grad)


_no_derivative = refuse_derivatives(
    "sg.gradient's result is being differentiated (jax.grad, jax.jvp or jax.jacfwd "
    "through sg.gradient(...).value or .grad): JAX would differentiate the Monte Carlo "
    "estimator itself, not the expectation, and return a wrong (often zero) derivative. "
    "Use sg.expectation(sim, method=..., n_samples=...), whose value JAX differentiates "
    "with the estimator's gradient; or call sg.gradient outside the differentiated "
    "function and use est.grad directly."
)
