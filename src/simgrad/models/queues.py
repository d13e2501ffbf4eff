"""An M/M/1 queue simulated by the Lindley recursion, started in its stationary regime."""

import jax
import jax.numpy as jnp

from .. import random as sgr
from .base import AbstractModel


def mm1_wait(lam: float, mu: float) -> tuple[float, dict[str, float]]:
    r"""Mean stationary wait in queue of an M/M/1 queue and its gradient in ``(lam, mu)``.

    $W_q = \lambda / (\mu(\mu - \lambda))$, $\partial_\lambda W_q = 1/(\mu - \lambda)^2$,
    $\partial_\mu W_q = -\lambda(2\mu - \lambda)/(\mu(\mu - \lambda))^2$ (for $\lambda < \mu$).

    >>> mm1_wait(1.0, 2.0)
    (0.5, {'lam': 1.0, 'mu': -0.75})
    """
    return lam / (mu * (mu - lam)), {
        "lam": 1 / (mu - lam) ** 2,
        "mu": -lam * (2 * mu - lam) / (mu * (mu - lam)) ** 2,
    }


class MM1Queue(AbstractModel):
    r"""Mean waiting time of ``n_customers`` customers in an M/M/1 queue; θ is the service rate.

    Lindley: $W_{k+1} = \max(0,\ W_k + S_k - A_{k+1})$ with services $S_k \sim
    \mathrm{Exp}(\mu)$ and inter-arrivals $A_k \sim \mathrm{Exp}(\lambda)$, drawn inside a
    `lax.scan`. $W_0$ is drawn from the stationary law ($P(W > w) = \rho e^{-(\mu -
    \lambda) w}$, $\rho = \lambda/\mu$) by inversion of one uniform, so every $W_k$ is
    stationary and $\mathbb E[\frac1n \sum_{k=1}^n W_k] = \lambda / (\mu(\mu - \lambda))$,
    $\partial_\mu = -\lambda(2\mu - \lambda)/(\mu(\mu-\lambda))^2$ (`mm1_wait`). The same
    queue as a SimPy simulation, a black box: `MM1SimPy`.

    The path is continuous in μ, so the pathwise derivative is infinitesimal perturbation
    analysis (IPA) and unbiased; the score function is unbiased too, with a variance that
    grows with the number of customers.
    """

    arrival_rate: float = 1.0
    n_customers: int = 20

    name = "mm1"
    summary = "M/M/1 queue by the Lindley recursion (lax.scan), stationary start; IPA in mu"
    stochastic = True
    n_samples = 2**12

    def __call__(self, theta, key):
        mu = jnp.asarray(theta)
        lam, dtype = self.arrival_rate, mu.dtype
        k0, k1 = jax.random.split(key)
        u = sgr.uniform(k0, dtype=dtype)
        w0 = jnp.maximum(jnp.log(lam / mu / u), 0.0) / (mu - lam)

        def customer(w, k):
            ks, ka = jax.random.split(k)
            service = sgr.exponential(ks, mu, dtype=dtype)
            arrival = sgr.exponential(ka, lam, dtype=dtype)
            w = jnp.maximum(w + service - arrival, 0.0)
            return w, w

        _, waits = jax.lax.scan(customer, w0, jax.random.split(k1, self.n_customers))
        return jnp.mean(waits)

    def default_theta(self):
        return 2.0

    def exact_value(self, theta):
        return mm1_wait(self.arrival_rate, float(theta))[0]

    def exact_grad(self, theta):
        return mm1_wait(self.arrival_rate, float(theta))[1]["mu"]
