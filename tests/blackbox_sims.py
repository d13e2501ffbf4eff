"""NumPy simulators for the black-box tests: with closed-form answers, and misbehaving
(hanging, ignoring their seed, failing past a θ, pressing Ctrl-C).

NumPy only, and importable, so that worker processes (a process pool, a Dask cluster)
can unpickle them.
"""

import os
import signal
import time

import numpy as np

A = np.array([1.0, 2.0])  # the weights a of `quadratic`


def quadratic(theta, seed):
    """``y Σ a_i (x_i + Z_i)²``, Z ~ N(0, 1), θ = {"x": x, "w": {"y": y}}: E = y Σ a (x² + 1)."""
    x, y = theta["x"], theta["w"]["y"]
    z = np.random.default_rng(seed).normal(size=x.shape)
    return float(y * np.sum(A * (x + z) ** 2))


def quadratic_exact(theta, sigma=0.0):
    """E[quadratic] and its gradient; with ``sigma``, of the Gaussian-smoothed objective.

    ``f`` is y times a quadratic in x, so ``f_σ = f + σ² y Σa`` exactly (the Laplacian
    ``Δf = 2 y Σa``), whose gradient adds ``σ² Σa`` in y only.
    """
    x, y = theta["x"], theta["w"]["y"]
    value = y * np.sum(A * (x**2 + 1)) + sigma**2 * y * np.sum(A)
    grad = {"x": 2 * A * x * y, "w": {"y": np.sum(A * (x**2 + 1)) + sigma**2 * np.sum(A)}}
    return value, grad


def square_loss(theta, seed):
    """``(θ - 2 + Z)²``: E = (θ - 2)² + 1, minimum at θ = 2."""
    return float((theta - 2.0 + np.random.default_rng(seed).normal()) ** 2)


class Probe:
    """`quadratic`, instrumented. One object serves many tests, so that the estimators
    compile once for it: it records the seeds it sees (in this process), and can return NaN
    or another ``output`` for one seed, raise for seeds divisible by ``raise_every``, or
    kill its own process the first time it sees a seed divisible by 3 while ``kill_marker``
    names a file that does not exist yet (created atomically: one killer only).
    """

    def __init__(self):
        self.seen, self.kill_marker, self.raise_every = [], None, None
        self.odd_seed, self.output = None, None

    def __getstate__(self):  # what a worker gets: the settings, not the seeds seen here
        return self.__dict__ | {"seen": []}

    def __call__(self, theta, seed):
        self.seen.append(seed)
        if self.kill_marker is not None and seed % 3 == 0:
            try:
                os.close(os.open(self.kill_marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        if self.raise_every is not None and seed % self.raise_every == 0:
            raise ValueError(f"boom at seed {seed}")
        if seed == self.odd_seed:
            return self.output
        return quadratic(theta, seed)


def sleeps(theta, seed):
    """A run that hangs (30 s): for timeouts."""
    time.sleep(30)
    return 0.0


def ignores_its_seed(theta, seed):
    """``θ² + Z`` with Z from NumPy's global generator: not reproducible from ``seed``."""
    return float(theta**2 + np.random.normal())


def deterministic(theta, seed):
    """``θ²``, ignoring its seed, as a deterministic simulator may."""
    return float(theta**2)


class PressesCtrlC:
    """A run that a user interrupts: hangs, after sending SIGINT (Ctrl-C) to process
    ``pid`` (the one running `sg.gradient`) once — the run that creates ``marker`` does."""

    def __init__(self, pid: int, marker: str):
        self.pid, self.marker = pid, marker

    def __call__(self, theta, seed):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            os.kill(self.pid, signal.SIGINT)
        time.sleep(30)
        return 0.0


class FailsAbove:
    """`square_loss`, which raises ValueError (or returns NaN: ``nan=True``) once θ
    passes ``limit``."""

    def __init__(self, limit: float, nan: bool = False):
        self.limit, self.nan = limit, nan

    def __call__(self, theta, seed):
        if theta > self.limit:
            if self.nan:
                return float("nan")
            raise ValueError(f"theta={theta} is above {self.limit}")
        return square_loss(theta, seed)
