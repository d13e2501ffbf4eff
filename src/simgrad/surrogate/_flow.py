"""A conditional normalizing flow (flowjax) standing in for a stochastic component."""

import json
import math
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._result import AbstractResult
from .._src import runs
from .._src.validate import check_key as _check_key
from .._types import Array, Key
from ._fit import _check_arguments
from ._train import train

_MIN_SAMPLES = 20
_VALIDATE_EVERY = 50  # steps between evaluations of the validation loss
_SKELETONS: dict[str, eqx.Module] = {}  # a flow per configuration: its static parts


def _flowjax():
    try:
        import flowjax.bijections
        import flowjax.distributions
        import flowjax.flows
    except ImportError:  # pragma: no cover - flowjax is a dependency
        raise ImportError(
            "simgrad.surrogate's flows need flowjax: pip install 'flowjax>=19.1.2'."
        ) from None
    return flowjax


class FlowSurrogate(AbstractResult):
    r"""A fitted conditional normalizing flow standing in for a stochastic component
    ``x -> y ~ p(y | x)``; its samples are differentiable in ``x``.

    The flow is a bijection $y = T(z; x)$ of base noise $z \sim N(0, I)$, conditioned on
    ``x`` (masked autoregressive layers with rational-quadratic splines, from flowjax),
    on inputs and outputs standardised by the training data's mean and spread.

    * ``sample(key, x)``: one draw of ``y`` given ``x``, *reparameterised* — the noise is
      drawn from ``key`` and pushed through $T(\cdot\,; x)$, so `jax.grad`, `sg.Pathwise`
      and `sg.expectation` differentiate through it, under ``jit`` and ``vmap``.
    * ``log_prob(y, x)``: $\log p(y \mid x)$ of the fitted density (score-function use).
    * ``validation_nll``, ``best_step``: with ``fit_flow(..., validation=f)``, the kept
      parameters' negative log-likelihood on the held-out pairs and the step they are from
      (NaN and 0 without).

    >>> import jax, jax.numpy as jnp
    >>> from simgrad import surrogate
    >>> xs = jax.random.uniform(jax.random.key(0), (500,))
    >>> ys = xs + 0.1 * jax.random.normal(jax.random.key(1), (500,))
    >>> s = surrogate.fit_flow(xs, ys, key=jax.random.key(2), steps=100, progress=False)
    >>> s.sample(jax.random.key(3), 0.5).shape, s.log_prob(0.4, 0.5).shape
    ((), ())
    """

    flow: eqx.Module
    x_mean: Array
    x_std: Array
    y_mean: Array
    y_std: Array
    validation_nll: Array  # the kept parameters' validation loss (NaN: none held out)
    best_step: Array  # the step after which they were kept
    config: dict = eqx.field(static=True)

    def summary(self) -> str:
        c = self.config
        nll = float(self.validation_nll)
        step = int(self.best_step)
        kept = "" if math.isnan(nll) else f"; validation NLL {nll:.4g} at step {step}"
        return (
            f"FlowSurrogate(y {c['out_size']} | x {c['in_size']}: {c['flow_layers']} "
            f"autoregressive spline layers, {c['knots']} knots, width {c['nn_width']}, "
            f"{c['dtype']}{kept})"
        )

    def _shape(self, which: str) -> tuple[int, ...]:
        size = self.config[f"{which}_size"]
        return () if size == "scalar" else (size,)

    def _input(self, value, which: str, name: str) -> Array:
        value = jnp.asarray(value, self.x_mean.dtype)
        if value.shape != self._shape(which):
            raise ValueError(
                f"{name} has shape {value.shape}, this surrogate was fitted to shape "
                f"{self._shape(which)}: pass one {name} at a time (jax.vmap for a batch)."
            )
        return value

    def _condition(self, x) -> Array:
        x = self._input(x, "in", "x")
        return ((x - self.x_mean) / self.x_std).reshape(-1)

    def sample(self, key: Key, x) -> Array:
        """One draw of ``y`` given ``x``, differentiable in ``x`` (reparameterised)."""
        z = self.flow.sample(key, condition=self._condition(x))  # pyright: ignore[reportAttributeAccessIssue]
        return z.reshape(self._shape("out")) * self.y_std + self.y_mean

    def log_prob(self, y, x) -> Array:
        """The log-density of the fitted conditional at ``y`` given ``x``."""
        y = self._input(y, "out", "y")
        u = ((y - self.y_mean) / self.y_std).reshape(-1)
        lp = self.flow.log_prob(u, condition=self._condition(x))  # pyright: ignore[reportAttributeAccessIssue]
        return lp - jnp.sum(jnp.log(self.y_std))


