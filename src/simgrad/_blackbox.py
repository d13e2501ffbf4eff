"""`sg.BlackBox`: simulators not written in JAX, estimated from evaluations alone.

How it runs: `sg.gradient` binds a `BlackBox` to its executor (`bind`), which makes it an
ordinary JAX simulator whose body is one ``jax.pure_callback``. The estimator — finite
differences, SPSA, Gaussian smoothing — then runs exactly as on a JAX simulator: it picks
the points and the keys, batched under ``vmap``, and the statistics are the engine's, as
for any simulator. The callback receives the whole
batch of (θ, key) pairs at once, turns each key into an int seed, and runs ``fn(θ, seed)``
for every pair: in this process, or as tasks of ``chunk_size`` evaluations on a
``concurrent.futures`` executor or a Dask cluster.

Seeds are a function of the key and the sample index only, never of scheduling, so a task
retried on another worker computes the same numbers. Once per run the first evaluation
runs again (`_Run.check_seed`): ``fn`` must give the same output for the same (θ, seed).

With ``timeout``, each run of ``fn`` runs in a daemon thread of whichever process evaluates
it (this one, a pool's worker, a Dask worker), and a run past the limit is abandoned and
reported; Ctrl-C while evaluations run stops the call and raises ``KeyboardInterrupt``.
"""

import concurrent.futures
import contextlib
import functools
import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._result import SimulationError
from ._src.devices import sample_mesh
from ._src.runs import progress_bar
from ._types import SIMULATION_ERROR_MARK, Key
from .estimators.base import check_method

WORKING = "sg.FiniteDifference(), sg.SPSA() or sg.GaussianSmoothing(sigma)"


