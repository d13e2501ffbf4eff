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
    replacement from ``batch_key`` folded with the step.

    A checkpoint at ``path`` holds the model, the optimiser state and the step; its
    fingerprint is the model's ``config``, the optimisation settings, ``key`` and a hash of
    the data, and ``resume`` continues it bit for bit. Returns the trained model.
    """
    n = xs.shape[0]
    schedule = optax.cosine_decay_schedule(learning_rate, steps)
    optimizer = optax.adam(schedule)
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

    @eqx.filter_jit
    def train_step(state, i):
        model, opt_state = state
        idx = jax.random.randint(jax.random.fold_in(batch_key, i), (min(batch_size, n),), 0, n)
        x, y = xs[idx], ys[idx]

        def batch_loss(part):
            return loss(eqx.tree_at(where, model, part), x, y)

        value, grads = eqx.filter_value_and_grad(batch_loss)(where(model))
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state)
        part = eqx.apply_updates(where(model), updates)
        return (eqx.tree_at(where, model, part), opt_state), value

    def check(loss):
        if not bool(jnp.isfinite(loss)):
            raise FloatingPointError(
                f"the fit diverged: the training loss is {float(loss)} after {steps} steps. "
                "Lower learning_rate."
            )

    (model, _), _ = runs.run(
        lambda state, done, n: train_step(state, jnp.asarray(done)),  # n = chunk = 1
        state,
        steps=steps,
        progress=runs.Progress(label, "loss", lambda x: f"{float(x):.3g}", progress),
        done=done,
        callback=callback,
        checkpoint=saving,
        check=check,
    )
    return model
