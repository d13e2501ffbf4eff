"""Shared timing helpers for the benchmark scripts: warm up, then the median of repeats."""

import platform
import statistics
import time

import jax


def median_seconds(fn, *args, repeats: int = 7) -> float:
    """Median wall time of ``fn(*args)`` after one warm-up call (compilation excluded)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(fns: dict, *args, repeats: int = 9) -> dict:
    """Median wall time of each ``fn(*args)``, the functions timed in turn in every round.

    Interleaving spreads the machine's noise (other processes, clock changes) over all of
    them alike, so their ratios are steadier than from back-to-back blocks.
    """
    times = interleaved_times(fns, *args, repeats=repeats)
    return {name: t["wall"] for name, t in times.items()}


def interleaved_times(fns: dict, *args, repeats: int = 9) -> dict:
    """``{name: {"wall": s, "cpu": s}}``: the medians of wall time and of this process's CPU
    time per call, the functions timed in turn in every round (see `interleaved_seconds`).

    With single-threaded XLA (``--xla_cpu_multi_thread_eigen=false
    intra_op_parallelism_threads=1``) CPU time is the work done: on a shared machine it
    does not count the time other processes held the core.
    """
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    return {
        name: {"wall": statistics.median(w), "cpu": statistics.median(c)}
        for name, (w, c) in times.items()
    }


def environment() -> dict:
    """What the numbers were measured on."""
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "x64": bool(jax.config.jax_enable_x64),
    }