class BlackBox(eqx.Module):
    r"""A simulator not written in JAX: ``fn(theta, seed: int) -> float``.

    ``theta`` arrives as NumPy arrays in the structure the caller passed to `sg.gradient`
    (a dict stays a dict; a scalar is a 0-d array); all randomness comes from ``seed``, for
    instance ``np.random.default_rng(seed)`` or ``random.Random(seed)``. Same θ and seed →
    same output: that is what common random numbers need. ``fn`` may be NumPy, SimPy, an
    agent-based model or a binary run through ``subprocess``; it must not call JAX.

    It runs through the one entry point with the estimators that need only evaluations —
    `sg.FiniteDifference` (common random numbers: the same seed for θ ± h), `sg.SPSA`,
    `sg.GaussianSmoothing`; the others refuse it::

        est = sg.gradient(sg.BlackBox(fn), theta, key, method=sg.SPSA(),
                          n_samples=1000, executor=client)

    ``executor=None`` evaluates in this process; a ``concurrent.futures.Executor`` (a
    process pool) or a ``dask.distributed.Client`` runs the evaluations as tasks of
    ``chunk_size`` evaluations each. With Dask, a worker that dies loses nothing: its tasks
    are run again elsewhere, with the same seeds, so the estimate is the uninterrupted one.

    **Reproducible from the seed.** Once per call (of `sg.gradient`, `sg.optimize`, or per
    batch inside a user's ``jit``) the first evaluation runs a second time, with the same θ
    and seed (one extra run, not counted in ``n_evals``); if the two outputs differ (beyond
    a relative 1e-9), the call is refused with `sg.SimulationError`: an ``fn`` that draws
    from a global generator, the clock or the process id defeats common random numbers and
    gives honest but useless error bars. A deterministic ``fn`` may ignore its seed.

    **Seeds.** Sample ``i`` of ``sg.gradient(..., key)`` has the key ``k_i =
    jax.random.fold_in(key, i)`` (the same keys as ``jax.random.split(key, n_samples)``),
    and every run of that sample gets the seed ``BlackBox.seed(k_i)``: the 63-bit integer
    ``b[0] * 2**31 + b[1] // 2`` of ``b = jax.random.bits(k_i, (2,), jnp.uint32)``. (Finite
    differences with ``crn=False`` split ``k_i`` per run, so each run gets its own seed.) A
    program that takes 32-bit seeds can use ``seed % 2**32``.

    Errors: an exception inside ``fn`` stops the run and is raised as `sg.SimulationError`
    naming the θ and seed that raised (with the remote traceback); a NaN or inf result, or
    a run past ``timeout``, names its sample and seed. The error's ``theta`` and ``seed``
    attributes reproduce it: ``fn(error.theta, error.seed)``. `sg.optimize` raises it
    naming the step; inside a user's ``jit`` it reaches Python as JAX's
    ``JaxRuntimeError``, which ``with sg.simulation_errors():`` turns back into
    `sg.SimulationError`. Ctrl-C while ``fn`` runs stops the call (``KeyboardInterrupt``):
    tasks not started are cancelled; a process pool's running tasks finish (or time out)
    in their workers.

    Arguments:
        fn: ``fn(theta, seed) -> float``; for a process pool or Dask it must be picklable
            (a module-level function or an instance of a module-level class).
        chunk_size: evaluations per task; ``None`` sizes tasks so that each worker gets
            about eight (see docs/scale.md for the per-task overhead that bounds it).
        progress: show a progress bar (evaluations done, evaluations per second).
        timeout: seconds one run of ``fn`` may take, or None (the default) for no limit.
            Each run then goes to a daemon thread (a fraction of a millisecond) wherever it is
            evaluated; one past the limit is abandoned and reported as a failed run. Python
            cannot kill a thread: an abandoned run goes on in the background until it
            returns or its process exits, so give a ``subprocess.run`` in ``fn`` its own
            ``timeout=`` to kill a hung binary.

    Examples:
        >>> import jax, numpy as np, simgrad as sg
        >>> def fn(theta, seed):                    # E = theta², gradient 2 theta
        ...     return (theta + np.random.default_rng(seed).normal()) ** 2 - 1.0
        >>> est = sg.gradient(sg.BlackBox(fn, progress=False), 1.5, jax.random.key(0),
        ...                   method=sg.FiniteDifference(), n_samples=400)
        >>> abs(float(est.grad) - 3.0) < 4 * float(est.grad_stderr)
        True
    """

    fn: Callable = eqx.field(static=True)
    chunk_size: int | None = eqx.field(default=None, static=True)
    progress: bool = eqx.field(default=True, static=True)
    timeout: float | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if isinstance(self.fn, BlackBox) or not callable(self.fn):
            raise TypeError(
                f"sg.BlackBox(fn): fn must be a function fn(theta, seed) -> float, got {self.fn!r}."
            )
        size = self.chunk_size
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1
        ):
            raise ValueError(
                f"sg.BlackBox(chunk_size={size!r}): evaluations per task, a positive int, "
                "or None to size tasks automatically."
            )
        if not isinstance(self.progress, bool):
            raise TypeError(f"sg.BlackBox(progress={self.progress!r}): must be True or False.")
        limit = self.timeout
        if limit is None:
            return
        what = f"sg.BlackBox(timeout={limit!r}): seconds one run of fn may take"
        if isinstance(limit, bool) or not isinstance(limit, (int, float, np.integer, np.floating)):
            raise TypeError(f"{what}, a number such as timeout=60.0, or None for no limit.")
        if not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"{what}: a positive finite number, or None for no limit.")

    @staticmethod
    def seed(key: Key) -> int:
        """The int seed that ``fn`` gets for a run with ``key`` (see the class docstring)."""
        return int(seeds_of(np.asarray(jax.random.bits(key, (2,), jnp.uint32))[None])[0])


def seeds_of(bits: np.ndarray) -> np.ndarray:
    """Seeds from ``jax.random.bits(k, (2,), uint32)`` rows: ``b0 * 2**31 + b1 // 2``."""
    bits = bits.astype(np.uint64)
    return ((bits[:, 0] << np.uint64(31)) | (bits[:, 1] >> np.uint64(1))).astype(np.int64)


def bind(sim, method, executor):
    """What `sg.gradient` and `sg.optimize` run: a `BlackBox` bound to ``executor``.

    Checks that ``method`` needs only evaluations and that ``executor`` can run tasks; a
    JAX simulator is returned unchanged, and refuses an executor.
    """
    if not isinstance(sim, BlackBox):
        if executor is not None:
            raise TypeError(
                "executor= runs the evaluations of an sg.BlackBox simulator; a JAX simulator "
                "runs batched (vmap) in one compiled call. Drop executor=, or wrap a "
                "simulator not written in JAX as sg.BlackBox(fn)."
            )
        return sim
    check_method(method)
    if not method.evaluations_only:
        raise TypeError(
            f"{method!r} needs more than evaluations of the simulator (derivatives or a view "
            f"of its JAX program), and an sg.BlackBox gives only evaluations. Use {WORKING}."
        )
    if executor is not None and not (
        isinstance(executor, concurrent.futures.Executor) or _is_dask(executor)
    ):
        raise TypeError(
            f"executor must be None (run in this process), a concurrent.futures.Executor "
            f"such as ProcessPoolExecutor(), or a dask.distributed.Client, got {executor!r}."
        )
    return _Bound(sim.fn, executor, sim.chunk_size, sim.timeout)


