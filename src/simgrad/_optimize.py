"""`optimize`: stochastic gradient descent on E[sim(theta, key)] with any estimator."""

import functools
import math
import os
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array

from . import _blackbox
from ._engine import choose as _choose
from ._engine import estimate as _engine
from ._estimate import count_failures
from ._result import AbstractResult, Estimate, SimulationError, failure_message, plus_minus
from ._src import runs
from ._src.devices import replicate, sample_mesh
from ._src.names import named_components, path_name
from ._src.plots import finish, panels
from ._src.validate import check_callable, check_size
from ._src.validate import check_key as _check_key
from ._src.validate import check_theta as _check_theta
from ._types import Key, Simulator, Theta
from .estimators import AbstractEstimator, Auto
from .estimators.base import check_method


class OptimizeHistory(AbstractResult):
    """Per step: where the estimate was taken, and the estimate with its standard errors.

    Every field has a leading axis of length ``steps``; ``theta``, ``grad`` and
    ``grad_stderr`` have ``theta``'s structure. ``projected[i]`` is True where the bounds
    moved the update of step ``i``.
    """

    theta: Theta
    value: Array
    value_stderr: Array
    grad: Theta
    grad_stderr: Theta
    projected: Array

    def summary(self) -> str:
        n = len(self.value)
        return (
            f"OptimizeHistory({n} steps: value {float(self.value[0]):.6g} → "
            f"{float(self.value[-1]):.6g}, {int(np.sum(self.projected))} projected)"
        )


class OptimizeResult(AbstractResult):
    """What `optimize` returns: the final parameters and the whole history.

    ``value``/``value_stderr`` are the last step's estimate of ``E[sim]`` (taken at the
    parameters before the last update); ``n_evals`` counts every simulator run, those of
    an optimiser's line search included. ``opt_state`` is the optimiser's final state
    (e.g. ``optax.tree_utils.tree_get(result.opt_state, "scale")`` for
    ``reduce_on_plateau``).
    """

    theta: Theta
    history: OptimizeHistory
    opt_state: optax.OptState
    n_steps: int = eqx.field(static=True)
    n_evals: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    @property
    def value(self) -> Array:
        return self.history.value[-1]

    @property
    def value_stderr(self) -> Array:
        return self.history.value_stderr[-1]

    def plot(self, ax=None, *, path=None, exact: Theta | None = None, title: str = ""):
        """The objective ± one standard error, and each parameter, against the step.

        ``ax``: two matplotlib Axes to draw into (objective, parameters), or None for a new
        figure. ``exact`` (optional, ``theta``'s structure) draws the known optimum as
        dashed lines. Saves to ``path`` if given; returns the two Axes.
        """
        steps = np.arange(self.n_steps)
        value = np.asarray(self.history.value)
        stderr = np.asarray(self.history.value_stderr)
        left, right = axes = panels(ax, path, 2, figsize=(10, 3.8))
        left.plot(steps, value, lw=1)
        left.fill_between(steps, value - stderr, value + stderr, alpha=0.3, lw=0)
        left.set(xlabel="step", ylabel="E[sim] ± stderr", title=title or "objective")
        paths = jax.tree_util.tree_flatten_with_path(self.history.theta)[0]
        exact_parts = named_components(exact) if exact is not None else {}
        for i, (key_path, leaf) in enumerate(paths):
            leaf = np.asarray(leaf).reshape(self.n_steps, -1)
            base = path_name(key_path)
            for j in range(leaf.shape[1]):
                label = base if leaf.shape[1] == 1 else f"{base}[{j}]"
                right.plot(steps, leaf[:, j], color=f"C{(i + j) % 10}", label=label)
        for j, (name, target) in enumerate(exact_parts.items()):
            right.axhline(target, color=f"C{j % 10}", ls="--", lw=1, label=f"optimum {name}")
        right.set(xlabel="step", ylabel="parameters", title="parameters")
        right.legend(fontsize=8)
        return finish(axes, path, laid_out=ax is None)

    def summary(self) -> str:
        lines = [
            f"OptimizeResult({self.method}, {self.n_steps} steps, n_evals={self.n_evals})",
            f"  value = {plus_minus(self.value, self.value_stderr)} (the last step's estimate)",
        ]
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(self.theta)[0]:
            lines.append(f"  theta{jax.tree_util.keystr(key_path)} = {np.asarray(leaf)}")
        return "\n".join(lines)


