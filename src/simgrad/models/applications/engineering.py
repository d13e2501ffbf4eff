"""Engineering design: a tuned mass damper under random forcing, simulated by diffrax."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ...estimators import Pathwise
from .base import AbstractApplication


class TunedMassDamper(AbstractApplication):
    r"""Tune a damper to minimise a structure's mean-square vibration under white noise.

    A primary structure (mass $m_1 = 1$, stiffness $k_1 = 1$, light damping $c_1$) carries
    a tuned mass damper of mass $\mu m_1$. White-noise forcing $\sigma\,dW$ drives the
    primary, from rest. The design variables are the damper's frequency ratio $f$ and
    damping ratio $\zeta$ ($k_2 = \mu m_1 (f\omega_1)^2$, $c_2 = 2\zeta\mu m_1 f\omega_1$).
    The objective is the primary's mean-square displacement over $[0, T]$,

    $$J(f, \zeta) = \mathbb{E}\Big[\tfrac1T\int_0^T x_1(t)^2\,dt\Big],$$

    estimated by simulating the linear SDE $dy = A(\theta) y\,dt + b\,dW$ with diffrax
    (Heun, fixed step) and differentiating each sample path (forward mode: two
    parameters). The *independent* answer: the covariance $P(t) = \mathbb{E}[y y^\top]$
    obeys the Lyapunov ODE $\dot P = AP + PA^\top + bb^\top$, which gives $J$ without Monte
    Carlo; its minimiser, found by gradient descent on that deterministic $J$ and checked
    by a grid search, is `optimum()`. (As $T\to\infty$ and $c_1\to0$ it tends to
    Warburton's closed form $f^* = \sqrt{1+\mu/2}/(1+\mu)$,
    $\zeta^* = \sqrt{\mu(1+3\mu/4)/(4(1+\mu)(1+\mu/2))}$: 0.964 and 0.110 for $\mu = 0.05$.)
    """

    mu: float = 0.05
    c1: float = 0.01
    sigma: float = 1.0
    T: float = 60.0
    dt: float = 0.05

    name = "tuned-mass-damper"
    summary = (
        "engineering: tune a damper's frequency and damping ratios to minimise a "
        "structure's mean-square response to white noise (SDE via diffrax, pathwise)"
    )
    maximize = False
    steps = 200
    n_samples = 128
    tolerance = 0.01

    def _system(self, theta):
        f, zeta = theta["f"], theta["zeta"]
        m2 = self.mu
        k2, c2 = m2 * f**2, 2 * zeta * m2 * f
        zero, one = jnp.zeros_like(f), jnp.ones_like(f)
        A = jnp.stack(
            [
                jnp.stack([zero, one, zero, zero]),
                jnp.stack([-(1 + k2), -(self.c1 + c2), k2, c2]),
                jnp.stack([zero, zero, zero, one]),
                jnp.stack([k2 / m2, c2 / m2, -k2 / m2, -c2 / m2]),
            ]
        )
        b = jnp.stack([zero, self.sigma * one, zero, zero])
        return A, b

    def _times(self):
        return jnp.linspace(0.0, self.T, int(round(self.T / 0.25)) + 1)

    def simulator(self, theta, key):
        A, b = self._system(theta)
        brownian = diffrax.UnsafeBrownianPath(shape=(1,), key=key)
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(lambda t, y, args: A @ y),
            diffrax.ControlTerm(lambda t, y, args: b[:, None], brownian),
        )
        n_steps = int(round(self.T / self.dt))
        solution = diffrax.diffeqsolve(
            terms,
            diffrax.Heun(),
            0.0,
            self.T,
            self.dt,
            jnp.zeros(4, b.dtype),
            saveat=diffrax.SaveAt(ts=self._times()),
            max_steps=n_steps + 1,
            adjoint=diffrax.ForwardMode(),
        )
        return jnp.mean(solution.ys[:, 0] ** 2)  # pyright: ignore[reportOptionalSubscript]  # saved: SaveAt(ts=)

    def theta0(self):
        return {"f": 0.8, "zeta": 0.03}

    def method(self):
        return Pathwise(mode="forward")  # UnsafeBrownianPath: forward-mode AD only

    def optimizer(self):
        return optax.adam(0.02)

    def optimum(self):
        # argmin of exact_objective: Adam on the deterministic Lyapunov objective from a
        # grid search's best point, rounded to 6 digits: |∇J| < 1e-4 there
        # (tests/models/test_applications.py).
        return {"f": 0.970766, "zeta": 0.095407}

    def exact_objective(self, theta):
        return _lyapunov_objective(self, jax.tree.map(jnp.asarray, theta))


@eqx.filter_jit
def _lyapunov_objective(tmd: TunedMassDamper, theta):
    """The exact J: the Lyapunov ODE for the covariance, averaged over the save times."""
    A, b = tmd._system(theta)
    lyapunov = lambda t, P, args: A @ P + P @ A.T + jnp.outer(b, b)  # noqa: E731
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lyapunov),
        diffrax.Tsit5(),
        0.0,
        tmd.T,
        tmd.dt,
        jnp.zeros((4, 4), b.dtype),
        saveat=diffrax.SaveAt(ts=tmd._times()),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-11),
        max_steps=100_000,
    )
    return jnp.mean(solution.ys[:, 0, 0])  # pyright: ignore[reportOptionalSubscript]  # saved: SaveAt(ts=)
