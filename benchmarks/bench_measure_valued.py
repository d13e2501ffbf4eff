"""Measure-valued derivatives on the Gaussian cases of Mohamed et al. (2020, section 3 and
figure 2): per-sample variances measured against exact ones computed by quadrature, beside
the score function and pathwise; and `sg.Enumerate` against triples and the score function
on small discrete programs.

Prints one JSON document:

* ``gaussian``: per f(x) and parameter (μ or σ of N(μ, σ²)), per estimator, the per-sample
  variance measured (``grad_std²`` over ``N`` samples), the exact one (quadrature, below)
  and their ratio (the goal: within 10 %), and variance × time (seconds of the timed call).
  Exact variances: pathwise ``Var f'(x)`` and ``Var f'(x) ε``; score function (no
  baseline) ``Var f(x) s(x)`` with ``s`` the score; measure-valued, with Mohamed et al.'s
  coupling, ``Var c(f(μ + σW) - f(μ - σW))`` (W Weibull(√2, 2)) and ``Var (f(μ + σM) -
  f(μ + σUM))/σ`` (M double-sided Maxwell, U uniform).
* ``discrete``: per program, variance × time of `sg.Enumerate`, `sg.MeasureValued`,
  `sg.StochasticTriples` and the score function (loo baseline).

    python benchmarks/bench_measure_valued.py [--quick]
"""

import functools
import json
import math
import os
import sys

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

import simgrad as sg  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment, interleaved_seconds  # noqa: E402

MU, SIGMA = 0.5, 1.0
FUNCTIONS = {  # f, f'
    "(x - 1)^2": (lambda x: (x - 1) ** 2, lambda x: 2 * (x - 1)),
    "exp(-x^2)": (lambda x: np.exp(-(x**2)), lambda x: -2 * x * np.exp(-(x**2))),
    "cos(2x)": (lambda x: np.cos(2 * x), lambda x: -2 * np.sin(2 * x)),
}
JAX_F = {
    "(x - 1)^2": lambda x: (x - 1) ** 2,
    "exp(-x^2)": lambda x: jnp.exp(-(x**2)),
    "cos(2x)": lambda x: jnp.cos(2 * x),
}


def _moments(values, weights):
    """Variance of ``values`` under the quadrature ``weights`` (summing to 1)."""
    mean = np.sum(values * weights)
    return float(np.sum((values - mean) ** 2 * weights))


def exact_variances(f, df) -> dict:
    """Per estimator, the per-sample variances in (μ, σ), by quadrature on fine grids."""
    eps = np.linspace(-12, 12, 200_001)
    w_eps = np.exp(-0.5 * eps**2)
    w_eps /= w_eps.sum()
    x = MU + SIGMA * eps
    out = {
        "pathwise": (_moments(df(x), w_eps), _moments(df(x) * eps, w_eps)),
        "score": (
            _moments(f(x) * eps / SIGMA, w_eps),
            _moments(f(x) * (eps**2 - 1) / SIGMA, w_eps),
        ),
    }
    w = np.linspace(0, 12, 200_001)  # Weibull(√2, 2): density w e^{-w²/2}
    w_w = w * np.exp(-0.5 * w**2)
    w_w /= w_w.sum()
    c = 1 / (SIGMA * math.sqrt(2 * math.pi))
    loc = c * (f(MU + SIGMA * w) - f(MU - SIGMA * w))
    m = np.linspace(-12, 12, 4001)[:, None]  # double-sided Maxwell: m² φ(m)
    u, w_u = np.polynomial.legendre.leggauss(64)
    u, w_u = (u + 1) / 2, w_u / 2
    w_mu = (m**2 * np.exp(-0.5 * m**2)) * w_u[None, :]
    w_mu /= w_mu.sum()
    scale = (f(MU + SIGMA * m) - f(MU + SIGMA * u[None, :] * m)) / SIGMA
    out["measure-valued"] = (_moments(loc, w_w), _moments(scale, w_mu))
    return out


