"""ODE adjoints side by side: gradient time over forward time, the second call, memory.

Prints one JSON document:

- ``ratios``: for Lotka–Volterra (2 parameters), an oscillator chain (256 states, 2
  parameters) and Robertson (stiff, 3 parameters): the forward solve, every
  `ode_gradient` method (its compiled call), what ``"auto"`` chose, and the same gradient
  hand-written with diffrax (``jax.value_and_grad`` through ``diffeqsolve``'s default
  adjoint; ``jax.jacfwd`` with ``ForwardMode``). All functions of one problem are timed
  in turn in every round (interleaved; calls shorter than 5 ms repeated within a sample)
  and the medians are reported, wall clock and process CPU time (the CPU-time ratios
  are steadier on a loaded machine).
- ``second_call``: the wall time of a whole `ode_gradient` call, the first (which
  compiles) and the second with new values of the same shapes (which must not).
- ``profile``: where the gradient's time goes, per problem: the same diffrax solve
  differentiated each way (forward mode, reverse storing every step, reverse with the
  default checkpoints, backsolve), its time and the XLA:CPU operations (thunks) it runs
  per call, counted from a `jax.profiler` trace; on Lotka–Volterra also 8 and 1000
  checkpoints.
- ``ratio_vs_state_size``; ``forward_mode_vs_parameters`` (forward against reverse mode
  for 1–8 parameters on 256 and 16,384 states: the evidence for ``"auto"``'s rule); and
  ``memory_vs_steps`` (XLA's temporary-buffer size of the compiled call, deterministic
  on CPU).

XLA runs single-threaded (``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``, set below unless ``XLA_FLAGS`` is already set), so that
every function is timed on one core alike.

    python benchmarks/bench_adjoint.py [--quick]
"""

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)

import simgrad as sg  # noqa: E402
from simgrad.adjoint._ode import _compiled, temp_bytes  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 5 if QUICK else 15
METHODS = ("forward", "discrete", "continuous", "interpolated")


def lotka_volterra():
    """Predator–prey, theta = {"a", "b"}; Tsit5, rtol 1e-8, t1 = 3 (42 steps)."""

    def field(t, y, p):
        return jnp.stack([p["a"] * y[0] - p["b"] * y[0] * y[1], p["b"] * y[0] * y[1] - 0.8 * y[1]])

    return sg.adjoint.ODEProblem(
        field, jnp.array([1.0, 0.5]), 0.0, 3.0, lambda y, p: y[0] * y[1] + 0.1 * p["a"] ** 2
    )


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


PROBLEMS = {
    "lotka_volterra": (
        "Lotka–Volterra (2 states, 2 parameters, Tsit5, rtol 1e-8, t1 = 3)",
        lotka_volterra,
        lambda: {"a": jnp.array(1.1), "b": jnp.array(0.6)},
    ),
    "oscillator_chain": (
        "oscillator chain (256 states, 2 parameters, Tsit5, rtol 1e-8, t1 = 10)",
        oscillator_chain,
        lambda: jnp.array([0.5, 0.3]),
    ),
    "robertson": (
        "Robertson (3 states, 3 parameters, stiff, Kvaerno5, rtol 1e-8, t1 = 10)",
        lambda: sg.adjoint.robertson(t1=10.0),
        lambda: jnp.asarray(sg.adjoint.ROBERTSON_RATES),
    ),
}


def interleaved(fns: dict, repeats: int = REPEATS) -> dict:
    """Median wall and process-CPU seconds per call of each ``fn()``, all timed in turn
    in every round; a function faster than 5 ms is called several times per sample."""
    calls = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn())
        start = time.perf_counter()
        jax.block_until_ready(fn())
        calls[name] = max(1, math.ceil(5e-3 / (time.perf_counter() - start)))
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(calls[name]):
                jax.block_until_ready(fn())
            cpu[name].append((time.process_time() - c) / calls[name])
            wall[name].append((time.perf_counter() - w) / calls[name])
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in fns}


def _diffeqsolve(problem, theta, adjoint):
    """``problem``'s solve written directly with diffrax, as a user would."""
    controller, dt0 = problem._controller()
    return dfx.diffeqsolve(
        dfx.ODETerm(problem.vector_field), problem.solver, problem.t0, problem.t1, dt0,
        problem.y0, args=theta, saveat=dfx.SaveAt(t1=True), stepsize_controller=controller,
        max_steps=problem._max_steps(), adjoint=adjoint,
    )  # fmt: skip


