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
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


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