class _Carry(eqx.Module):
    """What one step hands to the next (and a checkpoint holds, with the history)."""

    step: Array
    theta: Theta
    opt_state: optax.OptState
    key_data: Array  # raw key bits: serialisable, unlike typed keys
    n_estimates: Array  # estimates made so far: one per step, plus line-search evaluations


class _Row(eqx.Module):
    """One step's record; `OptimizeHistory` without ``grad_std``, kept for callbacks."""

    theta: Theta
    value: Array | jax.ShapeDtypeStruct  # shape structs in the template of `_row_like`
    value_stderr: Array | jax.ShapeDtypeStruct
    grad: Theta
    grad_std: Theta
    grad_stderr: Theta
    projected: Array | jax.ShapeDtypeStruct


class _Stable:
    """An optimiser compared by its settings (`runs.fingerprint`), not by identity.

    optax optimisers are closures, so ``optax.adam(1e-3)`` is a new object at every call;
    keyed by this, a compiled run is reused by any optimiser with equal settings.
    """

    def __init__(self, optimizer):
        self.optimizer = optax.with_extra_args_support(optimizer)
        nans = []
        self.key = runs.fingerprint(optimizer, stable=False, visit=lambda x: nans.append(_nan(x)))
        self.has_nan = any(nans)  # a NaN setting, e.g. optax.adam(float("nan"))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Stable) and self.key == other.key


