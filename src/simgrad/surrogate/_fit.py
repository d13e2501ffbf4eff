"""Learned differentiable surrogates: an MLP fitted to a non-differentiable component."""

import math
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._result import AbstractResult
from .._src import runs
from .._src.validate import check_key as _check_key
from .._src.validate import check_size
from .._types import Array, Key
from ._train import train


class Surrogate(AbstractResult):
    """A fitted MLP standing in for a component ``x -> y``; differentiable in ``x``.

    Inputs are standardised and outputs de-standardised with the training data's mean and
    spread, so the network sees unit-scale numbers. Call it like the component:
    ``surrogate(x)`` for one input (a scalar or a vector of ``in_size``), and swap it into
    the simulator where the component was.
    """

    mlp: eqx.nn.MLP
    x_mean: Array
    x_std: Array
    y_mean: Array
    y_std: Array
    config: dict = eqx.field(static=True)

    def summary(self) -> str:
        c = self.config
        return (
            f"Surrogate(MLP {c['in_size']} → {c['out_size']}, width {c['width']}, "
            f"depth {c['depth']}, {c['dtype']})"
        )

    def __call__(self, x):
        x = jnp.asarray(x, self.x_mean.dtype)
        return self.mlp((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


def _build(config: dict, key: Key) -> Surrogate:
    dtype = jnp.dtype(config["dtype"])
    size = lambda n: "scalar" if n == "scalar" else int(n)  # noqa: E731
    mlp = eqx.nn.MLP(
        size(config["in_size"]),
        size(config["out_size"]),
        config["width"],
        config["depth"],
        activation=jax.nn.gelu,
        key=key,
        dtype=dtype,
    )
    shape_in = () if config["in_size"] == "scalar" else (config["in_size"],)
    shape_out = () if config["out_size"] == "scalar" else (config["out_size"],)
    zeros, ones = jnp.zeros, jnp.ones
    return Surrogate(
        mlp,
        zeros(shape_in, dtype),
        ones(shape_in, dtype),
        zeros(shape_out, dtype),
        ones(shape_out, dtype),
        config,
    )


def fit(
    xs,
    ys,
    *,
    key: Key,
    width: int = 64,
    depth: int = 2,
    steps: int = 2000,
    learning_rate: float = 3e-3,
    batch_size: int = 256,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    progress: bool = True,
    callback=None,
) -> Surrogate:
    r"""Fit an MLP ``x -> y`` to input–output samples by least squares (Adam, minibatches).

    For a *stochastic* component (``ys`` are noisy draws given ``xs``) least squares fits
    the conditional mean $\mathbb E[y \mid x]$, whose gradient is what a simulator's
    expectation needs.

    Arguments:
        xs: inputs, shape ``(n,)`` (scalar inputs) or ``(n, d_in)``.
        ys: outputs, shape ``(n,)`` or ``(n, d_out)``.
        key: initialises the network and draws the minibatches.
        width, depth: the MLP's hidden width and number of hidden layers.
        steps, learning_rate, batch_size: the optimisation (cosine-decayed Adam).
        checkpoint: a file; every ``checkpoint_every`` steps, on Ctrl-C and at the end, the
            network, the optimiser state and the step are written there (equinox
            serialisation, no pickle, atomically, with a checksum). ``resume=True``
            continues from it and reproduces an uninterrupted run; a checkpoint of other
            data, key or settings is refused (`simgrad.CheckpointError`).
        progress: show a progress bar with the training loss.
        callback: ``callback(step, loss)`` after each step (logging; early stopping by
            raising an exception — a ``KeyboardInterrupt`` writes the checkpoint first).

    Returns a `Surrogate`; measure its error with `assess`, save it with `save`.
    """
    counts = (
        ("width", width, 1), ("depth", depth, 0), ("steps", steps, 1),
        ("batch_size", batch_size, 1), ("checkpoint_every", checkpoint_every, 1),
    )  # fmt: skip
    xs, ys = _check_arguments(xs, ys, counts, learning_rate)
    _check_key(key)
    path = runs.check_checkpoint(checkpoint, resume, "fit.eqx")
    k_init, k_batch = jax.random.split(key)
    model = _initial(xs, ys, width, depth, k_init)

    model, _, _ = train(
        model, _network, _squared_error, xs, ys, key=key, batch_key=k_batch, steps=steps,
        learning_rate=learning_rate, batch_size=batch_size, path=path,
        checkpoint_every=checkpoint_every, resume=resume, progress=progress,
        callback=callback, label="fitting surrogate",
    )  # fmt: skip
    return model


def _network(model: Surrogate):
    return model.mlp


def _squared_error(model: Surrogate, x, y):
    return jnp.mean(((jax.vmap(model)(x) - y) / model.y_std) ** 2)


def _check_arguments(xs, ys, counts, learning_rate):
    """``xs`` and ``ys`` as floating arrays of one dtype, refused unless they pair up and
    are finite; ``counts`` are ``(name, value, minimum)`` for the int arguments."""
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    if not jnp.issubdtype(xs.dtype, jnp.floating) or not jnp.issubdtype(ys.dtype, jnp.floating):
        raise TypeError("xs and ys must be floating arrays (cast integer counts with .astype).")
    if xs.ndim not in (1, 2) or ys.ndim not in (1, 2) or xs.shape[0] != ys.shape[0]:
        raise ValueError(f"xs {xs.shape} and ys {ys.shape} must be (n,) or (n, d) with the same n.")
    n = xs.shape[0]
    for name, value, minimum in counts:
        check_size(name, value, minimum)
    if n < 2:
        raise ValueError(f"need at least 2 samples to fit, got {n}.")
    for name, data in (("xs", xs), ("ys", ys)):
        bad = np.flatnonzero(~np.isfinite(np.asarray(data)).reshape(n, -1).all(axis=1))
        if bad.size:
            rows = ", ".join(map(str, bad[:5])) + (", …" if bad.size > 5 else "")
            raise ValueError(
                f"{name} holds NaN or inf in {bad.size} of {n} samples (rows {rows}): drop or "
                "fix those samples; a surrogate fitted to them would output NaN."
            )
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float, np.floating, np.integer))
        or not (math.isfinite(learning_rate) and learning_rate > 0)
    ):
        raise ValueError(f"learning_rate={learning_rate!r}: must be a positive finite number.")
    dtype = jnp.result_type(xs.dtype, ys.dtype)
    return xs.astype(dtype), ys.astype(dtype)


