"""ODE gradients through diffrax: forward sensitivities, discretise-then-differentiate, and the
continuous adjoint."""

import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._result import AbstractResult
from .._src.names import leaf_name
from .._src.validate import check_theta
from .._types import Theta


class ODEProblem(eqx.Module):
    r"""An ODE simulator $\dot y = f(t, y, \theta)$, $y(t_0) = y_0$, scored by $J(y(t_1), \theta)$.

    Calling the problem, ``problem(theta)``, solves forward and returns $J$. The solve is
    adaptive (a PID controller with ``rtol``, ``atol``) unless ``n_steps`` fixes a constant
    step $(t_1 - t_0)/n$.

    Attributes:
        vector_field: ``f(t, y, theta) -> dy/dt``, ``y`` an array.
        y0: the initial state (an array; it does not depend on ``theta``).
        t0, t1: the time interval, ``t0 < t1``.
        objective: ``J(y1, theta) -> scalar`` of the final state.
        solver: a diffrax solver; implicit ones (``Kvaerno5``) for stiff problems.
        rtol, atol: tolerances of the adaptive controller (ignored with ``n_steps``).
        n_steps: a constant number of steps, or ``None`` for adaptive stepping.
        max_steps: the most steps an adaptive solve may take (memory is sized by it).

    Examples:
        >>> import jax.numpy as jnp, simgrad as sg
        >>> decay = sg.adjoint.ODEProblem(lambda t, y, k: -k * y, jnp.array([1.0]), 0.0, 1.0,
        ...                               lambda y, k: y[0])
        >>> round(float(decay(jnp.array(2.0))), 6)       # exp(-2)
        0.135335
    """

    vector_field: Callable
    y0: Array
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    objective: Callable
    solver: dfx.AbstractSolver = dfx.Tsit5()
    rtol: float = eqx.field(default=1e-8, static=True)
    atol: float = eqx.field(default=1e-10, static=True)
    n_steps: int | None = eqx.field(default=None, static=True)
    max_steps: int = eqx.field(default=16_384, static=True)

    def __check_init__(self):
        if not callable(self.vector_field):
            raise TypeError("ODEProblem(vector_field=...) must be a function f(t, y, theta).")
        if not callable(self.objective):
            raise TypeError("ODEProblem(objective=...) must be a function J(y1, theta).")
        if not (isinstance(self.y0, jax.Array) and jnp.issubdtype(self.y0.dtype, jnp.floating)):
            raise TypeError(
                f"ODEProblem(y0=...) must be a floating JAX array, got {type(self.y0).__name__}; "
                "use e.g. jnp.array([1.0, 0.0])."
            )
        if not (math.isfinite(self.t0) and math.isfinite(self.t1) and self.t0 < self.t1):
            raise ValueError(f"ODEProblem: need finite t0 < t1, got t0={self.t0}, t1={self.t1}.")
        if self.n_steps is not None and (not isinstance(self.n_steps, int) or self.n_steps < 1):
            raise ValueError(f"ODEProblem(n_steps={self.n_steps!r}): a positive int or None.")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"ODEProblem: rtol={self.rtol}, atol={self.atol} must be positive.")

    def _max_steps(self) -> int:
        return self.max_steps if self.n_steps is None else self.n_steps

    def _controller(self):
        if self.n_steps is not None:
            return dfx.ConstantStepSize(), (self.t1 - self.t0) / self.n_steps
        return dfx.PIDController(rtol=self.rtol, atol=self.atol), None

    def solve(self, theta: Theta, adjoint: dfx.AbstractAdjoint | None = None) -> Array:
        """The final state $y(t_1)$; ``adjoint`` decides how `jax.grad` goes through it."""
        controller, dt0 = self._controller()
        sol = dfx.diffeqsolve(
            dfx.ODETerm(self.vector_field),
            self.solver,
            self.t0,
            self.t1,
            dt0,
            self.y0,
            args=theta,
            saveat=dfx.SaveAt(t1=True),
            stepsize_controller=controller,
            adjoint=dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
            max_steps=self._max_steps(),
        )
        return sol.ys[-1]  # pyright: ignore[reportOptionalSubscript]  # saved: SaveAt(t1=True)

    def __call__(self, theta: Theta) -> Array:
        return self.objective(self.solve(theta), theta)


