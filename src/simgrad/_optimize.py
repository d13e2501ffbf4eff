"""`optimize`: stochastic gradient descent on E[sim(theta, key)] with any estimator."""

import os
import pathlib
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array

from . import _blackbox
from ._estimate import Estimate, _check_key, _check_method, _check_theta, gradient
from ._src.names import named_components, path_name
from ._src.runs import load_checkpoint, progress_bar, save_checkpoint
from ._types import Key, Simulator, Theta
from .estimators import AbstractEstimator, Pathwise


class OptimizeHistory(eqx.Module):
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


class OptimizeResult(eqx.Module):
    """What `optimize` returns: the final parameters and the whole history.

    ``value``/``value_stderr`` are the last step's estimate of ``E[sim]`` (taken at the
    parameters before the last update); ``n_evals`` counts every simulator run.
    """

    theta: Theta
    history: OptimizeHistory
    n_steps: int = eqx.field(static=True)
    n_evals: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    @property
    def value(self) -> Array:
        return self.history.value[-1]

    @property
    def value_stderr(self) -> Array:
        return self.history.value_stderr[-1]

    def plot(self, path=None, *, exact: Theta | None = None, title: str = ""):
        """The objective ± one standard error, and each parameter, against the step.

        ``exact`` (optional, ``theta``'s structure) draws the known optimum as dashed lines.
        Saves to ``path`` if given; returns the matplotlib figure.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = np.arange(self.n_steps)
        value = np.asarray(self.history.value)
        stderr = np.asarray(self.history.value_stderr)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
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
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=90)
            plt.close(fig)
        return fig


class _State(eqx.Module):
    step: Array
    theta: Theta
    opt_state: optax.OptState
    key_data: Array  # raw key bits: serialisable, unlike typed keys
    history: OptimizeHistory


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
) -> OptimizeResult:
    r"""Minimise (or maximise) $\mathbb{E}_{key}[\mathrm{sim}(\theta, key)]$ by gradient steps.

    Each step draws a fresh key, estimates the gradient with ``method`` from ``n_samples``
    replicates (`sg.gradient`), and applies one ``optimizer`` update; the whole step is
    compiled once. The history keeps every step's estimate with its standard errors.

    Arguments:
        sim, theta0, key: as for `sg.gradient`; ``theta0`` is the starting point.
        steps: the number of optimisation steps.
        n_samples: replicates per step (at least 2).
        method: the estimator; default ``sg.Pathwise()``.
        optimizer: any optax optimiser; default ``optax.adam(1e-2)``.
        maximize: ascend instead of descend (a reward, a likelihood).
        bounds: ``(lower, upper)``, pytrees like ``theta`` or scalars: after each update
            θ is projected onto the box (``optax.projections.projection_box``) and the
            step is marked in ``history.projected`` — never clipped silently.
        checkpoint: a file; every ``checkpoint_every`` steps, and on Ctrl-C, the
            optimiser state, θ, the key and the history are written there (equinox
            serialisation, no pickle). ``resume=True`` continues from it, reproducing
            an uninterrupted run bit for bit.
        progress: show a progress bar with the current value ± its standard error.
        callback: ``callback(step, estimate)`` after each step (logging, early stopping
            by raising an exception).
        executor: for an `sg.BlackBox` simulator: where its evaluations run, as for
            `sg.gradient`.

    Example:
        >>> import jax, simgrad as sg
        >>> sim = lambda t, k: (t - 3.0 + jax.random.normal(k)) ** 2    # minimum at t = 3
        >>> res = sg.optimize(sim, 0.0, jax.random.key(0), steps=300, n_samples=64,
        ...                   optimizer=__import__("optax").adam(0.1), progress=False)
        >>> abs(float(res.theta) - 3.0) < 0.1
        True
    """
    method = Pathwise() if method is None else method
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    _check_method(method)
    sim = _blackbox.bind(sim, method, executor)  # sg.BlackBox: evaluations through executor
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax optimiser such as optax.adam(1e-2), got {optimizer!r}."
        )
    for name, value, minimum in (
        ("steps", steps, 1),
        ("n_samples", n_samples, 2),
        ("checkpoint_every", checkpoint_every, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name}={value!r}: must be an int ≥ {minimum}.")
    _check_key(key)
    theta0 = _check_theta(theta0)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from.")
    lower, upper = _check_bounds(bounds, theta0)

    key_data = jax.random.key_data(key) if _is_typed_key(key) else key
    history = OptimizeHistory(
        theta=_stack_zeros(theta0, steps),
        value=jnp.zeros(steps, _result_dtype(theta0)),
        value_stderr=jnp.zeros(steps, _result_dtype(theta0)),
        grad=_stack_zeros(theta0, steps),
        grad_stderr=_stack_zeros(theta0, steps),
        projected=jnp.zeros(steps, bool),
    )
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(theta0)
    state = _State(jnp.asarray(0), theta0, opt_state, key_data, history)
    meta = {"steps": steps, "n_samples": n_samples, "method": repr(method), "maximize": maximize}
    if checkpoint is not None:
        checkpoint = pathlib.Path(checkpoint)
        if resume and checkpoint.exists():
            state = load_checkpoint(
                checkpoint,
                state,
                meta,
                "resume with the same steps, n_samples, method and maximize, or start afresh.",
            )
        elif checkpoint.exists() and not resume:
            raise FileExistsError(
                f"checkpoint {checkpoint} exists: pass resume=True to continue that run, "
                "or delete the file to start afresh."
            )

    statics = (
        sim,
        method,
        optimizer,
        n_samples,
        batch_size,
        maximize,
        lower,
        upper,
        _is_typed_key(key),
    )
    bar = progress_bar("optimising", "objective", progress, steps, int(state.step))
    try:
        with bar:
            shown = time.monotonic()
            for i in range(int(state.step), steps):
                state, estimate = _step(state, *statics)
                # Redraw at most 10 times a second: reading the value waits for the device.
                if bar.tasks and (time.monotonic() - shown > 0.1 or i == steps - 1):
                    bar.update(bar.tasks[0].id, completed=i + 1, objective=_pm(estimate))
                    shown = time.monotonic()
                if callback is not None:
                    callback(i, estimate)
                if checkpoint is not None and (i + 1) % checkpoint_every == 0:
                    save_checkpoint(checkpoint, state, meta | {"step": int(state.step)})
    except KeyboardInterrupt:
        if checkpoint is not None:
            save_checkpoint(checkpoint, state, meta | {"step": int(state.step)})
        raise
    if checkpoint is not None:
        save_checkpoint(checkpoint, state, meta | {"step": int(state.step)})
    n_params = sum(x.size for x in jax.tree.leaves(theta0))
    return OptimizeResult(
        theta=state.theta,
        history=state.history,
        n_steps=steps,
        n_evals=steps * n_samples * method.evals_per_sample(n_params),
        method=repr(method),
    )


@eqx.filter_jit
def _step(state, sim, method, optimizer, n_samples, batch_size, maximize, lower, upper, typed_key):
    key = jax.random.wrap_key_data(state.key_data) if typed_key else state.key_data
    key, subkey = jax.random.split(key)
    estimate = gradient(
        sim, state.theta, subkey, method=method, n_samples=n_samples, batch_size=batch_size
    )
    direction = jax.tree.map(jnp.negative, estimate.grad) if maximize else estimate.grad
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int counts
        updates, opt_state = optimizer.update(direction, state.opt_state, state.theta)
    theta = optax.apply_updates(state.theta, updates)
    projected = jnp.asarray(False)
    if lower is not None:
        boxed = optax.projections.projection_box(theta, lower, upper)
        moved = jax.tree.map(lambda a, b: jnp.any(a != b), theta, boxed)
        projected = jnp.any(jnp.stack(jax.tree.leaves(moved)))
        theta = boxed
    i = state.step
    put = lambda stack, x: stack.at[i].set(x)  # noqa: E731
    h = state.history
    history = OptimizeHistory(
        theta=jax.tree.map(put, h.theta, state.theta),
        value=put(h.value, estimate.value),
        value_stderr=put(h.value_stderr, estimate.value_stderr),
        grad=jax.tree.map(put, h.grad, estimate.grad),
        grad_stderr=jax.tree.map(put, h.grad_stderr, estimate.grad_stderr),
        projected=put(h.projected, projected),
    )
    new_key_data = jax.random.key_data(key) if typed_key else key
    return _State(i + 1, theta, opt_state, new_key_data, history), estimate


def _check_bounds(bounds, theta0):
    if bounds is None:
        return None, None
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        raise TypeError("bounds must be a pair (lower, upper), each a scalar or like theta.")

    def like_theta(bound):
        if jax.tree.structure(bound) == jax.tree.structure(theta0):
            return jax.tree.map(
                lambda t, b: jnp.broadcast_to(jnp.asarray(b, t.dtype), t.shape), theta0, bound
            )
        if np.ndim(bound) == 0 and isinstance(bound, (int, float, np.generic, jax.Array)):
            return jax.tree.map(lambda t: jnp.full_like(t, bound), theta0)
        raise TypeError(f"each bound must be a scalar or have theta's structure, got {bound!r}.")

    lower, upper = like_theta(bounds[0]), like_theta(bounds[1])
    inside = jax.tree.map(
        lambda lo, t, hi: bool(jnp.all((lo <= t) & (t <= hi))), lower, theta0, upper
    )
    if not all(jax.tree.leaves(inside)):
        raise ValueError("theta0 lies outside bounds: start inside (lower ≤ theta0 ≤ upper).")
    return lower, upper


def _is_typed_key(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def _result_dtype(theta):
    return jnp.result_type(*jax.tree.leaves(theta))


def _stack_zeros(theta, steps):
    return jax.tree.map(lambda x: jnp.zeros((steps, *x.shape), x.dtype), theta)


def _pm(estimate) -> str:
    return f"{float(estimate.value):.5g} ± {float(estimate.value_stderr):.2g}"
