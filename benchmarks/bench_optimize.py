"""Time per `sg.optimize` step against one `sg.gradient` call of the same size.

The optimisation loop (key split, optimiser update, history, progress bar) should add
under 10% to the gradient itself. Prints one JSON document.

    python benchmarks/bench_optimize.py [--quick]
"""

import json
import statistics
import sys
import time

import jax
import optax

import simgrad as sg

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment  # noqa: E402


def per_step_seconds(sim, theta, key, method, n_samples, steps, progress, repeats):
    optimizer = optax.adam(1e-3)
    run = lambda: sg.optimize(  # noqa: E731
        sim,
        theta,
        key,
        method=method,
        optimizer=optimizer,
        steps=steps,
        n_samples=n_samples,
        progress=progress,
    )
    jax.block_until_ready(run().theta)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run().theta)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def gradient_seconds(sim, theta, key, method, n_samples, repeats):
    call = lambda: sg.gradient(sim, theta, key, method=method, n_samples=n_samples)  # noqa: E731
    jax.block_until_ready(call())
    times = []
    for _ in range(repeats * 20):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    quick = "--quick" in sys.argv
    key = jax.random.key(0)
    rows = []
    model = sg.models.EuropeanCall()
    cases = [
        ("european, 2^12 paths", model, 2**12),
        ("european, 2^16 paths", model, 2**16),
        ("asian, 2^10 paths", sg.models.AsianCall(), 2**10),
    ]
    for label, sim, n in cases[:2] if quick else cases:
        theta = sim.default_theta()
        method = sg.Pathwise()
        steps, repeats = (20, 3) if quick else (50, 5)
        t_grad = gradient_seconds(sim, theta, key, method, n, repeats)
        t_step = per_step_seconds(sim, theta, key, method, n, steps, False, repeats)
        t_step_bar = per_step_seconds(sim, theta, key, method, n, steps, True, repeats)
        rows.append(
            {
                "case": label,
                "gradient_ms": 1e3 * t_grad,
                "optimize_step_ms": 1e3 * t_step,
                "optimize_step_with_progress_bar_ms": 1e3 * t_step_bar,
                "step_over_gradient": t_step / t_grad,
                "step_with_bar_over_gradient": t_step_bar / t_grad,
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "optimize",
                "environment": environment(),
                "rows": rows,
                "goal": {"step_over_gradient": 1.1},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
