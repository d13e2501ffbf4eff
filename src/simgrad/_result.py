"""What `sg.gradient` returns: `Estimate`, its failure `Status`, and `SimulationError`.

A run's failures travel as data: ``Estimate.status`` (an ``int32[3]``, read as `Status`)
is checked the first time a number is read. Inside compiled code they travel as an XLA
error whose text starts with a mark (`fail_on_device`), turned back into
`SimulationError` by `carried_message`.
"""

import abc
import contextlib
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import equinox as eqx
import jax
import jax.core
import numpy as np
from jaxtyping import Array, Int

from ._src.names import leaf_name
from ._types import SIMULATION_ERROR_MARK as _MARK
from ._types import Jacobian, Output

# A field of `Status`: a Python int (`Status.read`), or an int32 scalar in compiled code.
_Count = TypeVar("_Count", int, Int[Array, ""])


class AbstractResult(eqx.Module):
    """The base of every public result: an immutable pytree (an equinox module) whose
    ``repr`` is a short summary for people, and, where a picture says more, a
    ``plot(ax=None, **options)`` that draws into ``ax`` (a new figure when None) and
    returns the matplotlib ``Axes``.

    Subclasses write `summary`; inside a trace (``jit``, ``vmap``), where the numbers are
    not known yet, the ``repr`` is equinox's field by field.
    """

    @abc.abstractmethod
    def summary(self) -> str:
        """A few lines: the numbers with their error bars, and the notes."""

    def __repr__(self) -> str:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(self)):
            return eqx.tree_pformat(self)
        return self.summary()


class BiasWarning(UserWarning):
    """An estimate whose estimator is biased for the simulator at hand (``Estimate.claim ==
    "biased"``): issued once per compiled program, naming the line and the remedy. The
    number stays available (pathwise on a program known to be smoothed, say), but never
    silently."""


class Status(NamedTuple, Generic[_Count]):
    """What failed in a run, the fields of ``Estimate.status`` (an ``int32[3]``).

    ``n_bad_value``: samples whose value is not finite (-1: some, not yet counted);
    ``n_bad_grad``: samples with a finite value and a non-finite gradient;
    ``bad_theta_leaf``: the index of the first non-finite θ leaf (-1: none).
    """

    n_bad_value: _Count
    n_bad_grad: _Count
    bad_theta_leaf: _Count

    @classmethod
    def of(cls, status) -> "Status[Int[Array, '']]":
        """The fields as arrays (works on tracers, inside a compiled program)."""
        return Status(status[0], status[1], status[2])

    @classmethod
    def read(cls, status) -> "Status[int]":
        """The fields as Python ints (waits for the device)."""
        return Status(*np.asarray(status).tolist())


def fail_on_device(tree, failed, message: str):
    """``tree``, raising an XLA run-time error that carries ``message`` when ``failed``
    (inside compiled code; `carried_message` reads it back)."""
    return eqx.error_if(tree, failed, _MARK + message)


def carried_message(error: Exception) -> str | None:
    """The message `fail_on_device` put in ``error``, or None if it is not simgrad's."""
    text = str(error)
    if _MARK not in text:
        return None
    return text.split(_MARK, 1)[1].split("\n", 1)[0]


class SimulationError(RuntimeError):
    """The simulator produced NaN or inf for some samples, or θ was not finite at run time
    (a run-time error, tier 2).

    Raised by `sg.gradient` (when a number of the `Estimate` is first read) with the count
    of bad samples. Inside a compiled program (an outer `jax.jit`, `sg.optimize`) a run-time
    error can only surface as JAX's own ``JaxRuntimeError`` (or equinox's
    ``EquinoxRuntimeError``); `simulation_errors` turns those back into this class.

    Raised for an `sg.BlackBox` run, it also holds the failing run's ``theta`` and ``seed``:
    ``fn(error.theta, error.seed)`` reproduces it.
    """

    theta: Any  # set for a failed `sg.BlackBox` run (annotations only: no class attribute)
    seed: int


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
        message = carried_message(error)
        if message is None:
            raise
        raise SimulationError(message) from error


