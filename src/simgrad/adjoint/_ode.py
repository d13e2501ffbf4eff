"""ODE gradients through diffrax: discretise-then-differentiate versus the continuous adjoint."""

import contextlib
import functools
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

from .._types import Theta

_ADJOINTS = ("discrete", "continuous", "interpolated")


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
        return sol.ys[-1]

    def __call__(self, theta: Theta) -> Array:
        return self.objective(self.solve(theta), theta)


class ODEGradient(eqx.Module):
    """What `ode_gradient` returns: the value, the gradient, and what they cost.

    Attributes:
        value: $J(y(t_1), \\theta)$.
        grad: $\\nabla_\\theta J$, ``theta``'s structure.
        adjoint: ``"discrete"``, ``"continuous"`` or ``"interpolated"``.
        seconds: wall time of one compiled value-and-gradient call (best of ``repeats``).
        temp_bytes: the compiled call's temporary memory (XLA's memory analysis; on CPU it
            is deterministic, the figure that grows with the number of stored steps).
    """

    value: Array
    grad: Theta
    adjoint: str = eqx.field(static=True)
    seconds: float = eqx.field(static=True)
    temp_bytes: int = eqx.field(static=True)


def _diffrax_adjoint(problem: ODEProblem, adjoint: str, checkpoints: int | None):
    if adjoint == "discrete":
        return dfx.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
    controller, _ = problem._controller()
    return dfx.BacksolveAdjoint(solver=problem.solver, stepsize_controller=controller)


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


def ode_gradient(
    problem: ODEProblem,
    theta: Theta,
    adjoint: Literal["discrete", "continuous", "interpolated"] = "discrete",
    *,
    checkpoints: int | None = None,
    repeats: int = 3,
) -> ODEGradient:
    r"""The gradient $\nabla_\theta J(y(t_1; \theta), \theta)$ of an ODE simulator, two ways.

    - ``"discrete"`` (discretise-then-differentiate): reverse-mode AD through the solver's
      steps, with diffrax's ``RecursiveCheckpointAdjoint`` (binomial checkpointing). It
      is the exact gradient of the computed $J$: it agrees with finite differences of the
      solver to rounding.
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

    Arguments:
        problem: an `ODEProblem`.
        theta: the parameters, a float, an array or a pytree of them.
        adjoint: ``"discrete"``, ``"continuous"`` or ``"interpolated"``.
        checkpoints: for ``"discrete"``: how many steps to store. ``None`` stores about
            $\sqrt{2 \cdot \text{max\_steps}}$ (equinox's default for binomial
            checkpointing), so memory grows like the square root of the number of steps
            and the reverse pass recomputes the rest.
        repeats: timed calls after compilation; the best is reported.

    Examples:
        >>> import jax.numpy as jnp, simgrad as sg
        >>> decay = sg.adjoint.ODEProblem(lambda t, y, k: -k * y, jnp.array([1.0]), 0.0, 1.0,
        ...                               lambda y, k: y[0])
        >>> r = sg.adjoint.ode_gradient(decay, jnp.array(2.0), "continuous")
        >>> round(float(r.grad), 6)                       # d/dk exp(-k) = -exp(-2)
        -0.135335
    """
    if not isinstance(problem, ODEProblem):
        raise TypeError(f"problem must be an sg.adjoint.ODEProblem, got {type(problem).__name__}.")
    if adjoint not in _ADJOINTS:
        raise ValueError(f"adjoint={adjoint!r}: choose 'discrete', 'continuous' or 'interpolated'.")
    if checkpoints is not None and (
        isinstance(checkpoints, bool) or not isinstance(checkpoints, int) or checkpoints < 1
    ):
        raise ValueError(f"checkpoints={checkpoints!r}: a positive int or None.")
    if checkpoints is not None and adjoint != "discrete":
        raise ValueError("checkpoints only applies to adjoint='discrete'; drop it.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}: a positive int.")
    theta = _check_theta(theta)

    if adjoint == "interpolated":
        value_and_grad = functools.partial(_interpolated_adjoint, problem)
    else:
        diffrax_adjoint = _diffrax_adjoint(problem, adjoint, checkpoints)

        def value_and_grad(th):
            run = lambda t: problem.objective(problem.solve(t, diffrax_adjoint), t)  # noqa: E731
            return jax.value_and_grad(run)(th)

    compiled = jax.jit(value_and_grad).lower(theta).compile()
    try:
        with _quiet_callback_failures():
            value, grad = jax.block_until_ready(compiled(theta))
    except jax.errors.JaxRuntimeError as error:
        hint = (
            " BacksolveAdjoint solves the state backwards in time, which is unstable for "
            "stiff or dissipative problems; use adjoint='interpolated' (the same continuous "
            "adjoint along the stored forward trajectory) or 'discrete'."
            if adjoint == "continuous"
            else " Raise problem.max_steps or loosen rtol/atol."
        )
        reason = str(error).split("EquinoxRuntimeError: ")[-1].split("\n")[0]
        raise RuntimeError(f"ode_gradient(adjoint={adjoint!r}) failed: {reason}{hint}") from None
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(theta))
        best = min(best, time.perf_counter() - start)
    return ODEGradient(
        value=value, grad=grad, adjoint=adjoint, seconds=best, temp_bytes=temp_bytes(compiled)
    )


def temp_bytes(compiled) -> int:
    """A compiled function's temporary memory in bytes (XLA's memory analysis; -1 if absent)."""
    memory = compiled.memory_analysis()
    return -1 if memory is None else int(memory.temp_size_in_bytes)


def _interpolated_adjoint(problem: ODEProblem, theta: Theta):
    """Forward solve with dense output, then the adjoint ODE alone, backwards along it."""
    controller, dt0 = problem._controller()
    term = dfx.ODETerm(problem.vector_field)
    forward = dfx.diffeqsolve(
        term, problem.solver, problem.t0, problem.t1, dt0, problem.y0, args=theta,
        saveat=dfx.SaveAt(t1=True, dense=True), stepsize_controller=controller,
        max_steps=problem._max_steps(), adjoint=dfx.ForwardMode(),
    )  # fmt: skip
    y1 = forward.ys[-1]
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
    g = jax.tree.map(lambda x: x[-1], backward.ys[1])  # g(t0) = ∫ a·∂f/∂θ dt
    return value, jax.tree.map(jnp.add, dJ_dtheta, g)


def _check_theta(theta) -> Theta:
    leaves, treedef = jax.tree.flatten(theta)
    if not leaves:
        raise ValueError("theta has no parameters: pass a float, an array or a pytree of them.")
    out = []
    for leaf in leaves:
        leaf = jnp.asarray(leaf)
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"theta must be floating (got dtype {leaf.dtype}); write 1.0, not 1.")
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"theta is not finite ({leaf}): parameters must be finite.")
        out.append(leaf)
    return jax.tree.unflatten(treedef, out)


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
    if not jax.config.jax_enable_x64:
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
        lambda y, k: y[species],
        solver=dfx.Kvaerno5(),
        rtol=rtol,
        atol=1e-12,
        max_steps=max_steps,
    )


ROBERTSON_RATES = np.array([0.04, 3.0e7, 1.0e4])
"""Robertson's rate constants $(k_1, k_2, k_3)$ (float64 NumPy; enable x64 to keep them)."""
