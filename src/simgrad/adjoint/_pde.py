r"""1-D PDEs by the method of lines, each with two gradients.

- ``discrete_gradient``: discretise-then-differentiate, reverse-mode AD through the time
  stepping (`jax.lax.scan`); the exact gradient of the computed objective.
- ``continuous_gradient``: differentiate-then-discretise, the adjoint PDE derived by hand on
  paper, then discretised and solved backwards on its own, with the gradient integrals
  evaluated by the trapezoidal rule.

Both converge to the gradient of the PDE's objective when the discretisation is smooth in
``theta``; `consistency` measures whether they do.
"""

import abc
import math
from typing import TYPE_CHECKING, ClassVar, Literal

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array

from .._result import AbstractResult

if TYPE_CHECKING:  # pyright takes only a local alias of ClassVar for one (pyright#4965)
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar


class AbstractPDEProblem(eqx.Module):
    """A PDE simulator on a grid of ``n`` cells, with two gradients of its objective.

    A subclass defines `value` (the discrete objective $J_h(\\theta)$, by the method of
    lines), `continuous_gradient` (its hand-derived adjoint PDE, discretised separately),
    `exact_gradient` (closed form, or ``None``), `default_theta` and the theoretical orders
    of convergence of both gradients in the grid spacing.
    """

    expected_orders: AbstractClassVar[tuple[float | None, float | None]]
    min_resolution: ClassVar[int] = 4

    @abc.abstractmethod
    def default_theta(self) -> dict[str, float]:
        """The parameters the docs and tests use; also the names ``theta`` must carry."""

    @abc.abstractmethod
    def value(self, theta: dict, n: int) -> Array:
        """The discrete objective $J_h(\\theta)$ on ``n`` cells."""

    @abc.abstractmethod
    def continuous_gradient(self, theta: dict, n: int) -> dict:
        """The continuous adjoint's gradient, discretised on ``n`` cells."""

    @abc.abstractmethod
    def exact_gradient(self, theta: dict) -> dict | None:
        """$\\nabla_\\theta J$ of the PDE itself in closed form, or ``None``."""

    def discrete_gradient(self, theta: dict, n: int) -> dict:
        """Reverse-mode AD through the time stepping: $\\nabla_\\theta J_h$."""
        theta = self.check(theta, n)
        return _grad_value(self, theta, n)

    def check(self, theta, n: int) -> dict:
        """Validate ``theta`` and ``n``; return ``theta`` as a dict of float arrays."""
        names = set(self.default_theta())
        if not isinstance(theta, dict) or set(theta) != names:
            raise TypeError(
                f"{type(self).__name__}: theta must be a dict with keys {sorted(names)}, got "
                f"{theta!r}; start from problem.default_theta()."
            )
        out = {}
        for name, leaf in theta.items():
            leaf = jnp.asarray(leaf)
            if leaf.shape != () or not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(f"theta[{name!r}] must be a float scalar, got {leaf!r}.")
            if not isinstance(leaf, jax.core.Tracer) and not np.isfinite(np.asarray(leaf)):
                raise ValueError(f"theta[{name!r}] = {leaf} is not finite.")
            out[name] = leaf
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < self.min_resolution:
            raise ValueError(
                f"{type(self).__name__}: the resolution n={n!r} must be an int >= "
                f"{self.min_resolution} (the number of grid cells)."
            )
        return out


@eqx.filter_jit
def _grad_value(problem, theta, n):
    return jax.grad(problem.value)(theta, n)


def _trapezoid_weights(m: int, dt, dtype) -> Array:
    w = jnp.full((m + 1,), dt, dtype=dtype)
    return w.at[0].multiply(0.5).at[-1].multiply(0.5)