class Estimate(AbstractResult):
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
        claim: what the estimate promises for this program: ``"unbiased"`` (the
            estimator's condition holds here), ``"biased"`` (it does not: the notes name
            the line and what would be unbiased; `BiasWarning` was issued),
            ``"approximate"`` (biased by design: finite differences, SPSA, smoothing) or
            ``"unverified"`` (the program calls back to the host, which simgrad cannot read).
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
    claim: str = eqx.field(static=True, default="unbiased")
    # jaxlib ships no stubs, so pyright sees PyTreeDef as an unknown variable, not a class.
    _theta_structure: jax.tree_util.PyTreeDef | None = eqx.field(static=True, default=None)  # pyright: ignore[reportInvalidTypeForm]
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

    def summary(self) -> str:
        _raise_if_failed(self)
        keystr = jax.tree_util.keystr
        lines = [
            f"Estimate({self.method}, n_samples={self.n_samples}, n_evals={self.n_evals}, "
            f"claim={self.claim})"
        ]
        out_def = jax.tree.structure(self._value)
        outs = jax.tree_util.tree_flatten_with_path(self._value)[0]
        scalar = len(outs) == 1 and not outs[0][0] and np.ndim(outs[0][1]) == 0
        for (path, v), s in zip(outs, jax.tree.leaves(self._value_stderr), strict=True):
            lines.append(f"  value{keystr(path)} = {plus_minus(v, s)}")
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
                    lines.append(f"  grad{keystr(tpath)} = {plus_minus(gl, sl, bl)}")
                continue
            rows = list(np.ndindex(np.shape(v)))
            for row in rows[:6]:
                at = keystr(opath) + "".join(f"[{i}]" for i in row)
                for (tpath, gl), sl, bl in zip(theta_leaves, s_leaves, b_leaves, strict=True):
                    pick = lambda a, row=row: None if a is None else np.asarray(a)[row]  # noqa: E731
                    entry = plus_minus(pick(gl), pick(sl), pick(bl))
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
        n_bad_value, n_bad_grad, bad_leaf = Status.read(status)
    except jax.errors.JaxRuntimeError as error:
        raise runtime_error(error, est.n_samples) from error
    if bad_leaf >= 0:
        where = leaf_name(est._theta_structure, bad_leaf)
        raise ValueError(f"{where} is not finite: parameters must be finite.")
    if n_bad_value < 0 and est._recount is not None:  # some failed: count them
        try:
            n_bad_value, n_bad_grad, _ = Status.read(est._recount().status)
        except (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError) as error:
            raise runtime_error(error, est.n_samples) from error  # a draw's invalid parameter
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


def plus_minus(x, stderr, bias=None) -> str:
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


def check_on_device(est: Estimate) -> Estimate:
    """Attach the run-time checks to an `Estimate` computed inside a trace (`jax.jit`,
    `vmap`): reading any number then raises if θ or a sample was not finite (as
    ``JaxRuntimeError``; see `simulation_errors`). Eager results are checked on reading."""
    n_bad_value, n_bad_grad, bad_leaf = Status.of(est.status)
    numbers = (est._value, est._value_stderr, est._grad, est._grad_std, est._grad_stderr)
    numbers = (*numbers, est._grad_bias)
    numbers = fail_on_device(
        numbers, bad_leaf >= 0, "theta is not finite: parameters must be finite."
    )
    message = _nonfinite_message(est.method, est.n_samples, "some")
    what = " (count them by calling sg.gradient outside jit)"
    failed = (n_bad_value != 0) | (n_bad_grad != 0)
    numbers = fail_on_device(numbers, failed, message.format(what=what))
    fields = ("_value", "_value_stderr", "_grad", "_grad_std", "_grad_stderr", "_grad_bias")
    return eqx.tree_at(
        lambda e: [getattr(e, f) for f in fields], est, list(numbers), is_leaf=lambda x: x is None
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


def _nonfinite_message(method: str, n_samples: int, n, hint: str = "") -> str:
    """The `SimulationError` text; ``{what}`` is left for the caller to fill."""
    return f"{method}: the simulator gave NaN or inf in {n} of {n_samples} samples{{what}}." + (
        hint
        or " Look for log, sqrt, division or overflow that the sampled randomness can reach; "
        "NaN in the gradient only often comes from jnp.where with a NaN branch, or from "
        "sqrt/abs at 0. Fix the simulator; simgrad does not drop samples silently."
    )


def runtime_error(error: Exception, n_samples: int) -> Exception:
    text = str(error)
    if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
        return MemoryError(
            f"sg.gradient ran out of memory with n_samples={n_samples}: pass batch_size= "
            "(e.g. batch_size=2**14) to run the samples in chunks; memory is then "
            "proportional to batch_size, not n_samples."
        )
    message = carried_message(error)
    return error if message is None else SimulationError(message)


# --- validation ---------------------------------------------------------------------------
