r"""`sg.expectation`: $\mathbb{E}[\mathrm{sim}(\theta)]$ as a JAX function whose derivatives
are a gradient estimator's, so that it composes with `jax.grad`, `jit`, `vmap` and optax.

The value is a Monte Carlo mean; the derivative is given by a `jax.custom_jvp` rule whose
tangent is $\hat J\,\dot\theta$, with $\hat J$ the estimator's Jacobian from `estimate`
(the engine of `sg.gradient`). The rule is linear in $\dot\theta$, so JAX transposes it
for reverse mode: `jax.grad`, `jacrev`, `jvp`, `jacfwd` and `vmap` all see $\hat J$.
"""

import weakref
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.flatten_util import ravel_pytree

from . import _blackbox
from ._engine import choose, estimate, flat_problem
from ._estimate import gradient, method_key
from ._result import (
    Estimate,
    SimulationError,
    check_on_device,
    fail_on_device,
    refuse_derivatives,
)
from ._scan import scan
from ._src.program import trace
from ._src.validate import MAX_SAMPLES, check_arguments, check_key, check_theta, is_traced
from ._types import Key, Output, Simulator, Theta
from .estimators import AbstractEstimator, Auto
from .estimators.auto import JUMPS
from .estimators.base import check_method

# The value's samples use fold_in(fold_in(key, VALUE_INDEX), i): an index no gradient sample
# uses (sample i of the gradient has fold_in(key, i), i < MAX_SAMPLES), so the value and
# the gradient are independent.
VALUE_INDEX = MAX_SAMPLES


class Expectation(eqx.Module):
    r"""$\theta, key \mapsto$ an estimate of $\mathbb{E}[\mathrm{sim}(\theta, \cdot)]$ that JAX
    differentiates with a gradient estimator. Made by `sg.expectation`; see there."""

    sim: Simulator = eqx.field(static=True)
    method: AbstractEstimator = eqx.field(static=True)
    n_samples: int = eqx.field(static=True)
    batch_size: int | None = eqx.field(static=True)
    _fn: Callable[[Theta, Key], Output] = eqx.field(static=True, repr=False)

    def __call__(self, theta: Theta, key: Key) -> Output:
        """The Monte Carlo mean of ``n_samples`` replicates, differentiable by JAX."""
        check_key(key)
        return self._fn(check_theta(theta), key)

    def estimate(self, theta: Theta, key: Key) -> Estimate:
        """What ``self(theta, key)`` and its derivative return, with their standard errors:
        ``value`` equals ``self(theta, key)``; ``grad`` (the Jacobian) equals what
        `jax.grad` (`jax.jacrev`) of ``self`` gives at ``(theta, key)``, and
        ``sg.gradient(sim, theta, key, ...).grad``."""
        est = gradient(self.sim, theta, key, method=self.method, n_samples=self.n_samples,
                       batch_size=self.batch_size)  # fmt: skip
        value, stderr, ok = _values_jit(self)(check_theta(theta), key)
        if not is_traced(ok) and not bool(ok):
            raise SimulationError(_value_message(self.sim, self.n_samples))
        fields = lambda e: (e._value, e._value_stderr)  # noqa: E731
        return eqx.tree_at(fields, est, (value, stderr))