class HeatProblem(AbstractPDEProblem):
    r"""Heat conduction $u_t = \kappa u_{xx} + \sigma g(x)$ on $(0, 1)$, $u = 0$ at both ends.

    $u(x, 0) = a\,\phi_0(x)$ with $\phi_0 = \sin \pi x + \tfrac12 \sin 3\pi x$, source
    $g = \sin \pi x$; the objective is the misfit $J = \tfrac12 \int_0^1 (u(x, T) - d)^2 dx$
    to the target $d = d_1 \sin \pi x$. ``theta = {"kappa", "a", "sigma"}``: diffusivity,
    initial amplitude, source strength.

    **Discretisation.** Second-order central differences on ``n`` cells and forward Euler
    with $\Delta t \le 0.4\,\Delta x^2/\kappa_{\max}$: error $O(\Delta x^2 + \Delta t) =
    O(\Delta x^2)$.

    **Continuous adjoint** (derived by hand): $-\lambda_t = \kappa \lambda_{xx}$,
    $\lambda(x, T) = u(x, T) - d$, $\lambda = 0$ at both ends; then
    $\partial_\kappa J = \int_0^T\!\!\int \lambda u_{xx}$, $\partial_\sigma J =
    \int_0^T\!\!\int \lambda g$, $\partial_a J = \int \lambda(x, 0) \phi_0$. It is stepped
    backwards by explicit Euler and integrated by the trapezoidal rule in time — a
    different discretisation from AD's, also $O(\Delta x^2)$.

    The solution stays in two sine modes, so ``exact_gradient`` is closed form.
    """

    T: float = eqx.field(default=0.05, static=True)
    d1: float = eqx.field(default=0.2, static=True)
    kappa_max: float = eqx.field(default=2.0, static=True)

    expected_orders = (2.0, 2.0)

    def __check_init__(self):
        if not (math.isfinite(self.T) and self.T > 0):
            raise ValueError(f"HeatProblem(T={self.T}): the final time must be positive.")
        if not (math.isfinite(self.kappa_max) and self.kappa_max > 0):
            raise ValueError(f"HeatProblem(kappa_max={self.kappa_max}): must be positive.")
        if not math.isfinite(self.d1):
            raise ValueError(f"HeatProblem(d1={self.d1}): the target amplitude must be finite.")

    def default_theta(self):
        return {"kappa": 1.0, "a": 1.0, "sigma": 1.0}

    def _grid(self, n, dtype):
        dx = 1.0 / n
        x = jnp.arange(1, n, dtype=dtype) * dx
        m = math.ceil(self.T * self.kappa_max / (0.4 * dx**2))
        return x, dx, m, self.T / m

    def _check_kappa(self, theta):
        kappa = theta["kappa"]
        if not isinstance(kappa, jax.core.Tracer) and not 0 < float(kappa) <= self.kappa_max:
            raise ValueError(
                f"HeatProblem: theta['kappa'] = {float(kappa)} must lie in (0, kappa_max="
                f"{self.kappa_max}] (the explicit time step is set from kappa_max)."
            )

    @staticmethod
    def _laplacian(u, dx):
        padded = jnp.pad(u, 1)
        return (padded[:-2] - 2 * u + padded[2:]) / dx**2

    def _forward(self, theta, n):
        theta = self.check(theta, n)
        self._check_kappa(theta)
        dtype = jnp.result_type(*theta.values())
        x, dx, m, dt = self._grid(n, dtype)
        phi0 = jnp.sin(jnp.pi * x) + 0.5 * jnp.sin(3 * jnp.pi * x)
        g = jnp.sin(jnp.pi * x)

        def step(u, _):
            u_next = u + dt * (theta["kappa"] * self._laplacian(u, dx) + theta["sigma"] * g)
            return u_next, u

        u_final, history = jax.lax.scan(step, theta["a"] * phi0, None, length=m)
        target = self.d1 * jnp.sin(jnp.pi * x)
        return theta, x, dx, m, dt, phi0, g, u_final, history, target

    def value(self, theta, n):
        *_, dx, m, dt, phi0, g, u_final, history, target = self._forward(theta, n)
        return 0.5 * dx * jnp.sum((u_final - target) ** 2)

    def final_state(self, theta, n) -> Array:
        """The temperatures $u(x_i, T)$ at the ``n - 1`` interior nodes $x_i = i/n$."""
        return self._forward(theta, n)[7]

    def continuous_gradient(self, theta, n):
        return _heat_adjoint(self, self.check(theta, n), n)

    def exact_gradient(self, theta):
        theta = self.check(theta, self.min_resolution)

        def objective(th):
            rate = th["kappa"] * jnp.pi**2
            b1 = th["a"] * jnp.exp(-rate * self.T) + th["sigma"] * -jnp.expm1(-rate * self.T) / rate
            b3 = 0.5 * th["a"] * jnp.exp(-9 * rate * self.T)
            return 0.25 * ((b1 - self.d1) ** 2 + b3**2)

        return jax.grad(objective)(theta)