def optimize(
    sim: Simulator,
    theta0: Theta,
    key: Key,
    *,
    steps: int,
    n_samples: int,
    method: AbstractEstimator | None = None,
    optimizer: optax.GradientTransformation | None = None,
    maximize: bool = False,
    bounds: tuple[Theta, Theta] | None = None,
    batch_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Estimate], None] | None = None,
    executor=None,
    devices: int | Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]  # jaxlib has no stubs
) -> OptimizeResult:
    r"""Minimise (or maximise) $\mathbb{E}_{key}[\mathrm{sim}(\theta, key)]$ by gradient steps.

    Each step draws a fresh key, estimates the gradient with ``method`` from ``n_samples``
    replicates (as `sg.gradient` does), and applies one ``optimizer`` update. Steps run
    compiled, many at a time, between progress updates and checkpoints; each step costs
    the same however long the run. The history keeps every step's estimate with its
    standard errors.

    Optimisers that need the objective get it, as optax's
    ``GradientTransformationExtraArgs`` asks: ``value`` (the step's estimate of
    ``E[sim]``), ``grad`` and ``value_fn``. ``value_fn(θ')`` is a Monte Carlo estimate
    with the *step's key* (common random numbers: a line search compares values of one
    sample average, so its comparisons are not swamped by noise) whose JAX gradient is
    ``method``'s estimate. So ``optax.lbfgs()`` and
    ``optax.contrib.reduce_on_plateau`` work; a line search then solves each step's
    sample-average problem (of ``n_samples`` replicates), and each of its evaluations
    costs one estimate, counted in ``n_evals``. Use it with ``n_samples`` large enough
    that one sample average is close to the expectation.

    Arguments:
        sim, theta0, key: as for `sg.gradient`; ``theta0`` is the starting point.
        steps: the number of optimisation steps.
        n_samples: replicates per step (at least 2).
        method: the estimator; default ``sg.Auto()``, which chooses one from the program
            once, at ``theta0`` (``result.method`` is the one chosen).
        optimizer: any optax optimiser; default ``optax.adam(1e-2)``.
        maximize: ascend instead of descend (a reward, a likelihood).
        bounds: ``(lower, upper)``, pytrees like ``theta`` or scalars: after each update
            θ is projected onto the box (``optax.projections.projection_box``) and the
            step is marked in ``history.projected`` — never clipped silently.
        batch_size: as for `sg.gradient`.
        checkpoint: a file; every ``checkpoint_every`` steps, on Ctrl-C and at the end,
            the optimiser state, θ, the key and the history are written there (equinox
            serialisation, no pickle, atomically, with a checksum and a fingerprint of the
            run). ``resume=True`` continues from it, reproducing an uninterrupted run bit
            for bit, also with a larger ``steps``; a checkpoint of a different run
            (simulator, key, optimiser, θ₀, bounds, method, n_samples) is refused.
        progress: show a progress bar with the current value ± its standard error.
        callback: ``callback(step, estimate)`` after each step (logging, early stopping
            by raising an exception). With a callback, steps run one at a time.
        executor: for an `sg.BlackBox` simulator: where its evaluations run, as for
            `sg.gradient`.
        devices: the devices each step's samples are sharded over, as for `sg.gradient`
            (default: every local device). A checkpoint resumes on other devices too, with
            steps equal up to the order of summation.

    Raises:
        SimulationError: the simulator gave NaN or inf, or an `sg.BlackBox` run raised or
            timed out (the message names the step; for a black box also θ and the seed).
        FloatingPointError: θ became non-finite: the optimiser diverged.
        CheckpointError: the checkpoint is corrupted or from a different run.

    Examples:
        >>> import jax, simgrad as sg
        >>> sim = lambda t, k: (t - 3.0 + jax.random.normal(k)) ** 2    # minimum at t = 3
        >>> res = sg.optimize(sim, 0.0, jax.random.key(0), steps=300, n_samples=64,
        ...                   optimizer=__import__("optax").adam(0.1), progress=False)
        >>> abs(float(res.theta) - 3.0) < 0.1
        True
    """
    method = Auto() if method is None else method
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    check_method(method)
    if isinstance(sim, _blackbox.BlackBox):  # its evaluations run through executor
        _blackbox.check_devices(devices)
        sim, mesh = _blackbox.bind(sim, method, executor), None
    else:
        sim, mesh = _blackbox.bind(sim, method, executor), sample_mesh(devices)
    _check_arguments(sim, optimizer, steps, n_samples, checkpoint_every, batch_size, callback)
    steps, n_samples, checkpoint_every = int(steps), int(n_samples), int(checkpoint_every)
    _check_key(key)
    theta0 = _check_theta(theta0)
    method = _choose(method, sim, theta0, key)[0]  # sg.Auto chooses once, from the program
    stable = _Stable(optimizer)
    if stable.has_nan:
        raise ValueError(
            "optimizer holds a NaN setting (for example optax.adam(learning_rate=nan)): "
            "pass a finite learning rate and finite hyperparameters."
        )
    lower, upper = _check_bounds(bounds, theta0)
    path = runs.check_checkpoint(checkpoint, resume)

    typed_key = _is_typed_key(key)
    zero = jnp.zeros((), jnp.int32)
    carry = _Carry(
        zero, theta0, _init(stable, theta0), jax.random.key_data(key) if typed_key else key, zero
    )
    n_params = sum(x.size for x in jax.tree.leaves(theta0))
    chunk = max(1, min(64, (1 << 21) // max(1, n_params)))  # steps per call, at most
    statics = dict(
        sim=sim,
        method=method,
        optimizer=stable,
        n_samples=n_samples,
        batch_size=batch_size,
        mesh=mesh,
        maximize=bool(maximize),
        typed_key=typed_key,
        chunk=chunk,
    )
    rows = []  # the history so far, on the host: one `_Row` stack per compiled call
    saving = None
    if path is not None:
        saving = _checkpoint(path, checkpoint_every, statics, optimizer, theta0, key, lower, upper)
        if resume and saving.path.exists():
            row = _row_like(theta0, key, sim, method, n_samples, batch_size, mesh)[0]
            (carry, saved), _ = saving.load(lambda step: (carry, _stack(row, step)), steps)
            rows.append(jax.device_get(saved))
    carry, lower, upper = replicate((carry, lower, upper), mesh)
    with _blackbox.failures(sim) as black_box:  # a black box's failure, kept for its step
        advance = functools.partial(
            _advance, lower=lower, upper=upper, statics=statics, black_box=black_box
        )
        (carry, rows), _ = runs.run(
            advance,
            (carry, rows),
            steps=steps,
            progress=runs.Progress("optimising", "objective", _objective, progress),
            done=int(carry.step),
            chunk=chunk,
            callback=callback,
            checkpoint=saving,
            saved=_saved,
        )
    h = jax.device_put(_concatenate(rows))
    return OptimizeResult(
        theta=carry.theta,
        opt_state=carry.opt_state,
        history=OptimizeHistory(
            h.theta, h.value, h.value_stderr, h.grad, h.grad_stderr, h.projected
        ),
        n_steps=steps,
        n_evals=int(carry.n_estimates) * n_samples * method.evals_per_sample(n_params, 1),
        method=repr(method),
    )


def _check_arguments(sim, optimizer, steps, n_samples, checkpoint_every, batch_size, callback):
    """Refuse what can be seen before the run: the types and counts of the arguments."""
    check_callable(sim)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax optimiser such as optax.adam(1e-2), got {optimizer!r}."
        )
    check_size("steps", steps, 1)
    check_size("n_samples", n_samples, 2)
    check_size("checkpoint_every", checkpoint_every, 1)
    check_size("batch_size", batch_size, 1, optional=True)
    if callback is not None:
        check_callable(callback, "callback", "callback(step, estimate)")


def _checkpoint(path, every, statics, optimizer, theta0, key, lower, upper) -> runs.Checkpoint:
    """The run's checkpoint, fingerprinted by everything its steps depend on."""
    run = {
        "simulator": runs.program_hash(statics["sim"], theta0, key),
        "key": runs.key_fingerprint(key),
        "optimizer": runs.fingerprint(optimizer, stable=True),
        "theta0": runs.array_hash(theta0),
        "bounds": runs.array_hash(lower, upper),
        "method": repr(statics["method"]),
        "n_samples": statics["n_samples"],
        "batch_size": statics["batch_size"],
        "maximize": statics["maximize"],
    }
    fix = (
        "Resume with the same simulator, key, optimiser, theta0, bounds, method, "
        "n_samples, batch_size and maximize, or delete the file to start afresh."
    )
    return runs.Checkpoint(path, "optimize checkpoint", run, every, fix)


def _objective(est: Estimate) -> str:
    """The progress bar's field: the step's objective ± its standard error."""
    return f"{est.value:.5g} ± {est.value_stderr:.2g}"


def _advance(state, done, n, *, lower, upper, statics, black_box):
    """Run ``n`` steps compiled (`_run_chunk`), keep their records, raise on a failure."""
    carry, rows = state
    out, buffer, last, status = _run_chunk(
        carry, jnp.asarray(n, jnp.int32), lower, upper, **statics
    )
    _raise_on_failure(jax.device_get(status), out, statics, black_box)
    buffer = jax.device_get(buffer)
    rows.append(jax.tree.map(lambda x: x[:n].copy(), buffer))
    return (out, rows), last


def _saved(state):
    """What a checkpoint holds: the carry and the history, or None before the first step."""
    carry, rows = state
    if rows:
        rows[:] = [_concatenate(rows)]
        return carry, rows[0]


@eqx.filter_jit
def _run_chunk(
    carry, n, lower, upper, *, sim, method, optimizer, n_samples, batch_size, mesh, maximize,
    typed_key, chunk,
):  # fmt: skip
    """Run ``n ≤ chunk`` steps in one ``while_loop``, stopping at the first failure.

    Returns the carry after the last good step, the steps' records (``chunk`` rows, the
    first ``n`` filled), the last estimate and the status ``(ok, theta_finite, n_bad_value,
    n_bad_grad)`` of the last step tried.
    """
    optimizer = optimizer.optimizer
    sign = -1.0 if maximize else 1.0

    def estimate(theta, key):
        return _engine(sim, theta, key, method=method, n_samples=n_samples,
                       batch_size=batch_size, mesh=mesh)  # fmt: skip

    @jax.custom_vjp
    def objective(theta, key):  # what the optimiser minimises, with the estimator's gradient
        return sign * estimate(theta, key).value

    def objective_fwd(theta, key):
        est = estimate(theta, key)
        return sign * est.value, est.grad

    def objective_bwd(grad, cotangent):
        return jax.tree.map(lambda g: sign * cotangent * g, grad), None

    objective.defvjp(objective_fwd, objective_bwd)

    def step(loop):
        i, carry, buffer, _, _ = loop
        key = jax.random.wrap_key_data(carry.key_data) if typed_key else carry.key_data
        key, subkey = jax.random.split(key)
        est = estimate(carry.theta, subkey)
        n_bad_value, n_bad_grad = est.status[0], est.status[1]  # -1: some, not counted
        theta_finite = est.status[2] < 0
        direction = jax.tree.map(jnp.negative, est.grad) if maximize else est.grad
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int counts
            updates, opt_state = optimizer.update(
                direction,
                carry.opt_state,
                carry.theta,
                value=sign * est.value,
                grad=direction,
                value_fn=functools.partial(objective, key=subkey),
            )
        theta = optax.apply_updates(carry.theta, updates)
        projected = jnp.asarray(False)
        if lower is not None:
            boxed = optax.projections.projection_box(theta, lower, upper)
            moved = jax.tree.map(lambda a, b: jnp.any(a != b), theta, boxed)
            projected = jnp.any(jnp.stack(jax.tree.leaves(moved)))
            theta = boxed
        row = _Row(
            carry.theta,
            est.value,
            est.value_stderr,
            est.grad,
            est.grad_std,
            est.grad_stderr,
            projected,
        )
        buffer = jax.tree.map(lambda b, x: b.at[i].set(x), buffer, row)
        searched = optax.tree_utils.tree_get_all_with_path(opt_state, "num_linesearch_steps")
        new = _Carry(
            carry.step + 1,
            theta,
            opt_state,
            jax.random.key_data(key) if typed_key else key,
            carry.n_estimates + 1 + sum(jnp.asarray(c, jnp.int32) for _, c in searched),
        )
        ok = theta_finite & (n_bad_value == 0) & (n_bad_grad == 0)
        carry = jax.lax.cond(ok, lambda: new, lambda: carry)
        return i + 1, carry, buffer, est, (ok, theta_finite, n_bad_value, n_bad_grad)

    first = jax.random.wrap_key_data(carry.key_data) if typed_key else carry.key_data
    row, est_like, status_like = _row_like(
        carry.theta, first, sim, method, n_samples, batch_size, mesh
    )
    zeros = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731
    last, buffer = jax.tree.map(zeros, (est_like, _stack(row, chunk)))
    zero = jnp.zeros(status_like.shape[1:], status_like.dtype)
    status = (jnp.asarray(True), jnp.asarray(True), zero, zero)  # ok, theta finite, 0, 0
    _, carry, buffer, last, status = jax.lax.while_loop(
        lambda loop: (loop[0] < n) & loop[4][0], step, (0, carry, buffer, last, status)
    )
    return carry, buffer, last, status


def _row_like(theta, key, sim, method, n_samples, batch_size, mesh):
    """The shapes of one step's record, estimate and status (`jax.eval_shape`: nothing runs)."""
    est = jax.eval_shape(
        lambda t, k: _engine(
            sim, t, k, method=method, n_samples=n_samples, batch_size=batch_size, mesh=mesh
        ),
        theta,
        key,
    )
    status = est.status
    struct = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    row = _Row(
        jax.tree.map(struct, theta),
        est.value,
        est.value_stderr,
        est.grad,
        est.grad_std,
        est.grad_stderr,
        jax.ShapeDtypeStruct((), jnp.bool_),
    )
    return row, est, status


def _stack(tree, length: int):
    """``tree``'s shape structs with a leading axis ``length``."""
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((length, *s.shape), s.dtype), tree)