METHODS = {
    "pathwise": sg.Pathwise(mode="forward"),
    "score": sg.ScoreFunction(baseline=None),
    "measure-valued": sg.MeasureValued(),
}


def gaussian_rows(n: int, repeats: int) -> list[dict]:
    rows = []
    key = jax.random.key(7)
    theta = jnp.asarray([MU, SIGMA])
    for name, (f, df) in FUNCTIONS.items():
        g = JAX_F[name]

        def sim(t, key, g=g):
            return g(sg.random.normal(key, t[0], t[1]))

        run = functools.partial(sg.gradient, sim, theta, key, n_samples=n)
        calls = {label: functools.partial(run, method=m) for label, m in METHODS.items()}
        seconds = interleaved_seconds(calls, repeats=repeats)
        exact = exact_variances(f, df)
        for label in calls:
            est = calls[label]()
            measured = np.asarray(est.grad_std) ** 2
            for i, param in enumerate(("mu", "sigma")):
                rows.append({
                    "f": name, "parameter": param, "estimator": label,
                    "variance": float(measured[i]), "exact_variance": exact[label][i],
                    "ratio": float(measured[i] / exact[label][i]),
                    "variance_x_time": float(measured[i] / n * seconds[label]),
                    "ms": 1e3 * seconds[label],
                })  # fmt: skip
    return rows


def _bernoulli_switch(theta, key):
    """Two coins and a three-way choice: all the randomness enumerable (2·2·3 outcomes)."""
    k1, k2 = jax.random.split(key)
    b = sg.random.bernoulli(k1, theta[0], shape=(2,))
    c = sg.random.categorical(k2, theta[1:]).astype(jnp.int32)
    v = lax.switch(c, [lambda: 1.0, lambda: -2.0, lambda: 4.0])
    return jnp.where(b[0] != b[1], v, b[0] * v**2)


def _coin_then_noise(theta, key):
    """A coin picks X² or 3X, X ~ N(θ, 1): enumerate the coin, pathwise for X."""
    k1, k2 = jax.random.split(key)
    x = sg.random.normal(k2, theta[0], 1.0)
    return lax.cond(sg.random.bernoulli(k1, theta[0]) > 0, lambda: x**2, lambda: 3.0 * x)


def discrete_rows(n: int, repeats: int) -> list[dict]:
    programs = {
        "bernoulli_switch": (_bernoulli_switch, jnp.asarray([0.3, 0.2, -0.1, 0.4])),
        "coin_then_noise": (_coin_then_noise, jnp.asarray([0.4])),
    }
    methods = {
        "enumerate": sg.Enumerate(),
        "measure-valued": sg.MeasureValued(),
        "stochastic-triples": sg.StochasticTriples(),
        "score-loo": sg.ScoreFunction(baseline="loo"),
    }
    rows = []
    for name, (sim, theta) in programs.items():
        run = functools.partial(sg.gradient, sim, theta, jax.random.key(3), n_samples=n)
        calls = {label: functools.partial(run, method=m) for label, m in methods.items()}
        seconds = interleaved_seconds(calls, repeats=repeats)
        for label in calls:
            est = calls[label]()
            variance = float(np.sum(np.asarray(est.grad_stderr) ** 2))
            rows.append({"program": name, "estimator": label, "grad": est.grad.tolist(),
                         "sum_stderr2": variance, "ms": 1e3 * seconds[label],
                         "variance_x_time": variance * seconds[label]})  # fmt: skip
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    jax.config.update("jax_enable_x64", True)
    report = {
        "environment": environment(),
        "note": "interleaved medians on a possibly shared machine; ratios are what to read",
        "gaussian": gaussian_rows(20_000 if quick else 200_000, 3 if quick else 7),
        "discrete": discrete_rows(4_000 if quick else 40_000, 3 if quick else 7),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