@eqx.filter_jit
def _heat_adjoint(problem: HeatProblem, theta, n):
    theta, x, dx, m, dt, phi0, g, u_final, history, target = problem._forward(theta, n)
    states = jnp.concatenate([history, u_final[None]])  # u^0 .. u^m

    def step_back(lam, _):
        lam_prev = lam + dt * theta["kappa"] * problem._laplacian(lam, dx)
        return lam_prev, lam

    lam0, lams = jax.lax.scan(step_back, u_final - target, None, length=m, reverse=True)
    lams = jnp.concatenate([lam0[None], lams])  # λ^0 .. λ^m, the scan stacks in time order
    w = _trapezoid_weights(m, dt, states.dtype)
    lap_u = jax.vmap(lambda u: problem._laplacian(u, dx))(states)
    return {
        "kappa": jnp.sum(w * dx * jnp.sum(lams * lap_u, axis=1)),
        "a": dx * jnp.sum(lam0 * phi0),
        "sigma": jnp.sum(w * dx * jnp.sum(lams * g, axis=1)),
    }


def _minmod(a, b):
    return 0.5 * (jnp.sign(a) + jnp.sign(b)) * jnp.minimum(jnp.abs(a), jnp.abs(b))


def _maxmod(a, b):
    return 0.5 * (jnp.sign(a) + jnp.sign(b)) * jnp.maximum(jnp.abs(a), jnp.abs(b))