def _concatenate(rows):
    return rows[0] if len(rows) == 1 else jax.tree.map(lambda *xs: np.concatenate(xs), *rows)


def _raise_on_failure(status, carry, statics, black_box=None) -> None:
    """Raise what a failed step means: a simulator's NaN (a black box's failure, as
    `sg.gradient` names it), or θ gone non-finite."""
    method, n_samples = statics["method"], statics["n_samples"]
    ok, theta_finite, n_bad_value, n_bad_grad = (np.asarray(x).item() for x in status)
    if ok:
        return
    step = int(carry.step)
    if not theta_finite:
        bad = [
            f"theta{jax.tree_util.keystr(path)}"
            for path, leaf in jax.tree_util.tree_flatten_with_path(carry.theta)[0]
            if not np.isfinite(np.asarray(leaf)).all()
        ]
        if step == 0:
            raise ValueError(f"{bad[0]} is not finite: parameters must be finite.")
        raise FloatingPointError(
            f"sg.optimize, step {step}: {', '.join(bad)} became non-finite after the "
            f"optimiser's update at step {step - 1}: the optimiser diverged. Lower the "
            "learning rate, or check the optimiser's settings and the bounds."
        )
    key = carry.key_data
    key = jax.random.split(jax.random.wrap_key_data(key) if statics["typed_key"] else key)[1]
    if black_box is not None:  # the step's key: the message names the sample that failed
        black_box.raise_failure(key, n_samples, f"sg.optimize, step {step}: ")
    if n_bad_value < 0:  # the step's samples failed: run them again, counting
        n_bad_value, n_bad_grad = count_failures(
            statics["sim"], carry.theta, key, method=method, n_samples=n_samples,
            batch_size=statics["batch_size"], mesh=statics["mesh"],
        )  # fmt: skip
    message = failure_message(
        repr(method), n_samples, n_bad_value, n_bad_grad, method.gradient_nan_hint
    )
    raise SimulationError(f"sg.optimize, step {step}: {message}")