class ODEGradient(AbstractResult):
    """What `ode_gradient` returns: the value, the gradient, how they were computed and
    what they cost.

    Attributes:
        value: $J(y(t_1), \\theta)$.
        grad: $\\nabla_\\theta J$, ``theta``'s structure.
        adjoint: the method used: ``"forward"``, ``"discrete"``, ``"continuous"`` or
            ``"interpolated"`` (``adjoint="auto"`` resolved).
        reason: why this method (the rule ``"auto"`` applied, or "requested").
        seconds: wall time of the compiled value-and-gradient call (compilation excluded;
            the best of ``1 + repeats`` calls).
        compile_seconds: time spent tracing and compiling in this call; ``0.0`` when a
            compiled solve of the same structure and shapes was reused.
        temp_bytes: the compiled call's temporary memory (XLA's memory analysis; on CPU it
            is deterministic, the figure that grows with the number of stored steps).
    """

    value: Array
    grad: Theta
    adjoint: str = eqx.field(static=True)
    reason: str = eqx.field(static=True)
    seconds: float = eqx.field(static=True)
    compile_seconds: float = eqx.field(static=True)
    temp_bytes: int = eqx.field(static=True)

    def summary(self) -> str:
        grads = "\n".join(
            f"  grad{jax.tree_util.keystr(path)} = {np.asarray(g)}"
            for path, g in jax.tree_util.tree_flatten_with_path(self.grad)[0]
        )
        return (
            f"ODEGradient(adjoint={self.adjoint!r}, {self.seconds * 1e3:.3g} ms, "
            f"compiled in {self.compile_seconds:.3g} s)\n  value = {np.asarray(self.value)}\n"
            f"{grads}\n  note: {self.reason}"
        )


FORWARD_MAX_PARAMETERS = 8
"""``adjoint="auto"`` uses forward-mode sensitivities up to this many parameters (scalars
in ``theta``) on a state of at most `FORWARD_MAX_STATES` entries, and up to 2 on a larger
one; reverse mode (``"discrete"``) otherwise (see `ode_gradient`)."""

FORWARD_MAX_STATES = 512
"""Above this many state entries a tangent costs about 2–3 forward solves instead of
0.5–1 (measured on CPU), so ``"auto"`` keeps forward mode for at most 2 parameters."""


def _forward(problem: ODEProblem, theta: Theta, checkpoints: int | None):
    """Forward-mode sensitivities: one solve carrying the p tangents along (`jax.jacfwd`)."""
    del checkpoints

    def run(th):
        value = problem.objective(problem.solve(th, dfx.ForwardMode()), th)
        return value, value

    grad, value = jax.jacfwd(run, has_aux=True)(theta)
    return value, grad


def _reverse(problem: ODEProblem, theta: Theta, checkpoints: int | None, diffrax_adjoint):
    run = lambda th: problem.objective(problem.solve(th, diffrax_adjoint), th)  # noqa: E731
    return jax.value_and_grad(run)(theta)


def _discrete(problem: ODEProblem, theta: Theta, checkpoints: int | None):
    adjoint = dfx.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
    return _reverse(problem, theta, checkpoints, adjoint)


def _continuous(problem: ODEProblem, theta: Theta, checkpoints: int | None):
    controller, _ = problem._controller()
    adjoint = dfx.BacksolveAdjoint(solver=problem.solver, stepsize_controller=controller)
    return _reverse(problem, theta, checkpoints, adjoint)