def _build(config: dict, key: Key) -> FlowSurrogate:
    fj = _flowjax()
    dtype = jnp.dtype(config["dtype"])
    dim = lambda size: 1 if size == "scalar" else size  # noqa: E731
    flow = fj.flows.masked_autoregressive_flow(
        key,
        base_dist=fj.distributions.Normal(jnp.zeros(dim(config["out_size"]), dtype)),
        transformer=fj.bijections.RationalQuadraticSpline(
            knots=config["knots"], interval=config["interval"]
        ),
        cond_dim=dim(config["in_size"]),
        flow_layers=config["flow_layers"],
        nn_width=config["nn_width"],
        nn_depth=config["nn_depth"],
        nn_activation=jax.nn.gelu,
    )
    cast = lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a  # noqa: E731
    flow = jax.tree.map(cast, flow)
    # flowjax's layers hold closures made afresh by each build (the same for one config):
    # one set per config keeps the structure equal, so fits share the compiled step
    skeleton = _SKELETONS.setdefault(json.dumps(config, sort_keys=True), flow)
    flow = eqx.combine(eqx.filter(flow, eqx.is_array), eqx.filter(skeleton, eqx.is_array, True))
    shape = lambda size: () if size == "scalar" else (size,)  # noqa: E731
    x_shape, y_shape = shape(config["in_size"]), shape(config["out_size"])
    return FlowSurrogate(
        flow,
        jnp.zeros(x_shape, dtype),
        jnp.ones(x_shape, dtype),
        jnp.zeros(y_shape, dtype),
        jnp.ones(y_shape, dtype),
        jnp.asarray(jnp.nan, dtype),
        jnp.asarray(0),
        config,
    )


def fit_flow(
    xs,
    ys,
    *,
    key: Key,
    steps: int = 3000,
    flow_layers: int = 2,
    knots: int = 10,
    interval: float = 5.0,
    nn_width: int = 16,
    nn_depth: int = 1,
    learning_rate: float = 3e-3,
    batch_size: int = 512,
    validation: float = 0.0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    progress: bool = True,
    callback=None,
) -> FlowSurrogate:
    r"""Fit a conditional normalizing flow $p(y \mid x)$ to pairs of a stochastic
    component's inputs and sampled outputs, by maximum likelihood (minibatch Adam).

    Where `fit` learns the conditional mean, this learns the whole conditional
    distribution, so that a simulator whose *samples* of ``y`` feed a histogram, a cut or a
    nonlinearity can draw them from the surrogate and differentiate through the draws.
    The fitted density is biased by the finite data and network: measure it with
    `assess_flow`.

    Arguments:
        xs: inputs, shape ``(n,)`` (scalar) or ``(n, d_in)``.
        ys: sampled outputs given ``xs``, shape ``(n,)`` or ``(n, d_out)``.
        key: initialises the flow and draws the minibatches.
        steps, learning_rate, batch_size: the optimisation (cosine-decayed Adam).
        validation: the fraction of the pairs held out of the fit (at random, from
            ``key``); every 50 steps and at the last the flow's negative log-likelihood on
            them is computed and the parameters with the lowest are kept (best-step
            selection: the flow can start fitting the noise of its x-dependence after a
            number of steps that depends on the component and the data). The summary
            reports that loss and its step. 0 (the default): none held out, the last
            step's parameters kept. The validation loss is a check of the fitted density,
            not of its x-gradients: on the benchmark of docs/surrogate.md it kept late
            steps while the gradient error grew, and 0.1 did not lower that error.
        flow_layers, knots, interval, nn_width, nn_depth: the flow — masked autoregressive
            layers, each a rational-quadratic spline with ``knots`` knots on
            ``[-interval, interval]`` standard deviations (identity beyond), its
            parameters given by an MLP of ``x`` (and the earlier coordinates of ``y``).
        checkpoint, checkpoint_every, resume, progress, callback: as in `fit` (one
            resumable run loop, fingerprinted atomic checkpoints).

    Returns a `FlowSurrogate`; save it with `save`, read it back with `load`.
    """
    counts = (
        ("steps", steps, 1), ("flow_layers", flow_layers, 1), ("knots", knots, 2),
        ("nn_width", nn_width, 1), ("nn_depth", nn_depth, 0),
        ("batch_size", batch_size, 1), ("checkpoint_every", checkpoint_every, 1),
    )  # fmt: skip
    xs, ys = _check_arguments(xs, ys, counts, learning_rate)
    _check_flow_data(ys, interval)
    _check_validation(validation, xs.shape[0])
    _check_key(key)
    path = runs.check_checkpoint(checkpoint, resume, "flow.eqx")
    k_init, k_batch = jax.random.split(key)
    held = None
    if validation > 0:  # a random fraction held out, from a key of its own
        order = jax.random.permutation(jax.random.fold_in(key, 1), xs.shape[0])
        n_val = max(1, round(validation * xs.shape[0]))
        held = (xs[order[:n_val]], ys[order[:n_val]])
        xs, ys = xs[order[n_val:]], ys[order[n_val:]]
    config = {
        "in_size": "scalar" if xs.ndim == 1 else int(xs.shape[1]),
        "out_size": "scalar" if ys.ndim == 1 else int(ys.shape[1]),
        "flow_layers": int(flow_layers),
        "knots": int(knots),
        "interval": float(interval),
        "nn_width": int(nn_width),
        "nn_depth": int(nn_depth),
        "dtype": str(xs.dtype),
    }
    model = eqx.tree_at(
        lambda m: (m.x_mean, m.x_std, m.y_mean, m.y_std),
        _build(config, k_init),
        (xs.mean(0), xs.std(0) + 1e-12, ys.mean(0), ys.std(0)),
    )

    model, best_nll, best_step = train(
        model, _flow_part, _negative_log_likelihood, xs, ys, key=key, batch_key=k_batch,
        steps=steps, learning_rate=learning_rate, batch_size=batch_size, path=path,
        checkpoint_every=checkpoint_every, resume=resume, progress=progress,
        callback=callback, label="fitting flow", validation=held,
        validate_every=_VALIDATE_EVERY, fingerprint={"validation": float(validation)},
    )  # fmt: skip
    if held is None:
        return model
    return eqx.tree_at(
        lambda m: (m.validation_nll, m.best_step),
        model,
        (jnp.asarray(best_nll, model.x_mean.dtype), jnp.asarray(best_step)),
    )