def _nan(x) -> bool:
    if isinstance(x, float):
        return math.isnan(x)
    x = np.asarray(x)
    return bool(np.issubdtype(x.dtype, np.inexact) and np.isnan(x).any())


@eqx.filter_jit
def _init(optimizer: _Stable, theta):
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int counts
        return optimizer.optimizer.init(theta)


def _check_bounds(bounds, theta0):
    if bounds is None:
        return None, None
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        raise TypeError("bounds must be a pair (lower, upper), each a scalar or like theta.")

    def like_theta(bound, name):
        if jax.tree.structure(bound) == jax.tree.structure(theta0):
            out = jax.tree.map(
                lambda t, b: jnp.broadcast_to(jnp.asarray(b, t.dtype), t.shape), theta0, bound
            )
        elif np.ndim(bound) == 0 and isinstance(
            bound, (int, float, np.number, np.bool_, jax.Array)
        ):
            out = jax.tree.map(lambda t: jnp.full_like(t, bound), theta0)
        else:
            raise TypeError(
                f"each bound must be a scalar or have theta's structure, got {bound!r}."
            )
        if any(bool(jnp.isnan(x).any()) for x in jax.tree.leaves(out)):
            raise ValueError(f"bounds: the {name} bound is NaN; use ±inf for no bound.")
        return out

    lower, upper = like_theta(bounds[0], "lower"), like_theta(bounds[1], "upper")
    reversed_ = jax.tree.map(lambda lo, hi: bool(jnp.any(lo > hi)), lower, upper)
    if any(jax.tree.leaves(reversed_)):
        raise ValueError("bounds are reversed (lower > upper): pass bounds=(lower, upper).")
    inside = jax.tree.map(
        lambda lo, t, hi: bool(jnp.all((lo <= t) & (t <= hi))), lower, theta0, upper
    )
    if not all(jax.tree.leaves(inside)):
        raise ValueError("theta0 lies outside bounds: start inside (lower ≤ theta0 ≤ upper).")
    return lower, upper


def _is_typed_key(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