def _interpolated(problem: ODEProblem, theta: Theta, checkpoints: int | None):
    """Forward solve with dense output, then the adjoint ODE alone, backwards along it."""
    del checkpoints
    controller, dt0 = problem._controller()
    term = dfx.ODETerm(problem.vector_field)
    forward = dfx.diffeqsolve(
        term, problem.solver, problem.t0, problem.t1, dt0, problem.y0, args=theta,
        saveat=dfx.SaveAt(t1=True, dense=True), stepsize_controller=controller,
        max_steps=problem._max_steps(), adjoint=dfx.ForwardMode(),
    )  # fmt: skip
    y1 = forward.ys[-1]  # pyright: ignore[reportOptionalSubscript]  # saved: SaveAt(t1=True)
    value, (dJ_dy, dJ_dtheta) = jax.value_and_grad(problem.objective, argnums=(0, 1))(y1, theta)

    def adjoint_field(t, state, args):
        a, _ = state
        _, vjp = jax.vjp(lambda y, th: problem.vector_field(t, y, th), forward.evaluate(t), theta)
        da, dg = vjp(a)
        return -da, jax.tree.map(jnp.negative, dg)

    g0 = jax.tree.map(jnp.zeros_like, theta)
    backward = dfx.diffeqsolve(
        dfx.ODETerm(adjoint_field), problem.solver, problem.t1, problem.t0,
        None if dt0 is None else -dt0, (dJ_dy, g0), saveat=dfx.SaveAt(t1=True),
        stepsize_controller=controller, max_steps=problem._max_steps(),
        adjoint=dfx.ForwardMode(),  # a plain while loop: nothing differentiates through it
    )  # fmt: skip
    # g(t0) = ∫ a·∂f/∂θ dt (ys is saved: SaveAt(t1=True))
    g = jax.tree.map(lambda x: x[-1], backward.ys[1])  # pyright: ignore[reportOptionalSubscript]
    return value, jax.tree.map(jnp.add, dJ_dtheta, g)


_METHODS = {
    "forward": _forward,
    "discrete": _discrete,
    "continuous": _continuous,
    "interpolated": _interpolated,
}
_ADJOINTS = ("auto", *_METHODS)


class _Compiled(eqx.Module):
    call: Callable
    temp_bytes: int


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64


def _compiled(method: str, problem: ODEProblem, theta: Theta, checkpoints: int | None):
    """The compiled value-and-gradient, once per (method, the problem's static structure,
    the shapes and dtypes of its arrays and of ``theta``); the last 64 are kept.

    Returns the compiled function, the arrays to call it with, and whether it was compiled
    now. Everything that is not an array (the vector field, the objective, the solver, t0,
    t1, the tolerances) is compared by equality — a function by identity — so a problem
    rebuilt around the same functions reuses the compiled solve, while one built around
    new lambdas compiles again.
    """
    leaves, treedef = jax.tree.flatten((problem, theta))
    is_array = tuple(map(eqx.is_array, leaves))
    arrays = [leaf for leaf, a in zip(leaves, is_array, strict=True) if a]
    static = tuple(None if a else leaf for leaf, a in zip(leaves, is_array, strict=True))
    key = (method, checkpoints, treedef, static, *map(jax.typeof, arrays))
    try:
        hit = _CACHE.get(key)
    except TypeError:  # an unhashable static part: compile without caching
        key, hit = None, None
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit, arrays, False

    def run(*dynamic):
        it = iter(dynamic)
        rebuilt = [next(it) if a else leaf for leaf, a in zip(static, is_array, strict=True)]
        problem, theta = jax.tree.unflatten(treedef, rebuilt)
        return _METHODS[method](problem, theta, checkpoints)

    call = jax.jit(run)
    # compiled ahead of time for its memory analysis; `call` then reuses this executable
    entry = _Compiled(call, temp_bytes(call.lower(*arrays).compile()))
    if key is not None:
        _CACHE[key] = entry
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry, arrays, True


STORE_ALL_BYTES = 16 * 2**20
"""``adjoint="discrete"`` stores every step when that takes at most this many bytes."""


def _store_all_bytes(problem: ODEProblem) -> int:
    """An upper estimate of the memory to store every step: per step, the solver's loop
    state (the state, its derivative and the stage data: at most ``4·len(y0) + 64``)."""
    return problem._max_steps() * (4 * problem.y0.size + 64) * problem.y0.dtype.itemsize