def _flow_part(model: FlowSurrogate):
    return model.flow


def _negative_log_likelihood(model: FlowSurrogate, x, y):
    return -jnp.mean(jax.vmap(model.log_prob)(y, x))


def _check_validation(validation, n: int) -> None:
    ok = isinstance(validation, (int, float, np.floating, np.integer)) and not isinstance(
        validation, bool
    )
    if not (ok and 0 <= validation < 1):
        raise ValueError(
            f"validation={validation!r}: must be a fraction in [0, 1) of the samples to hold "
            "out (0: none, the parameters of the last step are kept)."
        )
    if n - max(1, round(validation * n)) < _MIN_SAMPLES and validation > 0:
        raise ValueError(
            f"validation={validation!r} leaves fewer than {_MIN_SAMPLES} of the {n} samples "
            "to fit: hold out fewer (validation=0 holds out none)."
        )


def _check_flow_data(ys, interval) -> None:
    """Refuse data a flow cannot be fitted to: too few samples, an output that never
    varies (a point mass has no density), a spline interval that is not positive."""
    n = ys.shape[0]
    if n < _MIN_SAMPLES:
        raise ValueError(
            f"fit_flow needs at least {_MIN_SAMPLES} samples to fit a distribution, got {n}."
        )
    flat = np.asarray(ys).reshape(n, -1)
    constant = np.flatnonzero(flat.std(axis=0) == 0)
    if constant.size:
        raise ValueError(
            f"ys is constant in output coordinate(s) {constant.tolist()}: a flow fits a "
            "density and a constant has none; leave constant outputs out of ys."
        )
    if isinstance(interval, bool) or not (
        isinstance(interval, (int, float, np.floating)) and math.isfinite(interval) and interval > 0
    ):
        raise ValueError(f"interval={interval!r}: must be a positive finite number.")


