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
):
    """Minimise ``loss(model, x, y)`` (a minibatch's mean loss) over the arrays of
    ``where(model)`` by cosine-decayed Adam; minibatches of ``batch_size`` rows drawn with
    replacement from ``batch_key`` folded with the step. ``where`` and ``loss`` are
    module-level functions, so that fits of one configuration share the compiled step.

    A checkpoint at ``path`` holds the model, the optimiser state and the step; its
    fingerprint is the model's ``config``, the optimisation settings, ``key`` and a hash of
    the data, and ``resume`` continues it bit for bit. Returns the trained model.
    """
    optimizer = _optimizer(float(learning_rate), steps)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts and floats
        opt_state = optimizer.init(eqx.filter(where(model), eqx.is_inexact_array))
    state, done, saving = (model, opt_state), 0, None
    if path is not None:
        fingerprint = {
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

    (model, _), _ = runs.run(
        lambda state, done, n: _step(state, jnp.asarray(done), xs, ys, batch_key, settings),
        state,
        steps=steps,
        progress=runs.Progress(label, "loss", lambda x: f"{float(x):.3g}", progress),
        done=done,
        callback=callback,
        checkpoint=saving,
        check=check,
    )
    return model


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