def check_devices(devices) -> None:
    """Refuse ``devices=`` beyond the default device for a black box: its evaluations run
    on the host (on ``executor``), not on the devices that JAX simulators are sharded over."""
    if devices is not None and sample_mesh(devices) is not None:
        raise TypeError(
            f"devices={devices!r}: devices= shards the samples of a JAX simulator over "
            "devices; an sg.BlackBox's evaluations run on the host, spread over workers by "
            "executor= (a process pool or a dask.distributed.Client). Drop devices=."
        )


@contextlib.contextmanager
def evaluations(sim, theta, key, method, n_samples, executor, devices):
    """The adapter through which `sg.gradient` runs a `BlackBox`: yields the JAX simulator
    to estimate (one ``pure_callback``), and holds the run around it — the executor, the
    progress bar, the first failure, named with its θ and seed when the run ends.

    The compiled program depends on ``fn`` alone: this run hands the executor and the
    settings to the callback, so calls that differ only in them share a compilation.
    """
    check_devices(devices)
    bound = bind(sim, method, executor)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((theta, key))):
        yield bound  # inside jit: no progress bar; a failure raises inside the callback
        return
    bound = _Bound(sim.fn, None, None, None)  # this run brings the executor and settings
    try:
        n_params = sum(np.size(x) for x in jax.tree.leaves(theta))
        total = int(n_samples) * method.evals_per_sample(n_params, 1)
    except (TypeError, ValueError):
        total = 0  # misuse: the engine names it
    bar = progress_bar("evaluating", "rate", sim.progress and total > 0, total, 0)
    state = _Run(bound, executor, sim.chunk_size, sim.timeout, bar, raise_now=False)
    with _current(state):
        try:
            with bar:
                yield bound  # every evaluation runs while this run is current
        except Exception:
            state.raise_failure(key, n_samples)
            raise
    state.raise_failure(key, n_samples)


@contextlib.contextmanager
def failures(sim):
    """For `sg.optimize`: while it runs, a bound black box's first failure (or Ctrl-C) is
    kept, and its evaluations return NaN, so that the step fails as on a JAX simulator's
    NaN; yields the run, whose `_Run.raise_failure` then names it (None for a JAX sim)."""
    if not isinstance(sim, _Bound):
        yield None
        return
    with _current(_Run(sim, sim.executor, sim.chunk_size, sim.timeout, raise_now=False)) as run:
        yield run


@contextlib.contextmanager
def _current(run: "_Run"):
    """Make ``run`` the one the callback reports to (one at a time per process)."""
    global _RUN
    with _RUN_LOCK:
        previous, _RUN = _RUN, run
        try:
            yield run
        finally:
            _RUN = previous


class _Bound(eqx.Module):
    """A `BlackBox` as a JAX simulator: one ``pure_callback`` running ``fn``.

    Inside `gradient` the evaluations go to that call's executor, in its chunks, with its
    timeout; elsewhere (`sg.optimize`, a user's ``jit``) to ``executor`` in chunks of
    ``chunk_size``, with ``timeout``.
    """

    fn: Callable = eqx.field(static=True)
    executor: Any = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    timeout: float | None = eqx.field(static=True)

    def __call__(self, theta, key):
        leaves, treedef = jax.tree.flatten(theta)
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.result_type(*leaves)
        bits = jax.random.bits(key, (2,), jnp.uint32)
        ranks = tuple(jnp.ndim(x) for x in leaves)
        return jax.pure_callback(
            _Evaluate(self, treedef, ranks, np.dtype(dtype)),
            jax.ShapeDtypeStruct((), dtype),
            leaves,
            bits,
            vmap_method="expand_dims",  # one call for the whole batch of (θ, key) pairs
        )