class AdvectionProblem(AbstractPDEProblem):
    r"""Periodic advection $u_t + c\,u_x = 0$ on $[0, 1)$, scored by $J = \int_0^1 w\,u(x, T)\,dx$.

    $u(x, 0) = a\,\phi_0(x)$ with $\phi_0 = \sin 2\pi x$ (``initial="sine"``) or the square
    wave $1_{[1/4, 3/4)}$ (``initial="square"``); $w = \cos 2\pi x + \tfrac12 \sin 4\pi x$.
    ``theta = {"c", "a"}``: velocity (in $(0, c_{\max}]$) and amplitude. Exactly,
    $J = a\int w(x)\,\phi_0(x - cT)\,dx$.

    **Schemes** (finite volumes, cell averages, Courant number $\le$ ``courant``):

    - ``"upwind"``: first-order upwind with forward Euler, $O(\Delta x)$.
    - ``"superbee"``: the flux-limited Lax–Wendroff scheme with Roe's superbee limiter
      (Sweby 1984). It keeps a square wave sharp, but it is nonlinear and only piecewise
      smooth in $c$: the computed $J_h(c)$ carries an $O(\Delta x)$ ripple that repeats
      every time the front moves by one cell, i.e. with period $O(\Delta x)$ in $c$. Its
      derivative — the AD gradient — is then off by $O(1)$ at every resolution.

    **Continuous adjoint** (derived by hand): $\lambda_t + c\lambda_x = 0$ backwards from
    $\lambda(x, T) = w$, with $\partial_c J = -\int_0^T\!\!\int \lambda\,u_x$ and
    $\partial_a J = \int \lambda(x, 0)\,\phi_0$; $\lambda$ is stepped backwards by the same
    scheme mirrored (it travels the other way), $u_x$ by central differences of the
    stored forward states, the time integral by the trapezoidal rule.
    """

    scheme: Literal["upwind", "superbee"] = eqx.field(default="upwind", static=True)
    initial: Literal["sine", "square"] = eqx.field(default="sine", static=True)
    T: float = eqx.field(default=0.5, static=True)
    c_max: float = eqx.field(default=2.0, static=True)
    courant: float = eqx.field(default=0.5, static=True)

    def __check_init__(self):
        if self.scheme not in ("upwind", "superbee"):
            raise ValueError(f"AdvectionProblem(scheme={self.scheme!r}): 'upwind' or 'superbee'.")
        if self.initial not in ("sine", "square"):
            raise ValueError(f"AdvectionProblem(initial={self.initial!r}): 'sine' or 'square'.")
        if not (math.isfinite(self.T) and self.T > 0 and self.c_max > 0):
            raise ValueError(
                f"AdvectionProblem(T={self.T}, c_max={self.c_max}): both must be positive."
            )
        if not 0 < self.courant <= 1:
            raise ValueError(f"AdvectionProblem(courant={self.courant}): must be in (0, 1].")

    @property
    def expected_orders(self):  # type: ignore[override]
        if self.scheme == "upwind" and self.initial == "sine":
            return (1.0, 1.0)
        return (None, None)  # no theorem to quote: measured, not predicted

    def default_theta(self):
        return {"c": 0.8, "a": 1.0}

    def _phi0_cell_average(self, x, dx):
        if self.initial == "sine":
            big_phi = lambda s: -jnp.cos(2 * jnp.pi * s) / (2 * jnp.pi)  # noqa: E731
            return (big_phi(x + dx / 2) - big_phi(x - dx / 2)) / dx
        overlap = jnp.minimum(x + dx / 2, 0.75) - jnp.maximum(x - dx / 2, 0.25)
        return jnp.clip(overlap, 0.0, None) / dx

    @staticmethod
    def _weight(x):
        return jnp.cos(2 * jnp.pi * x) + 0.5 * jnp.sin(4 * jnp.pi * x)

    def _step(self, u, nu):
        if self.scheme == "upwind":
            return u - nu * (u - jnp.roll(u, 1))
        forward, backward = jnp.roll(u, -1) - u, u - jnp.roll(u, 1)
        slope = _maxmod(_minmod(forward, 2 * backward), _minmod(2 * forward, backward))
        face = u + 0.5 * (1 - nu) * slope  # the value at the right face, i + 1/2
        return u - nu * (face - jnp.roll(face, 1))

    def _forward(self, theta, n):
        theta = self.check(theta, n)
        c = theta["c"]
        if not isinstance(c, jax.core.Tracer) and not 0 < float(c) <= self.c_max:
            raise ValueError(
                f"AdvectionProblem: theta['c'] = {float(c)} must lie in (0, c_max="
                f"{self.c_max}] (the scheme is upwinded for c > 0, its step set from c_max)."
            )
        dtype = jnp.result_type(*theta.values())
        dx = 1.0 / n
        x = (jnp.arange(n, dtype=dtype) + 0.5) * dx
        m = math.ceil(self.T * self.c_max / (self.courant * dx))
        dt = self.T / m
        nu = c * dt / dx
        phi0 = self._phi0_cell_average(x, dx)

        def step(u, _):
            return self._step(u, nu), u

        u_final, history = jax.lax.scan(step, theta["a"] * phi0, None, length=m)
        return theta, x, dx, m, dt, nu, phi0, u_final, history

    def value(self, theta, n):
        _, x, dx, *_, u_final, _ = self._forward(theta, n)
        return dx * jnp.sum(self._weight(x) * u_final**2)

    def continuous_gradient(self, theta, n):
        return _advection_adjoint(self, self.check(theta, n), n)

    def exact_gradient(self, theta):
        theta = self.check(theta, self.min_resolution)

        def objective(th):
            s = th["c"] * self.T
            if self.initial == "sine":  # ∫ w(x) sin² 2π(x - s) dx = -sin(4πs) / 8
                return -(th["a"] ** 2) * jnp.sin(4 * jnp.pi * s) / 8
            big_w = lambda y: (  # noqa: E731
                jnp.sin(2 * jnp.pi * y) / (2 * jnp.pi) - jnp.cos(4 * jnp.pi * y) / (8 * jnp.pi)
            )
            return th["a"] ** 2 * (big_w(0.75 + s) - big_w(0.25 + s))

        return jax.grad(objective)(theta)


