"""Foundation benchmarks, side by side in one run; prints one JSON document.

(a) cheap-gradient principle: Pathwise value+gradient time over primal time
    (European call, 2^20 paths; Asian call, 252 steps). Goal ≤ 1.5, textbook bound 5.
(b) overhead: `sg.gradient` over the same estimator hand-written in JAX. Goal ≤ 1.1.
(c) batched central finite differences against numdifftools' Gradient (and a plain numpy
    central-difference loop) on a deterministic function of 10 and 100 parameters, float64.

    python benchmarks/bench_foundation.py [--quick]
"""

import json
import math
import sys

import jax
import jax.numpy as jnp
import numdifftools as nd
import numpy as np

import simgrad as sg

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment, interleaved_seconds, median_seconds  # noqa: E402


def primal_mean(sim, n):
    """The simulation alone: the Monte Carlo mean over ``n`` keys, one compiled call."""

    @jax.jit
    def run(theta, key):
        keys = jax.random.split(key, n)
        return jnp.mean(jax.vmap(sim, in_axes=(None, 0))(theta, keys))

    return run


def hand_written_pathwise(sim, n):
    """What a user would write by hand: vmap(value_and_grad), then mean and std."""

    @jax.jit
    def run(theta, key):
        keys = jax.random.split(key, n)
        values, grads = jax.vmap(jax.value_and_grad(sim), in_axes=(None, 0))(theta, keys)
        stats = lambda x: (x.mean(0), x.std(0, ddof=1) / math.sqrt(n))  # noqa: E731
        return stats(values), jax.tree.map(stats, grads)

    return run


def simgrad_pathwise(sim, n):
    return lambda theta, key: sg.gradient(sim, theta, key, method=sg.Pathwise(), n_samples=n)


def cheap_gradient_and_overhead(quick: bool) -> list[dict]:
    """float32 Monte Carlo, as most users run it."""
    rows = []
    cases = [
        ("european", sg.models.EuropeanCall(), 2**16 if quick else 2**20),
        ("asian", sg.models.AsianCall(), 2**10 if quick else 2**14),
    ]
    key = jax.random.key(0)
    for name, model, n in cases:
        theta = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), model.default_theta())
        seconds = interleaved_seconds(
            {
                "primal": primal_mean(model, n),
                "hand": hand_written_pathwise(model, n),
                "simgrad": simgrad_pathwise(model, n),
            },
            theta,
            key,
        )
        t_primal, t_hand, t_sg = seconds["primal"], seconds["hand"], seconds["simgrad"]
        rows.append(
            {
                "model": name,
                "n_paths": n,
                "primal_ms": 1e3 * t_primal,
                "hand_written_pathwise_ms": 1e3 * t_hand,
                "simgrad_pathwise_ms": 1e3 * t_sg,
                "gradient_over_primal": t_sg / t_primal,
                "simgrad_over_hand_written": t_sg / t_hand,
            }
        )
    return rows


def rosenbrock_like_np(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2) + np.sum(np.sin(x))


def rosenbrock_like_jax(x, key):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2) + jnp.sum(jnp.sin(x))


def numpy_central_loop(f, x):
    h = np.finfo(float).eps ** (1 / 3) * np.maximum(1, np.abs(x))
    grad = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h[i]
        grad[i] = (f(x + e) - f(x - e)) / (2 * h[i])
    return grad


def finite_differences_vs_numdifftools() -> list[dict]:
    rows = []
    key = jax.random.key(0)
    method = sg.FiniteDifference(scheme="central")
    for n in (10, 100):
        x = np.linspace(-1.2, 1.5, n)
        exact = np.asarray(jax.grad(rosenbrock_like_jax)(jnp.asarray(x), key))
        calls = []
        nd_gradient = nd.Gradient(lambda x, calls=calls: calls.append(1) or rosenbrock_like_np(x))

        def run_sg(x, method=method):
            return sg.gradient(rosenbrock_like_jax, x, key, method=method, n_samples=2).grad

        results = {
            "simgrad_batched_central": (run_sg, jnp.asarray(x)),
            "numdifftools_Gradient": (nd_gradient, x),
            "numpy_central_loop": (lambda x: numpy_central_loop(rosenbrock_like_np, x), x),
        }
        row = {"n_params": n}
        for label, (fn, arg) in results.items():
            seconds = median_seconds(fn, arg, repeats=5)
            error = float(np.max(np.abs(np.asarray(fn(arg)) - exact)) / np.max(np.abs(exact)))
            row[f"{label}_ms"] = 1e3 * seconds
            row[f"{label}_rel_error"] = error
        calls.clear()
        nd_gradient(x)
        row["numdifftools_evals"] = len(calls)
        row["simgrad_evals"] = 2 * 2 * n  # two (identical, deterministic) samples of 2n runs
        row["numdifftools_over_simgrad_time"] = (
            row["numdifftools_Gradient_ms"] / row["simgrad_batched_central_ms"]
        )
        rows.append(row)
    return rows


def main() -> None:
    # float64 for the finite-difference comparison with numpy; the Monte Carlo cases are float32
    jax.config.update("jax_enable_x64", True)
    quick = "--quick" in sys.argv
    report = {
        "benchmark": "foundation",
        "environment": environment(),
        "pathwise_cost": cheap_gradient_and_overhead(quick),
        "finite_differences": finite_differences_vs_numdifftools(),
        "goals": {"gradient_over_primal": 1.5, "simgrad_over_hand_written": 1.1},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
