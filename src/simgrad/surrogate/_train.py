"""The training of every surrogate: minibatch Adam on a loss, through the one resumable run
loop of `simgrad._src.runs` (progress bar, fingerprinted atomic checkpoints, Ctrl-C)."""

import pathlib
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._src import runs
from .._types import Array, Key


def train(
    model,
    where: Callable,
    loss: Callable,
    xs: Array,
    ys: Array,
    *,
    key: Key,
    batch_key: Key,
    steps: int,
    learning_rate: float,
    batch_size: int,
    path: pathlib.Path | None,
    checkpoint_every: int,
    resume: bool,
    progress: bool,
    callback,
    label: str,
    validation: tuple[Array, Array] | None = None,
    validate_every: int = 100,
    fingerprint: dict | None = None,
):
    """Minimise ``loss(model, x, y)`` (a minibatch's mean loss) over the arrays of
    ``where(model)`` by cosine-decayed Adam; minibatches of ``batch_size`` rows drawn with
    replacement from ``batch_key`` folded with the step. ``where`` and ``loss`` are
    module-level functions, so that fits of one configuration share the compiled step.

    With ``validation = (xs_val, ys_val)`` the mean loss on them is computed every
    ``validate_every`` steps and at the last, and the arrays of ``where(model)`` with the
    lowest are kept and returned (best-step selection).

    A checkpoint at ``path`` holds the model, the optimiser state and the step (and the
    best arrays so far); its fingerprint is the model's ``config``, the optimisation
    settings, ``key``, a hash of the data and ``fingerprint``'s entries, and ``resume``
    continues it bit for bit. Returns the trained model and, with ``validation``, the
    best validation loss and the step after which it was reached (else None, None).
    """
    optimizer = _optimizer(float(learning_rate), steps)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts and floats
        opt_state = optimizer.init(eqx.filter(where(model), eqx.is_inexact_array))
    state, done, saving = (model, opt_state), 0, None
    if validation is not None:  # the best arrays so far, their loss and their step
        state = (*state, where(model), jnp.asarray(jnp.inf, xs.dtype), jnp.asarray(0))
    if path is not None:
        fingerprint = (fingerprint or {}) | {
            "config": model.config,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": float(learning_rate),
            "key": runs.key_fingerprint(key),
            "data": runs.array_hash(xs, ys),
        }
        saving = runs.Checkpoint(
            path,
            "surrogate checkpoint",
            fingerprint,
            checkpoint_every,
            "Resume with the same data, key, network, steps, learning_rate and "
            "batch_size, or delete the file to start afresh.",
        )
        if resume and saving.path.exists():
            state, done = saving.load(lambda _: state, steps)
    settings = (where, loss, float(learning_rate), steps, min(batch_size, xs.shape[0]))

    def check(loss):
        if not bool(jnp.isfinite(loss)):
            raise FloatingPointError(
                f"the fit diverged: the training loss is {float(loss)} after {steps} steps. "
                "Lower learning_rate."
            )

    def advance(state, done, n):
        (model, opt_state), out = _step(state[:2], jnp.asarray(done), xs, ys, batch_key, settings)
        state = (model, opt_state, *state[2:])
        if validation is not None and ((done + n) % validate_every == 0 or done + n == steps):
            state = _keep_best(state, *validation, done + n, where, loss)
        return state, out

    state, _ = runs.run(
        advance,
        state,
        steps=steps,
        progress=runs.Progress(label, "loss", lambda x: f"{float(x):.3g}", progress),
        done=done,
        callback=callback,
        checkpoint=saving,
        check=check,
    )
    if validation is None:
        return state[0], None, None
    model, _, best, best_loss, best_step = state
    return eqx.tree_at(where, model, best), float(best_loss), int(best_step)


def _keep_best(state, xv, yv, step: int, where, loss):
    """The state with the best arrays replaced by the model's if its validation loss is
    lower (ties keep the earlier)."""
    model, opt_state, best, best_loss, best_step = state
    value = _validation_loss(model, xv, yv, loss)
    if bool(value < best_loss):
        return model, opt_state, where(model), value, jnp.asarray(step)
    return state


@eqx.filter_jit
def _validation_loss(model, xv, yv, loss):
    return loss(model, xv, yv)


def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


@eqx.filter_jit
def _step(state, i, xs, ys, batch_key, settings):
    """One Adam step on a minibatch. Compiled once per ``settings`` (``where`` and ``loss``
    are module-level functions, the rest numbers) and data shapes, so refits, resumed fits
    and fits of several data sets of one size share the compiled step."""
    where, loss, learning_rate, steps, batch_size = settings
    optimizer = _optimizer(learning_rate, steps)
    model, opt_state = state
    idx = jax.random.randint(jax.random.fold_in(batch_key, i), (batch_size,), 0, xs.shape[0])
    x, y = xs[idx], ys[idx]

    def batch_loss(part):
        return loss(eqx.tree_at(where, model, part), x, y)

    value, grads = eqx.filter_value_and_grad(batch_loss)(where(model))
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, opt_state)
    part = eqx.apply_updates(where(model), updates)
    return (eqx.tree_at(where, model, part), opt_state), value