class _Evaluate:
    """The host side of the callback: a batch of (θ, key bits) → ``fn(θ, seed)`` for each."""

    def __init__(self, sim: _Bound, treedef, ranks, dtype):
        self.sim, self.treedef, self.ranks, self.dtype = sim, treedef, ranks, dtype

    def __repr__(self) -> str:  # a checkpoint's fingerprint reads it (addresses stripped)
        return f"BlackBox({self.sim.fn!r})"

    def __call__(self, leaves, bits):
        # vmap_method="expand_dims": each argument has the batch dims, of size 1 if unbatched
        shapes = [x.shape[x.ndim - r :] for x, r in zip(leaves, self.ranks, strict=True)]
        batch = np.broadcast_shapes(
            bits.shape[:-1],
            *(x.shape[: x.ndim - len(s)] for x, s in zip(leaves, shapes, strict=True)),
        )
        n = math.prod(batch)
        flat = [
            np.broadcast_to(x, batch + s).reshape(n, *s)
            for x, s in zip(leaves, shapes, strict=True)
        ]
        seeds = seeds_of(np.broadcast_to(bits, (*batch, 2)).reshape(n, 2))
        unflatten = functools.partial(jax.tree.unflatten, self.treedef)
        thetas = [unflatten([np.array(x[j]) for x in flat]) for j in range(n)]
        run = _RUN
        if run is None or run.sim != self.sim:
            run = _Run(self.sim, self.sim.executor, self.sim.chunk_size, self.sim.timeout)
        values = run.evaluate(thetas, [int(s) for s in seeds])
        return values.reshape(batch).astype(self.dtype)


class _Failure:
    """The first evaluation that failed: what happened, at which θ and seed.

    ``detail`` is the traceback of an exception raised by ``fn`` (text: it may come from
    another machine); ``cause`` the exception itself when it was raised in this process.
    """

    def __init__(self, theta, seed, what: str, detail: str = "", cause=None, hint: str = ""):
        self.theta, self.seed, self.what, self.detail, self.cause = theta, seed, what, detail, cause
        self.hint = hint

    def error(self, key=None, n_samples=None, context: str = "") -> SimulationError:
        """The `SimulationError`; its first line (``context``, then what happened, where and
        the fix) is the whole message that crosses a compiled program (`carried_message`)."""
        if self.seed is None:  # the executor itself failed
            return SimulationError(f"{context}sg.BlackBox: {self.what}")
        where = f"seed={self.seed}"
        if key is not None:
            where = f"{where}, {_sample_of(self.seed, key, n_samples)}"
        with np.printoptions(precision=17, threshold=20, linewidth=2**31 - 1):
            theta = repr(self.theta)
        error = SimulationError(
            f"{context}sg.BlackBox: {self.what} at theta={theta}, {where}. Reproduce it with "
            f"fn(error.theta, error.seed); simgrad does not drop samples silently.{self.hint}"
            # raised in this process: the exception is chained; elsewhere only its text came
            + (f"\n\nThe traceback of fn:\n{self.detail}" if self.detail and not self.cause else "")
        )
        error.theta, error.seed = self.theta, self.seed
        return error