class FlowAssessment(AbstractResult):
    r"""A flow surrogate's error at held-out inputs: on expectations $\mathbb E[g(y)\mid x]$
    of test statistics ``g``, on their gradients in ``x``, and on the distribution.

    ``value_rmse`` / ``grad_rmse``: root-mean-square errors over inputs and statistics;
    ``value_rel`` / ``grad_rel``: the same divided by the RMS of the reference;
    ``grad_rel_each``: ``grad_rel`` per statistic. ``value_z`` / ``grad_z``: the largest
    ``|surrogate - reference| / s.e.``, the s.e. combining the surrogate's Monte Carlo
    error and the reference's (if given): a large z means the surrogate's bias, not the
    noise, dominates. ``ks`` / ``ks_p``: per input, the two-sample Kolmogorov–Smirnov
    statistic between real and surrogate samples and its p-value (largest over output
    coordinates, p Bonferroni-corrected), when real samples were given.
    ``values`` / ``grads`` (and their ``*_stderr``): the surrogate's own estimates.
    """

    value_rmse: float
    value_rel: float
    grad_rmse: float
    grad_rel: float
    grad_rel_each: np.ndarray
    value_z: float
    grad_z: float
    ks: np.ndarray | None
    ks_p: np.ndarray | None
    values: np.ndarray
    values_stderr: np.ndarray
    grads: np.ndarray
    grads_stderr: np.ndarray

    def summary(self) -> str:
        n, k = self.values.shape
        ks = (
            ""
            if self.ks is None or self.ks_p is None
            else f"; KS ≤ {np.max(self.ks):.3g} (min p {np.min(self.ks_p):.2g})"
        )
        return (
            f"FlowAssessment(n={n}, {k} statistic{'s' * (k > 1)}: values rmse "
            f"{self.value_rmse:.3g} ({100 * self.value_rel:.2g}%, max |z| {self.value_z:.2f}), "
            f"gradients rmse {self.grad_rmse:.3g} ({100 * self.grad_rel:.2g}%, "
            f"max |z| {self.grad_z:.2f}){ks})"
        )


def assess_flow(
    surrogate: FlowSurrogate,
    xs,
    g,
    values,
    grads,
    *,
    key: Key,
    n_samples: int = 20_000,
    values_stderr=None,
    grads_stderr=None,
    real=None,
) -> FlowAssessment:
    r"""Compare a flow surrogate with the real component at held-out inputs ``xs``.

    For each ``x`` the surrogate's $\mathbb E[g(y)\mid x]$ and its gradient in ``x`` are
    estimated from ``n_samples`` reparameterised draws (pathwise, the same noise at every
    ``x``) and compared with the reference ``values`` and ``grads`` — exact (closed form,
    quadrature) or an unbiased estimate of the real component with its standard errors.

    Arguments:
        surrogate: a `FlowSurrogate`.
        xs: held-out inputs, shape ``(m,)`` or ``(m, d_in)``.
        g: ``g(y)`` → a scalar or a vector of ``k`` test statistics, differentiable in
            ``y`` (smooth a cut or a histogram, e.g. with `simgrad.relax`).
        values: reference $\mathbb E[g(y)\mid x]$, shape ``(m,)`` or ``(m, k)``.
        grads: reference gradients, shape ``(m, k)`` (scalar ``x``) or ``(m, k, d_in)``.
        key: draws the surrogate's samples.
        values_stderr, grads_stderr: the reference's standard errors (None: exact).
        real: samples of the real component at each ``x``, shape ``(m, r)`` or
            ``(m, r, d_out)``, for the two-sample Kolmogorov–Smirnov check.

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from simgrad import surrogate
    >>> xs = jax.random.uniform(jax.random.key(0), (500,))
    >>> ys = xs + 0.1 * jax.random.normal(jax.random.key(1), (500,))
    >>> s = surrogate.fit_flow(xs, ys, key=jax.random.key(2), steps=100, progress=False)
    >>> x = np.array([0.3, 0.7])  # E[y | x] = x, its gradient 1
    >>> a = surrogate.assess_flow(
    ...     s, x, lambda y: y, x, np.ones(2), key=jax.random.key(3), n_samples=1000
    ... )
    >>> bool(a.value_rel < 0.1 and a.grad_rel < 0.2)
    True
    """
    if not isinstance(surrogate, FlowSurrogate):
        raise TypeError(f"assess_flow expects a FlowSurrogate, got {type(surrogate).__name__}.")
    _check_key(key)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ValueError(f"n_samples={n_samples!r}: must be an int ≥ 2.")
    if n_samples < 2:
        raise ValueError(f"n_samples={n_samples!r}: must be an int ≥ 2.")
    dtype = surrogate.x_mean.dtype
    x = jnp.asarray(np.asarray(xs, float), dtype)
    m = x.shape[0] if x.ndim else 0
    if x.shape[1:] != surrogate._shape("in") or m == 0:
        raise ValueError(
            f"xs has shape {x.shape}: give m ≥ 1 inputs of shape {surrogate._shape('in')}."
        )
    y_like = jax.ShapeDtypeStruct(surrogate._shape("out"), dtype)
    k = math.prod(jax.eval_shape(lambda y: jnp.atleast_1d(jnp.asarray(g(y))), y_like).shape)
    ref, ref_se = _reference(values, values_stderr, (m, k), "values")
    gshape = (m, k) + surrogate._shape("in")
    gref, gref_se = _reference(grads, grads_stderr, gshape, "grads")
    mean, se, gmean, gse, ys = _pathwise_moments(surrogate, x, g, key, int(n_samples))
    mean, se = mean.reshape(m, k), se.reshape(m, k)
    gmean, gse = gmean.reshape(gshape), gse.reshape(gshape)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    zmax = lambda d, s1, s2: float(np.max(np.abs(d) / np.sqrt(s1**2 + s2**2 + 1e-300)))  # noqa: E731
    each = np.sqrt(np.mean(np.square(gmean - gref).reshape(m, k, -1), axis=(0, 2)))
    each = each / np.sqrt(np.mean(np.square(gref).reshape(m, k, -1), axis=(0, 2)))
    ks, ks_p = (None, None) if real is None else _ks(real, ys, m)
    return FlowAssessment(
        rms(mean - ref),
        rms(mean - ref) / rms(ref),
        rms(gmean - gref),
        rms(gmean - gref) / rms(gref),
        each,
        zmax(mean - ref, se, ref_se),
        zmax(gmean - gref, gse, gref_se),
        ks,
        ks_p,
        mean,
        se,
        gmean,
        gse,
    )