def hand_written(problem):
    """The gradient written by hand with diffrax: reverse (its default adjoint) and forward."""

    def run(theta, adjoint):
        return problem.objective(_diffeqsolve(problem, theta, adjoint).ys[-1], theta)

    reverse = jax.value_and_grad(lambda th: run(th, dfx.RecursiveCheckpointAdjoint()))
    forward = jax.jacfwd(lambda th: run(th, dfx.ForwardMode()))
    return {"hand_diffrax_reverse": jax.jit(reverse), "hand_diffrax_jacfwd": jax.jit(forward)}


def steps_taken(problem, theta) -> int:
    return int(_diffeqsolve(problem, theta, dfx.ForwardMode()).stats["num_steps"])


def ratios(name, label, problem, theta) -> dict:
    forward = jax.jit(problem.__call__)
    fns = {"forward_solve": lambda: forward(theta)}
    failed = {}
    for method in METHODS:
        try:
            sg.adjoint.ode_gradient(problem, theta, method)  # compiles and checks it runs
        except RuntimeError as error:
            failed[method] = str(error).split(".")[0]
            continue
        compiled, arrays, _ = _compiled(method, problem, theta, None)
        fns[method] = lambda c=compiled, a=arrays: c.call(*a)
    fns |= {k: lambda f=f: f(theta) for k, f in hand_written(problem).items()}
    times = interleaved(fns)
    base_wall, base_cpu = times["forward_solve"]
    auto = sg.adjoint.ode_gradient(problem, theta)
    row = {
        "problem": label,
        "steps": steps_taken(problem, theta),
        "forward_solve_ms": round(1e3 * base_wall, 4),
        "auto_chose": auto.adjoint,
        "auto_reason": auto.reason,
    }
    for key, (wall, cpu) in times.items():
        if key == "forward_solve":
            continue
        row[key] = {
            "ms": round(1e3 * wall, 4),
            "over_forward": round(wall / base_wall, 2),
            "over_forward_cpu_time": round(cpu / base_cpu, 2),
        }
    row |= {method: {"failed": reason} for method, reason in failed.items()}
    auto_ratio = row[auto.adjoint]["over_forward"]
    row["auto_over_forward"] = auto_ratio
    row["meets_goal_5x"] = auto_ratio <= 5.0
    row["meets_goal_3x"] = auto_ratio <= 3.0
    return row


def second_call(problem, theta) -> dict:
    """A whole `ode_gradient` call twice: new problem object around the same functions
    and new values of theta the second time (so nothing is cached by value)."""
    row = {}
    for method in ("auto", "discrete"):
        start = time.perf_counter()
        first = sg.adjoint.ode_gradient(problem, theta, method)
        first_s = time.perf_counter() - start
        rebuilt = jax.tree.map(lambda x: x, problem)  # same functions, a new object
        theta2 = jax.tree.map(lambda x: x * 1.01, theta)
        start = time.perf_counter()
        second = sg.adjoint.ode_gradient(rebuilt, theta2, method)
        second_s = time.perf_counter() - start
        row[method] = {
            "adjoint": first.adjoint,
            "first_call_s": round(first_s, 3),
            "first_compile_s": round(first.compile_seconds, 3),
            "second_call_ms": round(1e3 * second_s, 3),
            "second_compile_s": second.compile_seconds,
            "second_compiled_call_ms": round(1e3 * second.seconds, 3),
            "recompiled": second.compile_seconds > 0,
        }
    return row