@eqx.filter_jit
def _advection_adjoint(problem: AdvectionProblem, theta, n):
    theta, x, dx, m, dt, nu, phi0, u_final, history = problem._forward(theta, n)
    states = jnp.concatenate([history, u_final[None]])

    def step_back(lam, _):  # the forward scheme, mirrored: it travels towards -x backwards
        return problem._step(lam[::-1], nu)[::-1], lam

    # λ = 2 w̃ u, with w̃ transported backwards from w: smooth even when u jumps.
    w0, ws = jax.lax.scan(step_back, problem._weight(x), None, length=m, reverse=True)
    ws = jnp.concatenate([w0[None], ws])
    squares = states**2
    d_squares = (jnp.roll(squares, -1, axis=1) - jnp.roll(squares, 1, axis=1)) / (2 * dx)
    w = _trapezoid_weights(m, dt, states.dtype)
    return {
        "c": -jnp.sum(w * dx * jnp.sum(ws * d_squares, axis=1)),  # λ u_x = w̃ (u²)_x
        "a": dx * jnp.sum(2 * w0 * states[0] * phi0),
    }


class DiffusivityFit(AbstractResult):
    r"""What `fit_diffusivity` returns.

    Attributes:
        kappa: the least-squares diffusivity $\hat\kappa$.
        kappa_stderr: its standard error from the Gauss–Newton curvature,
            $s / \|\partial u / \partial\kappa\|$, with $s$ the residual standard deviation.
        losses: the misfit $\tfrac12 \sum_i (u_i(\kappa) - u^{obs}_i)^2$ at every iteration.
        grad_norm: $|\partial L / \partial \log\kappa|$ at the end (small when converged).
    """

    kappa: float
    kappa_stderr: float
    losses: tuple[float, ...]
    grad_norm: float

    def summary(self) -> str:
        return (
            f"DiffusivityFit(kappa = {self.kappa:.6g} ± {self.kappa_stderr:.2g}, "
            f"{len(self.losses)} iterations, final loss {self.losses[-1]:.3g}, "
            f"|dL/dlog kappa| = {self.grad_norm:.2g})"
        )


