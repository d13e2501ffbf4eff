"""`sg.optimize` against a hand-written optax loop: per-step cost, growth, recompilation.

Rows (issue 16):

* ``step_ratio``: time per `sg.optimize` step over a hand-written ``jax.jit`` optax step
  (the same pathwise gradient by ``vmap(value_and_grad)``, the same Adam), European call,
  2^12 paths; with and without the progress bar. Goal ≤ 1.2.
* ``growth``: time per step of runs of 100, 1000 and 3000 steps, 1000 parameters,
  16 samples, all lengths interleaved. Goal: flat (the history must not cost O(steps) per
  step; a longer run only spreads the fixed cost of a call).
* ``new_optimizer``: the wall time of a run with a *new* ``optax.adam(1e-3)`` object equal
  to one already used, against the same run with the same object. Goal: no recompilation.

Timings are medians of interleaved repeats in one process, single-threaded XLA (so that
two copies of one function agree within 0.5 %). Prints one JSON document.

    python benchmarks/bench_optimize.py [--quick]
"""

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import simgrad as sg  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment  # noqa: E402


def hand_written(sim, n_samples, optimizer):
    """The loop a JAX user writes: one jitted step, a Python loop over steps."""

    @jax.jit
    def step(theta, opt_state, key):
        key, sub = jax.random.split(key)
        keys = jax.random.split(sub, n_samples)
        values, grads = jax.vmap(jax.value_and_grad(sim), (None, 0))(theta, keys)
        grad = jax.tree.map(lambda g: g.mean(0), grads)
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, key, values.mean()

    def run(theta, key, steps):
        theta = jax.tree.map(jnp.asarray, theta)
        opt_state = optimizer.init(theta)
        for _ in range(steps):
            theta, opt_state, key, _ = step(theta, opt_state, key)
        return theta

    return run


def simgrad_run(sim, n_samples, optimizer, progress=False):
    def run(theta, key, steps):
        return sg.optimize(
            sim,
            theta,
            key,
            steps=steps,
            n_samples=n_samples,
            method=sg.Pathwise(),
            optimizer=optimizer,
            progress=progress,
        ).theta

    return run


def interleaved(runs: dict, theta, key, repeats) -> dict:
    """Median seconds per step of each ``name: (run, steps)``, the runs timed in turn, in a
    shuffled order, in every round (so that the machine's drifts fall on all alike)."""
    for run, steps in runs.values():
        jax.block_until_ready(run(theta, key, steps))  # compile
    times = {name: [] for name in runs}
    order = list(runs)
    for _ in range(repeats):
        random.shuffle(order)
        for name in order:
            run, steps = runs[name]
            start = time.perf_counter()
            jax.block_until_ready(run(theta, key, steps))
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def step_ratio(quick: bool) -> dict:
    sim = sg.models.EuropeanCall()
    theta, n = sim.default_theta(), 2**12
    optimizer = optax.adam(1e-3)
    steps, repeats = (100, 7) if quick else (500, 21)
    t = interleaved(
        {
            "hand": (hand_written(sim, n, optimizer), steps),
            "optimize": (simgrad_run(sim, n, optimizer), steps),
            "optimize_with_bar": (simgrad_run(sim, n, optimizer, progress=True), steps),
        },
        theta,
        jax.random.key(0),
        repeats,
    )
    return {
        "case": "european call, 2^12 paths, adam",
        "hand_written_step_ms": 1e3 * t["hand"],
        "optimize_step_ms": 1e3 * t["optimize"],
        "optimize_step_with_bar_ms": 1e3 * t["optimize_with_bar"],
        "step_ratio": t["optimize"] / t["hand"],
        "step_ratio_with_bar": t["optimize_with_bar"] / t["hand"],
        "goal": 1.2,
    }


def growth(quick: bool) -> dict:
    n_params, n = 1000, 16
    target = jnp.linspace(-1.0, 1.0, n_params)

    def sim(theta, key):
        return jnp.sum((theta - target + 0.1 * jax.random.normal(key, theta.shape)) ** 2)

    optimizer = optax.adam(1e-3)
    lengths = (100, 1000) if quick else (100, 1000, 3000)
    runs = {"hand": hand_written(sim, n, optimizer), "optimize": simgrad_run(sim, n, optimizer)}
    timed = {(name, steps): (run, steps) for name, run in runs.items() for steps in lengths}
    t = interleaved(timed, jnp.zeros(n_params), jax.random.key(0), 5 if quick else 9)
    t = {steps: {name: t[name, steps] for name in runs} for steps in lengths}
    per_step = {f"{name} {steps} steps": 1e3 * t[steps][name] for steps in lengths for name in runs}
    first, last = lengths[0], lengths[-1]
    return {
        "case": "1000 parameters, 16 samples, adam: time per step of a run of each length",
        "per_step_ms": per_step,
        "optimize_longest_over_shortest": t[last]["optimize"] / t[first]["optimize"],
        "hand_longest_over_shortest": t[last]["hand"] / t[first]["hand"],
        "step_ratio_longest_run": t[last]["optimize"] / t[last]["hand"],
        "goal": "flat: longest_over_shortest <= 1 (the fixed cost of a run spreads out)",
    }


def new_optimizer() -> dict:
    sim = sg.models.EuropeanCall()
    theta, key = sim.default_theta(), jax.random.key(1)

    def run(optimizer):
        start = time.perf_counter()
        res = sg.optimize(sim, theta, key, steps=5, n_samples=256, optimizer=optimizer,
                          progress=False)  # fmt: skip
        jax.block_until_ready(res.theta)
        return time.perf_counter() - start

    first = optax.adam(1e-3)
    compile_s = run(first)
    same = statistics.median(run(first) for _ in range(3))
    new = statistics.median(run(optax.adam(1e-3)) for _ in range(3))
    return {
        "case": "a new optax.adam(1e-3) equal to one already used",
        "first_run_with_compile_s": compile_s,
        "same_object_s": same,
        "new_equal_object_s": new,
        "recompiles": new > 0.5 * compile_s,
        "goal": "no recompilation",
    }


def main() -> None:
    quick = "--quick" in sys.argv
    rows = [step_ratio(quick), growth(quick), new_optimizer()]
    print(
        json.dumps(
            {
                "benchmark": "optimize",
                "environment": environment() | {"XLA_FLAGS": os.environ.get("XLA_FLAGS")},
                "note": "shared 2-core machine: medians of interleaved repeats, one process",
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