def _pathwise_moments(surrogate: FlowSurrogate, x, g, key, n: int):
    """Per input: the mean and s.e. of ``g(sample)`` and of its pathwise gradient in x,
    over ``n`` draws with the same keys at every input; and the draws themselves."""
    keys = jax.random.split(key, n)
    out = [_at(surrogate, xi, keys, g) for xi in x]  # memory n·k·d_in, not m times it
    stats = np.stack([np.asarray(o[0], float) for o in out])  # (m, n, k)
    jacs = np.stack([np.asarray(o[1], float) for o in out])  # (m, n, k, ...)
    ys = np.stack([np.asarray(o[2], float) for o in out])  # (m, n, ...)
    moments = lambda a: (a.mean(1), a.std(1, ddof=1) / math.sqrt(n))  # noqa: E731
    return *moments(stats), *moments(jacs), ys


@eqx.filter_jit
def _at(surrogate: FlowSurrogate, x, keys, g):
    """``g`` of the draws at ``x``, its x-Jacobian per draw, and the draws (compiled once
    per surrogate structure, ``g`` and number of draws)."""

    def one(x, key):
        y = surrogate.sample(key, x)
        return jnp.atleast_1d(jnp.asarray(g(y))), y

    stat, ys = jax.vmap(one, (None, 0))(x, keys)
    jac = jax.vmap(jax.jacfwd(lambda x, key: one(x, key)[0]), (None, 0))(x, keys)
    return stat, jac, ys


def _reference(values, stderr, shape, name: str):
    """The reference and its standard errors (zeros when exact) as float arrays of
    ``shape``, refused with the expected shape otherwise."""
    out = []
    for what, a in ((name, values), (f"{name}_stderr", stderr)):
        a = np.zeros(shape) if a is None else np.asarray(a, float)
        if a.size != math.prod(shape):
            raise ValueError(
                f"{what} has shape {a.shape}, expected {shape} (inputs × statistics"
                f"{' × input size' if len(shape) > 2 else ''})."
            )
        out.append(a.reshape(shape))
    return out[0], out[1]


def _ks(real, ys, m: int):
    """Two-sample Kolmogorov–Smirnov statistic and p-value per input (largest statistic
    over output coordinates; p-value times their number, at most 1)."""
    from scipy import stats

    real = np.asarray(real, float)
    if real.shape[0] != m or real.ndim != ys.ndim or real.shape[2:] != ys.shape[2:]:
        tail = "".join(f", {d}" for d in ys.shape[2:])
        raise ValueError(
            f"real has shape {real.shape}, expected ({m}, r{tail}): r samples of the real "
            "component at each input."
        )
    real, ys = real.reshape(m, real.shape[1], -1), ys.reshape(m, ys.shape[1], -1)
    d = real.shape[2]
    ks, p = np.empty(m), np.empty(m)
    for i in range(m):
        tests = [stats.ks_2samp(real[i, :, j], ys[i, :, j]) for j in range(d)]
        ks[i] = max(t.statistic for t in tests)  # pyright: ignore[reportAttributeAccessIssue]
        p[i] = min(1.0, d * min(t.pvalue for t in tests))  # pyright: ignore[reportAttributeAccessIssue]
    return ks, p