def fit_diffusivity(
    observed,
    problem: HeatProblem | None = None,
    theta: dict | None = None,
    *,
    kappa0: float = 0.5,
    steps: int = 30,
    optimizer: optax.GradientTransformation | None = None,
) -> DiffusivityFit:
    r"""Inverse heat conduction: recover $\kappa$ from noisy final temperatures, with optax.

    Minimises $L(\kappa) = \tfrac12 \sum_i (u_i(T; \kappa) - u^{obs}_i)^2$ over
    $\log\kappa$ (so $\kappa$ stays positive), $u$ the `HeatProblem`'s discrete solution
    on the grid that matches ``observed`` (``n - 1`` interior nodes), with the gradient by
    AD through the time stepping and L-BFGS (``optax.lbfgs``) by default. The other
    parameters (``a``, ``sigma``) are held at ``theta``'s values.

    Arguments:
        observed: the measured $u(x_i, T)$ at the interior nodes $x_i = i/n$, shape
            ``(n - 1,)``.
        problem: the forward model; ``HeatProblem()`` by default.
        theta: the known parameters (``kappa`` in it is ignored); the defaults otherwise.
        kappa0: the initial guess, in ``(0, problem.kappa_max]``.
        steps: optimiser iterations.
        optimizer: an optax optimiser; ``None`` uses ``optax.lbfgs()``.

    Examples:
        >>> import jax, simgrad as sg
        >>> problem = sg.adjoint.HeatProblem()
        >>> true = dict(problem.default_theta(), kappa=0.8)
        >>> u = problem.final_state(true, 32)
        >>> noisy = u + 0.01 * jax.random.normal(jax.random.key(0), u.shape)
        >>> fit = sg.adjoint.fit_diffusivity(noisy)
        >>> abs(fit.kappa - 0.8) < 4 * fit.kappa_stderr
        True
    """
    problem = HeatProblem() if problem is None else problem
    if not isinstance(problem, HeatProblem):
        raise TypeError(f"problem must be a HeatProblem, got {type(problem).__name__}.")
    observed = jnp.asarray(observed)
    if observed.ndim != 1 or observed.shape[0] < problem.min_resolution - 1:
        raise ValueError(
            f"observed must be the temperatures at the n - 1 interior nodes, a 1-D array of "
            f"length >= {problem.min_resolution - 1}; got shape {observed.shape}."
        )
    if not jnp.issubdtype(observed.dtype, jnp.floating) or not bool(
        jnp.all(jnp.isfinite(observed))
    ):
        raise ValueError("observed must hold finite floating-point temperatures.")
    if not 0 < kappa0 <= problem.kappa_max:
        raise ValueError(f"kappa0={kappa0}: must lie in (0, kappa_max={problem.kappa_max}].")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}: a positive int.")
    n = observed.shape[0] + 1
    theta = problem.default_theta() if theta is None else theta
    theta = problem.check(dict(theta), n)
    optimizer = _LBFGS if optimizer is None else optimizer
    start = jnp.log(jnp.asarray(kappa0, dtype=observed.dtype))  # an array: no recompiling
    with jax.numpy_dtype_promotion("standard"):  # optax's L-BFGS mixes int32 and int64
        log_kappa, losses, grad = _fit(problem, theta, observed, start, steps, optimizer)
    kappa = jnp.exp(log_kappa)
    residual = problem.final_state(dict(theta, kappa=kappa), n) - observed
    du_dkappa = jax.jacfwd(lambda k: problem.final_state(dict(theta, kappa=k), n))(kappa)
    dof = max(observed.shape[0] - 1, 1)
    s = jnp.sqrt(jnp.sum(residual**2) / dof)
    return DiffusivityFit(
        kappa=float(kappa),
        kappa_stderr=float(s / jnp.linalg.norm(du_dkappa)),
        losses=tuple(float(x) for x in losses),
        grad_norm=float(jnp.abs(grad)),
    )


_LBFGS = optax.lbfgs()  # one object, so that every default fit shares one compiled loop


@eqx.filter_jit
def _fit(problem, theta, observed, start, steps, optimizer) -> tuple[Array, Array, Array]:
    """``(log κ, the losses of the steps, the gradient at log κ)``."""
    n = observed.shape[0] + 1

    def loss(log_kappa):
        u = problem.final_state(dict(theta, kappa=jnp.exp(log_kappa)), n)
        return 0.5 * jnp.sum((u - observed) ** 2)

    optimizer = optax.with_extra_args_support(optimizer)
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = optimizer.update(
            grad, state, params, value=value, grad=grad, value_fn=loss
        )
        return (optax.apply_updates(params, updates), state), value

    (params, _), losses = jax.lax.scan(step, (start, optimizer.init(start)), None, length=steps)
    return jnp.asarray(params), jnp.asarray(losses), jax.grad(loss)(params)