def thunks_per_call(fn, calls: int = 1) -> float:
    """XLA:CPU operations (thunks) executed per call, from a perfetto trace of jax.profiler."""
    jax.block_until_ready(fn())
    with tempfile.TemporaryDirectory() as directory:
        jax.profiler.start_trace(directory, create_perfetto_trace=True)
        for _ in range(calls):
            jax.block_until_ready(fn())
        jax.profiler.stop_trace()
        (path,) = glob.glob(f"{directory}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as file:
            events = json.load(file)
    events = events["traceEvents"] if isinstance(events, dict) else events
    skip = ("ThunkExecutor", "PjitFunction", "CommonPjRt", "$", "end: ")
    thunks = [e for e in events if e.get("ph") == "X" and not e["name"].startswith(skip)]
    return len(thunks) / calls


def profile(problem, theta, ablation: bool = False, count_thunks: bool = True) -> dict:
    """Where the gradient's time goes: the same diffrax solve differentiated each way, its
    time and the XLA:CPU operations it runs per call, against the forward solve.
    ``ablation`` adds the discrete adjoint with 8 and 1000 checkpoints; ``count_thunks``
    off skips the trace (Robertson's hundreds of steps make a trace of gigabytes)."""

    def grad_with(adjoint):
        run = lambda th: problem.objective(_diffeqsolve(problem, th, adjoint).ys[-1], th)  # noqa: E731
        return jax.jit(jax.value_and_grad(run))

    max_steps = problem._max_steps()
    default_checkpoints = math.floor(-1.5 + math.sqrt(2 * max_steps + 0.25)) + 1
    forward_mode = lambda th: problem.objective(problem.solve(th, dfx.ForwardMode()), th)  # noqa: E731
    variants = {
        "forward_solve": jax.jit(problem.__call__),
        "forward_mode_jacfwd": jax.jit(jax.jacfwd(forward_mode)),
        "discrete_store_all": grad_with(dfx.RecursiveCheckpointAdjoint(checkpoints=max_steps)),
        f"discrete_{default_checkpoints}_checkpoints": grad_with(dfx.RecursiveCheckpointAdjoint()),
    }
    if ablation:
        for checkpoints in (8, 1000):
            adjoint = dfx.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
            variants[f"discrete_{checkpoints}_checkpoints"] = grad_with(adjoint)
    if not isinstance(problem.solver, dfx.AbstractImplicitSolver):  # backsolve fails there
        backsolve = dfx.BacksolveAdjoint(stepsize_controller=problem._controller()[0])
        variants["continuous_backsolve"] = grad_with(backsolve)
    times = interleaved({k: lambda f=f: f(theta) for k, f in variants.items()})
    steps = steps_taken(problem, theta)
    out = {"steps": steps, "max_steps": max_steps}
    base_wall, base_cpu = times["forward_solve"]
    for key, f in variants.items():
        try:
            thunks = thunks_per_call(lambda f=f: f(theta)) if count_thunks else None
        except Exception as error:  # the profiler is optional: keep the timings
            thunks = f"profiler failed: {type(error).__name__}"
        wall, cpu = times[key]
        out[key] = {
            "ms": round(1e3 * wall, 4),
            "over_forward": round(wall / base_wall, 2),
            "over_forward_cpu_time": round(cpu / base_cpu, 2),
            "xla_thunks_per_call": thunks,
            "xla_thunks_per_step": thunks / steps if isinstance(thunks, float) else None,
        }
    return out


def ratio_vs_state_size() -> list:
    rows = []
    for size in (128, 1024) if QUICK else (128, 1024, 8192):
        problem, theta = oscillator_chain(size=size), jnp.array([0.5, 0.3])
        forward = jax.jit(problem.__call__)
        fns = {"forward_solve": lambda f=forward, th=theta: f(th)}
        for method in ("forward", "discrete", "continuous"):
            sg.adjoint.ode_gradient(problem, theta, method)
            compiled, arrays, _ = _compiled(method, problem, theta, None)
            fns[method] = lambda c=compiled, a=arrays: c.call(*a)
        times = interleaved(fns, repeats=max(3, REPEATS // 3))
        wall, cpu = times["forward_solve"]
        row = {"states": 2 * size, "forward_solve_ms": round(1e3 * wall, 3)}
        for m in ("forward", "discrete", "continuous"):
            row[m] = {
                "over_forward": round(times[m][0] / wall, 2),
                "over_forward_cpu_time": round(times[m][1] / cpu, 2),
            }
        rows.append(row)
    return rows


def heterogeneous_chain(size: int, couplings: int):
    """The oscillator chain with ``couplings`` coupling constants (theta), one per block."""

    def field(t, y, k):
        q, v = y[:size], y[size:]
        laplacian = jnp.roll(q, 1) - 2 * q + jnp.roll(q, -1)
        return jnp.concatenate([v, jnp.repeat(k, size // couplings) * laplacian - 0.3 * q**3])

    q0 = jnp.sin(jnp.linspace(0.0, 2 * jnp.pi, size, endpoint=False))
    y0 = jnp.concatenate([q0, jnp.zeros(size)])
    return sg.adjoint.ODEProblem(field, y0, 0.0, 10.0, lambda y, k: jnp.sum(y[:size] ** 2))


def forward_mode_vs_parameters() -> list:
    """Forward mode against reverse mode as the parameters grow, on a small and a large
    state: the evidence for ``"auto"``'s rule."""
    rows = []
    for size in (128, 1024) if QUICK else (128, 8192):
        for couplings in (1, 2, 4, 8):
            problem = heterogeneous_chain(size, couplings)
            theta = jnp.linspace(0.4, 0.6, couplings)
            forward = jax.jit(problem.__call__)
            fns = {"forward_solve": lambda f=forward, th=theta: f(th)}
            for method in ("forward", "discrete"):
                sg.adjoint.ode_gradient(problem, theta, method)
                compiled, arrays, _ = _compiled(method, problem, theta, None)
                fns[method] = lambda c=compiled, a=arrays: c.call(*a)
            times = interleaved(fns, repeats=max(3, REPEATS // 3))
            cpu = times["forward_solve"][1]
            rows.append(
                {
                    "states": 2 * size,
                    "parameters": couplings,
                    "forward_solve_ms": round(1e3 * times["forward_solve"][0], 3),
                    "forward_over_forward_cpu_time": round(times["forward"][1] / cpu, 2),
                    "discrete_over_forward_cpu_time": round(times["discrete"][1] / cpu, 2),
                    "auto_chose": sg.adjoint.ode_gradient(problem, theta).adjoint,
                }
            )
    return rows


def memory_against_steps():
    theta = jnp.array([0.5, 0.3])
    variants = {
        "forward": ("forward", None),
        "discrete_store_all": ("discrete", "all"),
        "discrete_sqrt_checkpoints": ("discrete", None),
        "continuous_backsolve": ("continuous", None),
        "continuous_interpolated": ("interpolated", None),
    }
    rows = []
    for n_steps in (64, 256, 1024, 4096):
        problem = oscillator_chain(n_steps=n_steps, t1=1.0)
        forward = jax.jit(problem.__call__).lower(theta).compile()
        row = {"n_steps": n_steps, "forward_solve": temp_bytes(forward)}
        for label, (method, checkpoints) in variants.items():
            checkpoints = n_steps if checkpoints == "all" else checkpoints
            row[label] = _compiled(method, problem, theta, checkpoints)[0].temp_bytes
        rows.append(row)
    growth = {}
    first, last = rows[0], rows[-1]
    for label in variants:
        ratio = last[label] / max(first[label], 1)
        exponent = math.log(ratio) / math.log(last["n_steps"] / first["n_steps"])
        growth[label] = {"bytes_ratio": round(ratio, 2), "exponent_in_n_steps": round(exponent, 2)}
    return {"rows": rows, "growth": growth}


def main():
    problems = {name: (label, f(), th()) for name, (label, f, th) in PROBLEMS.items()}
    sections = {
        "second_call": lambda: {n: second_call(p, th) for n, (_, p, th) in problems.items()},
        "ratios": lambda: [ratios(n, label, p, th) for n, (label, p, th) in problems.items()],
        "profile": lambda: {
            name: profile(
                factory(),
                theta(),
                ablation=name == "lotka_volterra",
                count_thunks=name != "robertson",
            )
            for name, (_, factory, theta) in PROBLEMS.items()
        },
        "ratio_vs_state_size": ratio_vs_state_size,
        "forward_mode_vs_parameters": forward_mode_vs_parameters,
        "memory_vs_steps": memory_against_steps,
    }
    report = {
        "benchmark": "adjoint",
        "environment": environment() | {"xla_flags": os.environ.get("XLA_FLAGS", "")},
        "goal": "gradient / forward solve <= 5 where parameters are few (issue 16); <= 3 (issue 7)",
    }
    for name, section in sections.items():
        start = time.perf_counter()
        report[name] = section()
        print(f"# {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