def expectation(
    sim: Simulator,
    *,
    method: AbstractEstimator | None = None,
    n_samples: int,
    batch_size: int | None = None,
) -> Expectation:
    r"""$\mathbb{E}_{key}[\mathrm{sim}(\theta, key)]$ as a function that `jax.grad` can see through.

    ``E = sg.expectation(sim, n_samples=n)`` is a function ``E(theta, key)``: the mean of
    ``n`` replicates, whose JAX derivatives (`jax.grad`, `jax.value_and_grad`, `jax.jvp`,
    `jax.jacrev`, `jax.jacfwd`, under `jax.jit` and `jax.vmap`) are ``method``'s gradient
    estimate $\hat J$ — the same number as ``sg.gradient(sim, theta, key, ...).grad``.
    So it sits inside larger programs: a calibration loss $(\mathbb{E}[\mathrm{sim}] -
    y)^2$, a sum of several expectations, a network whose output is θ, an optax loop.
    ``E.estimate(theta, key)`` returns both numbers with their standard errors.

    Why not ``jax.grad`` of a plain Monte Carlo mean: JAX then differentiates each sample
    path, which is wrong wherever the path jumps (a threshold, a discrete draw) — zero
    where the true derivative is not. ``sg.gradient(...).value`` refuses to be
    differentiated for that reason, and points here.

    **Bias of composition.** For a nonlinear $g$, $g(\hat\mu)$ is biased for
    $g(\mu)$: $\mathbb{E}[g(\hat\mu)] - g(\mu) \approx \tfrac12 g''(\mu)\,\sigma^2/n$, order
    $1/n$ (for $(\hat\mu - y)^2$: exactly $\sigma^2/n$). The gradient
    $g'(\hat\mu)\hat J$ would add a second order-$1/n$ bias,
    $g''(\mu)\,\mathrm{Cov}(\hat\mu, \hat J)$, if value and Jacobian shared samples; they
    do not: the value uses keys independent of the gradient's (``fold_in(key, 2**32 - 1)``
    and its own sample indices), so ``g'(\hat\mu)\hat J`` is unbiased for
    $\mathbb{E}[g'(\hat\mu)]\,J$ and its stationary point is the right one
    ($\mathbb{E}[\hat\mu] = y$ for a calibration loss). The price: a value needed by the
    caller (``value_and_grad``, a nonlinear loss) costs ``n`` extra runs of ``sim``;
    under `jax.jit`, ``jax.grad(E)`` alone does not run them.

    **Second derivatives** (`jax.hessian`, nested `jax.grad`) are the pathwise estimator
    differentiated again — correct when ``method`` is (or `sg.Auto` chooses)
    `sg.Pathwise` and no jump or kink lies downstream of the randomness (the sample
    path's derivative is then itself differentiable). Otherwise JAX would differentiate
    the estimator's arithmetic, which does not estimate the second derivative (for the
    score function it misses the $f\,\nabla\log p\,\nabla\log p^\top$ term): that raises
    a TypeError saying so, never a silently wrong number.

    Arguments:
        sim: ``sim(theta, key) -> output`` as for `sg.gradient`: a float, an array or a
            pytree of them (``E`` then returns that structure, and `jax.jacrev` the
            Jacobian); or an `sg.BlackBox`, with an estimator that needs only evaluations
            (``sg.FiniteDifference()``, ``sg.SPSA()``, ``sg.GaussianSmoothing(sigma)``),
            evaluated in this process (a failure inside ``jit`` or ``grad`` reaches Python
            as ``JaxRuntimeError``: see `sg.simulation_errors`).
        method: the estimator; default `sg.Auto()`, which chooses from the program.
        n_samples: replicates per call (at least 2).
        batch_size: as for `sg.gradient`.

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> def sim(p, key):                               # E = p
        ...     return sg.random.bernoulli(key, p)
        >>> E = sg.expectation(sim, n_samples=20_000)
        >>> loss = lambda p, key: (E(p, key) - 0.7) ** 2   # minimum at p = 0.7
        >>> g = jax.grad(loss)(0.5, jax.random.key(0))     # exact: 2 (0.5 - 0.7) = -0.4
        >>> abs(float(g) + 0.4) < 0.05
        True
    """
    method = Auto() if method is None else method
    check_method(method)
    sim = _blackbox.bind(sim, method, None)  # a black box as a JAX simulator (one callback)
    n_samples, batch_size = check_arguments(sim, jax.random.key(0), n_samples, batch_size)
    fn = _function(sim, method, n_samples, batch_size)
    return Expectation(sim, method, n_samples, batch_size, fn)


_CACHE: dict = {}


def _function(sim, method, n_samples, batch_size):
    """The compiled, differentiable ``(theta, key) -> mean``, cached on the simulator's
    identity and the static arguments (an expectation made anew in a loop compiles once).
    A simulator that closes over traced values (inside an outer `jit` or `grad`) has them
    hoisted (`jax.closure_convert`) and passed explicitly, so that JAX can trace the
    derivative rule; differentiating through them is refused (they are not θ)."""
    try:
        index = (id(sim), method_key(method), n_samples, batch_size)
        cached = _CACHE.get(index)
    except TypeError:
        index = cached = None
    if cached is not None and cached[0]() is sim:
        return cached[1]

    def call(theta, key):
        converted, consts = jax.closure_convert(sim, theta, key)
        if not consts:
            return plain(theta, key, ())
        return _differentiable(lambda t, k, c: converted(t, k, *c), method, n_samples,
                               batch_size)(theta, key, consts)  # fmt: skip

    plain = jax.jit(_differentiable(lambda t, k, c: sim(t, k), method, n_samples, batch_size))
    if index is not None:
        try:
            _CACHE[index] = (weakref.ref(sim), call)
        except TypeError:  # not weakly referable: not cached
            return call
        if len(_CACHE) > 128:
            del _CACHE[next(iter(_CACHE))]
    return call


