"""The M/M/1 queue as a SimPy discrete-event simulation: a black box with exact answers."""

import equinox as eqx
import numpy as np

from .queues import mm1_wait


class MM1SimPy(eqx.Module):
    r"""Mean wait in queue of ``n_customers`` customers of an M/M/1 queue, simulated by SimPy.

    ``model(theta, seed) -> float`` with ``theta = {"lam": arrival rate, "mu": service
    rate}``: a simulator not written in JAX, for `sg.BlackBox`. It is the queue of
    `sg.models.MM1Queue` (a JAX Lindley recursion), built as a modeller would build it: a
    one-server ``simpy.Resource``, an arrival process, customers that queue, are served
    and leave; the waits are read off the simulation clock.

    **Stationary start, so the exact answer is what is simulated.** A queue started empty
    under-reports waits until it warms up. Here the first customer finds a backlog drawn
    from the stationary law of the wait ($P(W > w) = \rho e^{-(\mu - \lambda) w}$, $\rho =
    \lambda/\mu$), so every customer's wait is stationary and the mean of any number of
    them has expectation $W_q = \lambda/(\mu(\mu-\lambda))$ (`mm1_wait`).

    **Common random numbers.** The seed spawns three streams (backlog, inter-arrival
    times, service times), and customer ``k``'s service is the ``k``-th draw of its
    stream, whatever the order in which events happen; durations are unit exponentials
    divided by the rate. So two runs with the same seed and nearby θ see the same
    randomness, each wait is continuous in θ, and finite differences and SPSA with
    common random numbers have bounded variance.

    Needs SimPy (``pip install simgrad[cluster]``).

    Examples:
        >>> import jax, simgrad as sg
        >>> queue = sg.models.MM1SimPy(n_customers=20)
        >>> est = sg.gradient(sg.BlackBox(queue, progress=False), {"lam": 1.0, "mu": 2.0},
        ...                   jax.random.key(0), method=sg.FiniteDifference(), n_samples=500)
        >>> value, grad = sg.models.mm1_wait(1.0, 2.0)
        >>> abs(float(est.grad["mu"]) - grad["mu"]) < 4 * float(est.grad_stderr["mu"])
        True
    """

    n_customers: int = eqx.field(default=20, static=True)

    def __call__(self, theta, seed: int) -> float:
        import simpy

        lam, mu = float(theta["lam"]), float(theta["mu"])
        if not 0 < lam < mu:
            raise ValueError(f"MM1SimPy: needs 0 < lam < mu (a stable queue), got {lam}, {mu}.")
        backlog, arrivals, services = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
        )
        env = simpy.Environment()
        server = simpy.Resource(env, capacity=1)
        waits = []

        def work(duration):  # the stationary backlog found by customer 0
            with server.request() as turn:
                yield turn
                yield env.timeout(duration)

        def customer(k, service):
            arrived = env.now
            with server.request() as turn:
                yield turn
                if k > 0:  # customer 0's wait is the backlog itself
                    waits.append(env.now - arrived)
                yield env.timeout(service)

        def source():
            for k in range(self.n_customers + 1):
                if k > 0:
                    yield env.timeout(arrivals.exponential() / lam)
                env.process(customer(k, services.exponential() / mu))

        # P(W0 > w) = rho exp(-(mu - lam) w): inversion of one uniform.
        w0 = max(np.log(lam / mu / (1.0 - backlog.uniform())), 0.0) / (mu - lam)
        env.process(work(w0))
        env.process(source())
        env.run()
        return float(np.mean(waits))

    def default_theta(self) -> dict[str, float]:
        return {"lam": 1.0, "mu": 2.0}

    def exact_value(self, theta) -> float:
        return mm1_wait(float(theta["lam"]), float(theta["mu"]))[0]

    def exact_grad(self, theta) -> dict[str, float]:
        return mm1_wait(float(theta["lam"]), float(theta["mu"]))[1]