def _checkpoints(problem: ODEProblem, checkpoints: int | None) -> tuple[int | None, str]:
    """The checkpoints of the discrete adjoint, and what they mean."""
    if checkpoints is not None:
        return checkpoints, f"{checkpoints} checkpoints"
    store_all = _store_all_bytes(problem)
    if store_all <= STORE_ALL_BYTES:
        return problem._max_steps(), (
            f"every step stored (at most {problem._max_steps()} steps, "
            f"~{store_all / 2**20:.1f} MiB <= {STORE_ALL_BYTES / 2**20:.0f} MiB)"
        )
    return None, "binomial checkpointing, ~sqrt(2 max_steps) checkpoints"


def _choose(problem: ODEProblem, theta: Theta) -> tuple[str, str]:
    """``"auto"``: forward mode costs about ``1 + c p`` forward solves (``c`` from 0.5 on
    small states to 3 on large ones), reverse mode 4–13 whatever ``p`` (CPU, measured by
    benchmarks/bench_adjoint.py)."""
    p = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(theta))
    n = int(problem.y0.size)
    limit = FORWARD_MAX_PARAMETERS if n <= FORWARD_MAX_STATES else 2
    size = f"auto: p = {p} parameters, n = {n} states"
    rule = f"(forward mode up to p = {limit} at this n)"
    if p <= limit:
        return "forward", f"{size}: forward-mode sensitivities, one solve with p tangents {rule}"
    return "discrete", f"{size}: reverse mode through the solver, one backward pass {rule}"