def _initial(xs, ys, width: int, depth: int, key: Key) -> Surrogate:
    """The untrained network ``x -> y``, standardised by the data's mean and spread."""
    config = {
        "in_size": "scalar" if xs.ndim == 1 else int(xs.shape[1]),
        "out_size": "scalar" if ys.ndim == 1 else int(ys.shape[1]),
        "width": int(width),
        "depth": int(depth),
        "dtype": str(xs.dtype),
    }
    return eqx.tree_at(
        lambda m: (m.x_mean, m.x_std, m.y_mean, m.y_std),
        _build(config, key),
        (xs.mean(0), xs.std(0) + 1e-12, ys.mean(0), ys.std(0) + 1e-12),
    )


class Assessment(eqx.Module):
    """The surrogate's error on held-out points, on values and on gradients.

    ``value_rmse`` / ``grad_rmse``: root-mean-square errors; ``value_rel`` / ``grad_rel``:
    the same divided by the RMS of the reference; ``grad_z``: the largest
    ``|surrogate grad - reference| / reference stderr`` (when standard errors are given).
    """

    value_rmse: float
    value_rel: float
    grad_rmse: float
    grad_rel: float
    grad_z: float | None
    n: int

    def __repr__(self) -> str:
        z = "" if self.grad_z is None else f", max |z| {self.grad_z:.2f}"
        return (
            f"Assessment(n={self.n}: values rmse {self.value_rmse:.3g} "
            f"({100 * self.value_rel:.2g}%), gradients rmse {self.grad_rmse:.3g} "
            f"({100 * self.grad_rel:.2g}%){z})"
        )


def assess(surrogate: Surrogate, xs, ys, grads, grad_stderr=None) -> Assessment:
    """Compare ``surrogate`` with held-out reference values and gradients.

    ``ys`` are reference values at ``xs`` (the component's mean, or its exact value) and
    ``grads`` reference gradients there — exact, or an unbiased estimate such as
    ``sg.gradient(component, x, key, method=sg.ScoreFunction(), ...)`` with its
    ``grad_stderr``. Gradients are ``d surrogate / d x`` (scalar outputs).
    """
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"assess expects a Surrogate, got {type(surrogate).__name__}.")
    xs, ys, grads = (np.asarray(a, float) for a in (xs, ys, grads))
    if surrogate.config["out_size"] != "scalar":
        raise ValueError("assess compares gradients of scalar-output surrogates only.")
    if not (len(xs) == len(ys) == len(grads)):
        raise ValueError(f"xs, ys, grads need one length, got {len(xs)}, {len(ys)}, {len(grads)}.")
    dtype = surrogate.x_mean.dtype
    x = jnp.asarray(xs, dtype)
    pred = np.asarray(jax.vmap(surrogate)(x))
    g = np.asarray(jax.vmap(jax.grad(surrogate))(x)).reshape(grads.shape)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    z = None
    if grad_stderr is not None:
        z = float(np.max(np.abs(g - grads) / np.asarray(grad_stderr, float).reshape(grads.shape)))
    return Assessment(
        rms(pred - ys),
        rms(pred - ys) / rms(ys),
        rms(g - grads),
        rms(g - grads) / rms(grads),
        z,
        len(xs),
    )