def _differentiable(sim_with, method, n_samples, batch_size):
    """``mean(theta, key, consts)`` with the custom JVP rule ``Ĵ · dθ``; ``sim_with(theta,
    key, consts)`` is the simulator."""

    @jax.custom_jvp
    def mean(theta, key, consts):
        value, _, ok = _values(lambda t, k: sim_with(t, k, consts), theta, key, n_samples,
                               batch_size)  # fmt: skip
        return fail_on_device(value, ~ok, _value_message(sim_with, n_samples))

    def mean_jvp(primals, tangents):
        theta, key, consts = primals
        dtheta, _, dconsts = tangents
        if not all(isinstance(t, SymbolicZero) for t in jax.tree.leaves(dconsts)):
            raise TypeError(
                "sg.expectation: the simulator closes over a value that JAX is "
                "differentiating (a variable of the function being differentiated, used "
                "inside sim): its derivative cannot be estimated through a closure. Pass it "
                "as part of theta instead, e.g. E = sg.expectation(lambda th, key: "
                "sim(th['theta'], th['a'], key), ...) and differentiate E at "
                "{'theta': theta, 'a': a}."
            )
        dtheta = jax.tree.map(
            # SymbolicZero forwards .shape and .dtype to its aval (a __getattr__ pyright reads
            # as possibly a method)
            lambda t: jnp.zeros(t.shape, t.dtype) if isinstance(t, SymbolicZero) else t,  # pyright: ignore[reportArgumentType]
            dtheta,
            is_leaf=lambda t: isinstance(t, SymbolicZero),
        )
        sim = lambda t, k: sim_with(t, k, consts)  # noqa: E731
        chosen, _ = choose(method, sim, theta, key)
        refusal = _second_order_refusal(chosen, sim, theta, key)
        # Guard θ itself, not the Jacobian: AD may see the Jacobian's dependence on θ as a
        # symbolic zero (a pathwise derivative through a comparison), and skip any rule.
        at = _no_second_derivative(refusal)(theta) if refusal else theta
        est = check_on_device(estimate(sim, at, key, method=chosen, n_samples=n_samples,
                                       batch_size=batch_size))  # fmt: skip
        jac = est._grad
        value = mean(theta, key, consts)
        return value, _contract(jac, dtheta, value)

    mean.defjvp(mean_jvp, symbolic_zeros=True)
    return mean


def _values_jit(e: Expectation):
    return jax.jit(lambda theta, key: _values(e.sim, theta, key, e.n_samples, e.batch_size))


def _values(sim, theta, key, n_samples, batch_size):
    """``(mean, stderr, all finite)`` of ``n_samples`` replicates with keys independent of
    the gradient's; ``batch_size`` samples at a time."""
    key = jax.random.fold_in(key, VALUE_INDEX)

    def one(i):
        y = sim(theta, jax.random.fold_in(key, i))
        with jax.numpy_dtype_promotion("standard"):
            return ravel_pytree(y)[0]

    index = jnp.arange(n_samples, dtype=jnp.uint32)
    ys = jax.lax.map(one, index, batch_size=batch_size or n_samples)  # (n, m)
    mean, std = jnp.mean(ys, axis=0), jnp.std(ys, axis=0, ddof=1)
    ok = jnp.all(jnp.isfinite(mean) & jnp.isfinite(std))
    out = jax.eval_shape(sim, theta, key)
    with jax.numpy_dtype_promotion("standard"):
        unravel = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out))[1]
        return unravel(mean), unravel(std / np.sqrt(n_samples)), ok


def _value_message(sim, n_samples) -> str:
    return (
        f"sg.expectation: the simulator gave NaN or inf in some of its {n_samples} "
        "samples (or theta is not finite). Look for log, sqrt, division or overflow that "
        "the sampled randomness can reach; simgrad does not drop samples silently."
    )


def _contract(jac, dtheta, value):
    """``Ĵ · dθ`` in the output's structure: per output leaf, the sum over θ's leaves of
    the Jacobian block contracted with that leaf's tangent."""
    out_def = jax.tree.structure(value)
    blocks = out_def.flatten_up_to(jac)
    tangents = jax.tree.leaves(dtheta)
    out = []
    for block, y in zip(blocks, jax.tree.leaves(value), strict=True):
        total = jnp.zeros(y.shape, y.dtype)
        for j, t in zip(jax.tree.leaves(block), tangents, strict=True):
            total = total + jnp.tensordot(j, t, axes=t.ndim).astype(y.dtype)
        out.append(total)
    return jax.tree.unflatten(out_def, out)


def _second_order_refusal(chosen, sim, theta, key) -> str:
    """Why differentiating ``chosen``'s estimate again would not estimate the second
    derivative ("" when it does: pathwise on a path with no jump or kink after a draw)."""
    if not chosen.differentiable:
        return (
            f"{chosen!r} is not differentiable again: JAX would differentiate its Monte "
            "Carlo arithmetic, which does not estimate the second derivative (the score "
            "function's misses the f ∇log p ∇log pᵀ term; finite differences' and "
            "stochastic triples' miss the jumps)"
        )
    x, f, _, _ = flat_problem(sim, theta, key)
    findings = scan(trace(f, x, key), 1).findings
    rough = [fi for fi in findings if fi.random and fi.kind in (*JUMPS, "kink", "discrete_draw")]
    if not rough:
        return ""
    fi = rough[0]
    return (
        f"the sample path has a {fi.kind} ({fi.primitive} at {fi.where}) downstream of a "
        "random draw: its pathwise derivative jumps, and the derivative of the jump (a "
        "density term) is what the pathwise second derivative misses"
    )


def _no_second_derivative(reason: str):
    return refuse_derivatives(
        f"sg.expectation: a second derivative (jax.hessian, nested jax.grad) was asked "
        f"for, but {reason}. Second derivatives are available with sg.Pathwise() when "
        "the sample path is twice differentiable. Otherwise estimate the derivative you "
        "need as an expectation of its own: write its per-sample estimate as a "
        "simulator and pass that to sg.expectation."
    )