def _sample_of(seed: int, key, n_samples) -> str:
    """Which sample of `sg.gradient` ran with ``seed`` (sample ``i`` has ``fold_in(key, i)``)."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n_samples))
    bits = jax.vmap(lambda k: jax.random.bits(k, (2,), jnp.uint32))(keys)
    hits = np.flatnonzero(seeds_of(np.asarray(bits)) == seed)
    if hits.size:
        return f"sample {int(hits[0])} of {n_samples}"
    return "a run whose key the estimator split from its sample's"


class _Run:
    """One call's evaluations: the progress bar, the first failure, the seed check.

    Inside `sg.gradient` and `sg.optimize` the failure (or a Ctrl-C) is kept, the remaining
    evaluations return NaN without running, and the caller raises it once the engine
    returns (`raise_failure`). Elsewhere (the callback running inside a user's ``jit``),
    ``raise_now``: it is raised from the callback, and JAX reports it inside a
    ``JaxRuntimeError`` that carries its message (`sg.simulation_errors`).
    """

    def __init__(
        self, sim: _Bound, executor, chunk_size, timeout, bar=None, raise_now: bool = True
    ):
        self.sim, self.executor, self.chunk_size, self.timeout = sim, executor, chunk_size, timeout
        self.bar, self.raise_now, self.failure = bar, raise_now, None
        self.done, self.start, self.interrupted, self.seed_checked = 0, None, False, False

    def evaluate(self, thetas: list, seeds: list[int]) -> np.ndarray:
        n = len(thetas)
        values = np.full(n, np.nan)
        if self.failure is not None or self.interrupted or n == 0:
            return values
        executor = self.executor
        if self.start is None:
            self.start = time.monotonic()
        workers = 1 if executor is None else _workers(executor)
        size = self.chunk_size or max(1, math.ceil(n / (8 * workers)))
        if executor is None and self.chunk_size is None:
            size = max(1, n // 100)  # in this process chunks only pace the progress bar
        starts = range(0, n, size)
        pieces = [_Chunk(thetas[i : i + size], seeds[i : i + size]) for i in starts]
        try:
            self._record(self._completed(pieces), starts, thetas, seeds, values)
            if self.failure is None and not self.seed_checked:
                self.seed_checked = True
                self.check_seed(thetas[0], seeds[0], values[0])
        except KeyboardInterrupt:
            if self.raise_now:
                raise
            self.interrupted = True  # Ctrl-C: `raise_failure` raises it once the engine returns
        except Exception as error:  # the executor failed (a dead pool, an unpicklable fn)
            self.failure = _Failure(None, None, _executor_failure(error), cause=error)
        if self.failure is None and not self.interrupted:
            return values
        if self.raise_now:
            assert self.failure is not None  # an interruption was raised above
            raise self.failure.error(context=SIMULATION_ERROR_MARK) from self.failure.cause
        values[:] = np.nan  # the engine sees a failed run; the caller raises the failure
        return values

    def check_seed(self, theta, seed: int, first: float) -> None:
        """Run (θ, seed) again, where the others ran: the same output, or a failure."""
        again = np.full(1, np.nan)
        completed = self._completed([_Chunk([theta], [seed])])
        self._record(completed, range(1), [theta], [seed], again, count=False)
        if self.failure is None and not math.isclose(first, again[0], rel_tol=1e-9):
            self.failure = _Failure(
                theta,
                seed,
                f"fn gave {float(first)!r}, then {float(again[0])!r}, for the same theta and seed",
                hint=" fn must be a function of (theta, seed): common random numbers and "
                "reproducible estimates need it. Derive all randomness from seed "
                "(np.random.default_rng(seed), random.Random(seed), your binary's seed "
                "option), not from a global generator, the clock or the process id.",
            )

    def raise_failure(self, key=None, n_samples=None, context: str = "") -> None:
        """Raise what stopped the run, if anything: Ctrl-C, or the first failure."""
        if self.interrupted:
            raise KeyboardInterrupt
        if self.failure is not None:
            raise self.failure.error(key, n_samples, context) from self.failure.cause

    def _completed(self, pieces: list["_Chunk"]):
        return contextlib.closing(_completed(self.executor, self.sim.fn, pieces, self.timeout))

    def _record(self, completed, starts, thetas, seeds, values, count: bool = True) -> None:
        """Fill ``values`` as tasks complete, stopping at the first failure."""
        with completed as results_in_order_of_completion:
            for index, (results, raised) in results_in_order_of_completion:
                start = starts[index]
                values[start : start + len(results)] = results
                if count:
                    self._advance(len(results))
                if raised is not None:
                    j, what, detail, cause, hint = raised
                    j += start
                    self.failure = _Failure(thetas[j], seeds[j], what, detail, cause, hint)
                    return
                bad = np.flatnonzero(~np.isfinite(values[start : start + len(results)]))
                if bad.size:
                    j = start + int(bad[0])
                    self.failure = _Failure(thetas[j], seeds[j], f"fn returned {values[j]}")
                    return

    def _advance(self, k: int) -> None:
        self.done += k
        if self.bar is not None and self.bar.tasks:
            assert self.start is not None  # set by `evaluate` before any result comes in
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            self.bar.update(self.bar.tasks[0].id, completed=self.done, rate=f"{rate:.3g} evals/s")


_RUN: _Run | None = None  # the run in progress (`_current`), read by the callback
_RUN_LOCK = threading.RLock()  # one black-box run at a time per process (nested: innermost)


class _Chunk:
    """One task's inputs; an opaque object, so that Dask does not walk the θ pytrees."""

    def __init__(self, thetas: list, seeds: list[int]):
        self.thetas, self.seeds = thetas, seeds


def _evaluate_chunk(chunk: _Chunk, fn, timeout=None, keep_cause: bool = False):
    """One task: ``fn`` on each (θ, seed), stopping at the first exception or timeout.

    Returns ``(values, None)``, or ``(values so far, (index, what, traceback, cause,
    hint))``: text, and the exception object itself only in this process (it may not
    survive pickling).
    """
    values = []
    for theta, seed in zip(chunk.thetas, chunk.seeds, strict=True):
        try:
            values.append(_run_one(fn, theta, seed, timeout))
        except _TimedOut:
            what = f"fn did not return within timeout={timeout} s"
            hint = (
                " The run was abandoned (Python cannot kill a thread: it goes on in the "
                "background; give a subprocess.run in fn its own timeout= to kill a hung "
                "binary). If runs this long are expected, raise the limit: "
                "sg.BlackBox(fn, timeout=...), or timeout=None for none."
            )
            return values, (len(values), what, "", None, hint)
        except Exception as error:
            what = f"fn raised {type(error).__name__}: {error}"
            detail = "".join(traceback.format_exception(error))
            return values, (len(values), what, detail, error if keep_cause else None, "")
    return values, None


class _TimedOut(Exception):
    """A run of ``fn`` that did not return within the black box's timeout."""


def _run_one(fn, theta, seed: int, timeout) -> float:
    """``fn(theta, seed)`` as one float; with ``timeout``, in a daemon thread, abandoned
    (`_TimedOut`) if it has not returned in time (a daemon thread never blocks exit)."""
    if timeout is None:
        return _one_float(fn(theta, seed))
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run():
        try:
            future.set_result(_one_float(fn(theta, seed)))
        except BaseException as error:  # handed to the waiting thread, which raises it
            future.set_exception(error)

    threading.Thread(target=run, name="sg.BlackBox fn", daemon=True).start()
    done, _ = concurrent.futures.wait([future], timeout)  # Ctrl-C interrupts the wait
    if not done:
        raise _TimedOut
    return future.result()


def _one_float(y) -> float:
    y = np.asarray(y)
    if y.shape != () or y.dtype.kind not in "biuf":
        raise TypeError(
            f"fn must return one float, got an array of shape {y.shape} and dtype "
            f"{y.dtype}: reduce the output to the objective whose gradient you want."
        )
    return float(y)


def _completed(executor, fn, pieces: list[_Chunk], timeout=None):
    """Yield ``(index, result)`` of each task as it completes; cancel the rest when closed."""
    if executor is None:
        for i, piece in enumerate(pieces):
            yield i, _evaluate_chunk(piece, fn, timeout, keep_cause=True)
    elif _is_dask(executor):
        from distributed import as_completed

        futures = executor.map(_evaluate_chunk, pieces, fn=fn, timeout=timeout, pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        try:  # whatever has finished, fetched in one gather by this thread
            for batch in as_completed(futures).batches():
                for future, result in zip(batch, executor.gather(batch), strict=True):
                    yield index[future.key], result
        finally:
            executor.cancel([f for f in futures if not f.done()])
    else:
        futures = {
            executor.submit(_evaluate_chunk, piece, fn, timeout): i
            for i, piece in enumerate(pieces)
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _executor_failure(error: Exception) -> str:
    hint = ""
    if isinstance(error, concurrent.futures.process.BrokenProcessPool):
        hint = (
            " A worker process died (killed, or out of memory); a process pool cannot "
            "recover its tasks. A dask.distributed.Client runs them again on other workers."
        )
    elif "pickl" in f"{type(error).__name__} {error}".lower():
        hint = (
            " fn must be picklable to run on other processes: define it at module level "
            "(not inside a function or as a lambda), or use a dask.distributed.Client, "
            "which pickles closures too."
        )
    return f"the executor failed: {type(error).__name__}: {error}.{hint}"


def _is_dask(executor) -> bool:
    """Whether ``executor`` is a ``dask.distributed.Client`` (without importing Dask)."""
    if not type(executor).__module__.startswith("distributed"):
        return False
    from distributed import Client

    return isinstance(executor, Client)


def _workers(executor) -> int:
    """How many evaluations ``executor`` runs at once (for sizing tasks)."""
    if _is_dask(executor):
        return max(1, sum(executor.nthreads().values()))
    # concurrent.futures keeps its pool size private; the default pool is one per core.
    return getattr(executor, "_max_workers", None) or os.cpu_count() or 1