def ode_gradient(
    problem: ODEProblem,
    theta: Theta,
    adjoint: Literal["auto", "forward", "discrete", "continuous", "interpolated"] = "auto",
    *,
    checkpoints: int | None = None,
    repeats: int = 0,
) -> ODEGradient:
    r"""The gradient $\nabla_\theta J(y(t_1; \theta), \theta)$ of an ODE simulator.

    - ``"auto"`` (the default): ``"forward"`` when ``theta`` holds at most
      `FORWARD_MAX_PARAMETERS` (8) scalars and the state at most `FORWARD_MAX_STATES`
      (512) entries, or at most 2 scalars on a larger state; ``"discrete"`` otherwise.
      The result's ``adjoint`` and ``reason`` say which was used and why.
    - ``"forward"`` (forward-mode sensitivities): $s_i = \partial y/\partial\theta_i$
      carried along the solve, $\dot s_i = \partial_y f\, s_i + \partial_{\theta_i} f$,
      by `jax.jacfwd` through the solver (diffrax's ``ForwardMode``). Exact for the
      computed $J$, no storage, one loop, and about $1 + c\,p$ forward solves for $p$
      parameters ($c \approx 0.5$–$1$ on small states, 2–3 on states of thousands of
      entries, on CPU): the cheapest choice for few parameters.
    - ``"discrete"`` (discretise-then-differentiate): reverse-mode AD through the solver's
      steps, with diffrax's ``RecursiveCheckpointAdjoint`` (every step stored, or binomial
      checkpointing: see ``checkpoints``). It is the exact gradient of the computed $J$:
      it agrees with finite differences of the solver to rounding. Its cost does not grow
      with $p$, but on CPU the backward pass costs 4–10 forward solves (10–20 with
      checkpointing on small problems): the right choice for many parameters.
    - ``"continuous"`` (differentiate-then-discretise): the adjoint ODE
      $\dot a = -a^\top \partial_y f$, $a(t_1) = \partial_y J$, solved backwards together
      with $y$ (diffrax's ``BacksolveAdjoint``), $\nabla_\theta J = \partial_\theta J +
      \int_{t_0}^{t_1} a^\top \partial_\theta f\,dt$. Memory $O(1)$ in the steps, but it is
      only an approximation of the gradient of the computed $J$, accurate to the solver
      tolerance; and solving $y$ backwards is unstable for dissipative or stiff problems
      (do not use it there: prefer ``"discrete"``).
    - ``"interpolated"``: the same continuous adjoint, solved backwards alone along the
      dense forward solution (stable for stiff problems). Memory and time grow with
      ``problem.max_steps`` (the dense output is allocated for it): keep it close to the
      number of steps the solve needs.

    The compiled solve is kept: a second call with the same problem (the same vector
    field, objective and solver objects; any values of ``y0`` and ``theta`` of the same
    shapes and dtypes) runs without tracing or compiling again.

    Arguments:
        problem: an `ODEProblem`.
        theta: the parameters, a float, an array or a pytree of them.
        adjoint: ``"auto"``, ``"forward"``, ``"discrete"``, ``"continuous"`` or
            ``"interpolated"``.
        checkpoints: for ``"discrete"``: how many steps to store. ``None`` stores every
            step when that fits in `STORE_ALL_BYTES` (16 MiB, estimated from
            ``max_steps`` and the size of ``y0``): on small problems it is 2–4 times
            faster than checkpointing. Otherwise it stores about
            $\sqrt{2 \cdot \text{max\_steps}}$ (equinox's default for binomial
            checkpointing), so memory grows like the square root of the number of steps
            and the reverse pass recomputes the rest.
        repeats: extra timed calls; ``seconds`` is the best of ``1 + repeats``.

    Examples:
        >>> import jax.numpy as jnp, simgrad as sg
        >>> decay = sg.adjoint.ODEProblem(lambda t, y, k: -k * y, jnp.array([1.0]), 0.0, 1.0,
        ...                               lambda y, k: y[0])
        >>> r = sg.adjoint.ode_gradient(decay, jnp.array(2.0))
        >>> round(float(r.grad), 6), r.adjoint           # d/dk exp(-k) = -exp(-2)
        (-0.135335, 'forward')
    """
    if not isinstance(problem, ODEProblem):
        raise TypeError(f"problem must be an sg.adjoint.ODEProblem, got {type(problem).__name__}.")
    if adjoint not in _ADJOINTS:
        raise ValueError(
            f"adjoint={adjoint!r}: choose 'auto', 'forward', 'discrete', 'continuous' or "
            "'interpolated'."
        )
    if checkpoints is not None and (
        isinstance(checkpoints, bool) or not isinstance(checkpoints, int) or checkpoints < 1
    ):
        raise ValueError(f"checkpoints={checkpoints!r}: a positive int or None.")
    if checkpoints is not None and adjoint != "discrete":
        raise ValueError("checkpoints only applies to adjoint='discrete'; drop it.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
        raise ValueError(f"repeats={repeats!r}: a non-negative int.")
    theta = _check_theta(theta)
    method, reason = _choose(problem, theta) if adjoint == "auto" else (adjoint, "requested")
    if method == "discrete":
        checkpoints, stored = _checkpoints(problem, checkpoints)
        reason = f"{reason}; {stored}"

    start = time.perf_counter()
    compiled, leaves, fresh = _compiled(method, problem, theta, checkpoints)
    compile_seconds = time.perf_counter() - start if fresh else 0.0
    value, grad, best = _timed(compiled, leaves, method)
    for _ in range(repeats):
        value, grad, seconds = _timed(compiled, leaves, method)
        best = min(best, seconds)
    return ODEGradient(
        value=value,
        grad=grad,
        adjoint=method,
        reason=reason,
        seconds=best,
        compile_seconds=compile_seconds,
        temp_bytes=compiled.temp_bytes,
    )


def _timed(compiled, leaves, method: str):
    """``(value, grad, seconds)``: one call of the compiled gradient, waited for."""
    start = time.perf_counter()
    try:
        with _quiet_callback_failures():
            value, grad = jax.block_until_ready(compiled.call(*leaves))
    except jax.errors.JaxRuntimeError as error:
        raise _solve_failed(method, error) from None
    return value, grad, time.perf_counter() - start


@contextlib.contextmanager
def _quiet_callback_failures():
    """Hold back JAX's log of a failing `pure_callback` (diffrax's run-time checks raise
    through one): the RuntimeError raised below says what failed, in one line."""
    logger = logging.getLogger("jax._src.callback")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _solve_failed(method: str, error: Exception) -> RuntimeError:
    hint = (
        " BacksolveAdjoint solves the state backwards in time, which is unstable for "
        "stiff or dissipative problems; use adjoint='interpolated' (the same continuous "
        "adjoint along the stored forward trajectory), 'forward' or 'discrete'."
        if method == "continuous"
        else " Raise problem.max_steps or loosen rtol/atol."
    )
    reason = str(error).split("EquinoxRuntimeError: ")[-1].split("\n")[0]
    return RuntimeError(f"ode_gradient(adjoint={method!r}) failed: {reason}{hint}")


def temp_bytes(compiled) -> int:
    """A compiled function's temporary memory in bytes (XLA's memory analysis; -1 if absent)."""
    memory = compiled.memory_analysis()
    return -1 if memory is None else int(memory.temp_size_in_bytes)


def _check_theta(theta) -> Theta:
    """`check_theta`, and every leaf finite now (a solve's result is checked nowhere else)."""
    theta = check_theta(theta)
    leaves, treedef = jax.tree.flatten(theta)
    for i, leaf in enumerate(leaves):
        if not np.isfinite(np.asarray(leaf)).all():  # on the host: cheaper than a dispatch
            where = leaf_name(treedef, i)
            raise ValueError(f"{where} is not finite ({leaf}): parameters must be finite.")
    return theta


class _Species(eqx.Module):
    """The objective ``y[index]`` (a module, so equal objectives share a compiled solve)."""

    index: int = eqx.field(static=True)

    def __call__(self, y, theta):
        return y[self.index]


def _robertson_field(t, y, k):
    fast = k[2] * y[1] * y[2]
    return jnp.stack([-k[0] * y[0] + fast, k[0] * y[0] - k[1] * y[1] ** 2 - fast, k[1] * y[1] ** 2])


def robertson(
    t1: float = 10.0, species: int = 0, *, rtol: float = 1e-8, max_steps: int = 16_384
) -> ODEProblem:
    r"""Robertson's stiff chemical kinetics: the final concentration of one species.

    $\dot y_1 = -k_1 y_1 + k_3 y_2 y_3$, $\dot y_2 = k_1 y_1 - k_2 y_2^2 - k_3 y_2 y_3$,
    $\dot y_3 = k_2 y_2^2$, $y(0) = (1, 0, 0)$; ``theta`` is the rate constants
    $k = (0.04, 3\times 10^7, 10^4)$ (`ROBERTSON_RATES`), spanning nine decades — the
    classic stiff test (Robertson 1966; Hairer & Wanner, *Solving ODEs II*, §IV.1). Solved
    with diffrax's implicit ``Kvaerno5``. The objective is $y_{\text{species}}(t_1)$.

    ``adjoint="continuous"`` (``BacksolveAdjoint``) fails on it: solving the stiff state
    backwards explodes. Use ``"discrete"`` or ``"interpolated"``.

    It needs float64 (nine decades of rates, ``atol=1e-12``): enable it first.

    Examples:
        >>> import jax, simgrad as sg
        >>> jax.config.update("jax_enable_x64", True)
        >>> problem = sg.adjoint.robertson(t1=10.0)
        >>> round(float(problem(sg.adjoint.ROBERTSON_RATES)), 6)
        0.84137
    """
    if not (math.isfinite(t1) and t1 > 0):
        raise ValueError(f"robertson(t1={t1!r}): t1 must be a positive time.")
    if not jax.config.jax_enable_x64:  # pyright: ignore[reportAttributeAccessIssue]  # set at run time
        raise ValueError(
            "robertson() needs float64: call jax.config.update('jax_enable_x64', True) first "
            "(float32 cannot meet the tolerances that nine decades of rate constants need)."
        )
    if species not in (0, 1, 2):
        raise ValueError(f"robertson(species={species!r}): the species index is 0, 1 or 2.")
    return ODEProblem(
        _robertson_field,
        jnp.array([1.0, 0.0, 0.0]),
        0.0,
        float(t1),
        _Species(species),
        solver=dfx.Kvaerno5(),
        rtol=rtol,
        atol=1e-12,
        max_steps=max_steps,
    )


ROBERTSON_RATES = np.array([0.04, 3.0e7, 1.0e4])
"""Robertson's rate constants $(k_1, k_2, k_3)$ (float64 NumPy; enable x64 to keep them)."""
