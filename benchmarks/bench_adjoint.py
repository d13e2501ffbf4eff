"""ODE adjoints side by side: gradient time over forward time, and memory against steps.

Prints one JSON document. Times are the best of several compiled calls on this machine's
CPU (wall clock, so they move with the load); memory is XLA's temporary-buffer size of the
compiled call (``compiled.memory_analysis().temp_size_in_bytes``), deterministic on CPU.

    python benchmarks/bench_adjoint.py [--quick]
"""

import json
import math
import platform
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import simgrad as sg  # noqa: E402
from simgrad.adjoint._ode import temp_bytes  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 7
ADJOINTS = {
    "discrete_sqrt_checkpoints": ("discrete", None),
    "continuous_backsolve": ("continuous", None),
    "continuous_interpolated": ("interpolated", None),
}


def oscillator_chain(n_steps=None, size=128, t1=10.0, max_steps=4096):
    """``size`` coupled anharmonic oscillators, q'' = a Δq - b q³: 2·size states, no
    dissipation, so the state can also be solved backwards (BacksolveAdjoint is usable)."""

    def field(t, y, p):
        q, v = y[:size], y[size:]
        force = p[0] * (jnp.roll(q, 1) - 2 * q + jnp.roll(q, -1)) - p[1] * q**3
        return jnp.concatenate([v, force])

    q0 = jnp.sin(jnp.linspace(0.0, 2 * jnp.pi, size, endpoint=False))
    y0 = jnp.concatenate([q0, jnp.zeros(size)])
    return sg.adjoint.ODEProblem(
        field, y0, 0.0, t1, lambda y, p: jnp.sum(y[:size] ** 2), rtol=1e-8, atol=1e-10,
        n_steps=n_steps, max_steps=max_steps,
    )  # fmt: skip


def forward_cost(problem, theta):
    compiled = jax.jit(problem.__call__).lower(theta).compile()
    jax.block_until_ready(compiled(theta))
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(compiled(theta))
        best = min(best, time.perf_counter() - start)
    return best, temp_bytes(compiled)


def side_by_side(name, problem, theta, adjoints):
    forward_s, forward_bytes = forward_cost(problem, theta)
    row = {"problem": name, "forward_ms": 1e3 * forward_s, "forward_temp_bytes": forward_bytes}
    for label, (adjoint, checkpoints) in adjoints.items():
        try:
            result = sg.adjoint.ode_gradient(
                problem, theta, adjoint, checkpoints=checkpoints, repeats=REPEATS
            )
        except RuntimeError as error:
            row[label] = {"failed": str(error).split(".")[0]}
            continue
        row[label] = {
            "gradient_ms": 1e3 * result.seconds,
            "gradient_over_forward": result.seconds / forward_s,
            "temp_bytes": result.temp_bytes,
            "meets_goal_3x": result.seconds / forward_s <= 3.0,
        }
    return row


def memory_against_steps():
    theta = jnp.array([0.5, 0.3])
    rows = []
    for n_steps in (64, 256, 1024, 4096):
        problem = oscillator_chain(n_steps=n_steps, t1=1.0)
        row = {"n_steps": n_steps, "forward_temp_bytes": forward_cost(problem, theta)[1]}
        variants = {
            "discrete_store_all": ("discrete", n_steps),
            "discrete_sqrt_checkpoints": ("discrete", None),
            "continuous_backsolve": ("continuous", None),
            "continuous_interpolated": ("interpolated", None),
        }
        for label, (adjoint, checkpoints) in variants.items():
            result = sg.adjoint.ode_gradient(
                problem, theta, adjoint, checkpoints=checkpoints, repeats=1
            )
            row[label] = result.temp_bytes
        rows.append(row)
    growth = {}
    first, last = rows[0], rows[-1]
    for label in ("discrete_store_all", "discrete_sqrt_checkpoints", "continuous_backsolve",
                  "continuous_interpolated"):  # fmt: skip
        ratio = last[label] / max(first[label], 1)
        exponent = math.log(ratio) / math.log(last["n_steps"] / first["n_steps"])
        growth[label] = {"bytes_ratio": ratio, "exponent_in_n_steps": exponent}
    return {"rows": rows, "growth": growth}


def main():
    theta = jnp.array([0.5, 0.3])
    report = {
        "benchmark": "adjoint",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
        },  # fmt: skip
        "goal": "gradient_over_forward <= 3",
        "time": [
            side_by_side(
                "oscillator chain (256 states, Tsit5, adaptive rtol 1e-8, t1 = 10)",
                oscillator_chain(),
                theta,
                ADJOINTS | {"discrete_store_all": ("discrete", 4096)},
            ),
            side_by_side(
                "Robertson (3 states, stiff, Kvaerno5, rtol 1e-8, t1 = 10)",
                sg.adjoint.robertson(t1=10.0),
                jnp.asarray(sg.adjoint.ROBERTSON_RATES),
                ADJOINTS | {"discrete_store_all": ("discrete", 4096)},
            ),
        ],
        "ratio_vs_state_size": [
            side_by_side(
                f"oscillator chain ({2 * size} states)",
                oscillator_chain(size=size),
                theta,
                {k: ADJOINTS[k] for k in ("discrete_sqrt_checkpoints", "continuous_backsolve")},
            )
            for size in ((128, 1024) if QUICK else (128, 1024, 8192))
        ],
        "memory_vs_steps": memory_against_steps(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
