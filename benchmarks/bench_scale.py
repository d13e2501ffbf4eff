"""Beyond one process: JAX samples sharded over devices; black boxes' evaluations per second
against workers and task size; SPSA against finite differences with common random numbers as
the dimension grows. Prints one JSON document.

0. ``sg.gradient(..., devices=k)`` for k = 1, 2, 4: samples per second of a JAX simulator (an
   M/M/1 queue of 200 customers, a ``lax.scan``) sharded over k devices, and the efficiency
   against one device. Without a GPU, the k devices are CPU devices that XLA makes of this
   machine's cores (``--xla_force_host_platform_device_count=4``, set below before JAX
   starts): they share its cores, so the speed-up is at most the number of free cores.

1. ``sg.gradient(sg.BlackBox(fn), ..., executor=...)`` with ``fn`` sleeping 1 ms or 100 ms
   (the machinery, not the CPU, is measured: sleeping workers do not compete with the
   machine's other processes), on a spawn process pool and on a Dask ``LocalCluster`` of
   processes, 1 and 2 workers, several chunk sizes. From the wall time ``T`` of ``n``
   evaluations in ``k`` tasks on ``w`` workers, and the in-process time ``t`` per evaluation,
   the per-task overhead is ``(w T - n t) / k``.
2. The Dask scheduler's own rate: tasks per second for tasks that do nothing.
3. SPSA against FD-CRN on ``Σ (θ_i + Z_i)²`` at θ = 1 (gradient 2, known): per-sample
   variance × evaluations per sample, averaged over coordinates, at N = 2, 20, 200 — the
   evaluations needed for a given standard error, up to a constant.

Timings are medians of interleaved repeats on a shared machine: read ratios, not absolutes.

    python benchmarks/bench_scale.py [--quick]
"""

import concurrent.futures
import functools
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import time

# Four CPU devices for the sharding section (a GPU machine keeps its GPUs: XLA's host flag
# only splits the CPU); set before JAX starts.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment  # noqa: E402


def sharding(quick):
    """Samples per second of one JAX simulator sharded over 1, 2 and 4 devices (interleaved)."""
    model = sg.models.MM1Queue(n_customers=200)
    n = 2**12 if quick else 2**14
    counts = [k for k in (1, 2, 4) if k <= len(jax.devices())]

    def run(k):
        est = sg.gradient(model, 2.0, jax.random.key(0), method=sg.Pathwise(), n_samples=n,
                          devices=k)  # fmt: skip
        return jax.block_until_ready(est._grad)

    grads = {k: run(k) for k in counts}  # compile, and check: the same estimate on any k
    same = all(abs(float(grads[k]) - float(grads[1])) <= 1e-12 * abs(float(grads[1]))
               for k in counts)  # fmt: skip
    times = {k: [] for k in counts}
    for _ in range(3 if quick else 7):
        for k in counts:
            start = time.perf_counter()
            run(k)
            times[k].append(time.perf_counter() - start)
    rate = {k: n / statistics.median(t) for k, t in times.items()}
    return {
        "platform": jax.devices()[0].platform,
        "devices": [str(d) for d in jax.devices()],
        "cpu_cores": os.cpu_count(),
        "simulator": "MM1Queue(n_customers=200), Pathwise",
        "n_samples": n,
        "same_estimate_on_every_count": same,
        "samples_per_s": {str(k): r for k, r in rate.items()},
        "efficiency_vs_one_device": {str(k): rate[k] / (k * rate[1]) for k in counts},
    }


class Sleep:
    """A black box that takes ``seconds`` and returns θ."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, theta, seed):
        if self.seconds:
            time.sleep(self.seconds)
        return float(theta)


def seconds_for(fn, n_evals, executor, chunk_size):
    """Wall time of one `sg.gradient` that makes ``n_evals`` evaluations (SPSA: 2 per sample)."""
    box = sg.BlackBox(fn, chunk_size=chunk_size, progress=False)
    start = time.perf_counter()
    sg.gradient(
        box, 1.0, jax.random.key(0), method=sg.SPSA(), n_samples=n_evals // 2, executor=executor
    )
    return time.perf_counter() - start


def throughput(executors, quick):
    """Evaluations per second and per-task overhead, every configuration in every round."""
    sizes = {0.001: (400, (1, 10, 50, None)), 0.1: (20, (1,))}  # fn seconds: evals, chunks
    sizes = {s: (n // 2 if quick else n, chunks) for s, (n, chunks) in sizes.items()}
    per_eval = {}  # seconds per evaluation in this process: fn and simgrad's own work
    for seconds, (n, _) in sizes.items():
        seconds_for(Sleep(seconds), n, None, None)  # compile
        runs = [seconds_for(Sleep(seconds), n, None, None) for _ in range(3)]
        per_eval[seconds] = statistics.median(runs) / n
    configs = [
        (seconds, n, name, executor, workers, chunk)
        for seconds, (n, chunks) in sizes.items()
        for name, (executor, workers) in executors.items()
        for chunk in chunks
    ]
    for seconds, n, _, executor, _, chunk in configs:  # warm up: every worker imports simgrad
        seconds_for(Sleep(seconds), n, executor, chunk)
    times = {i: [] for i in range(len(configs))}
    for _ in range(2 if quick else 3):
        for i, (seconds, n, _, executor, _, chunk) in enumerate(configs):
            times[i].append(seconds_for(Sleep(seconds), n, executor, chunk))
    rows = []
    for i, (seconds, n, name, _, workers, chunk) in enumerate(configs):
        wall = statistics.median(times[i])
        size = chunk or max(1, math.ceil(n / (8 * workers)))
        tasks = math.ceil(n / size)
        ideal = workers / per_eval[seconds]
        rows.append(
            {
                "fn_ms": 1e3 * seconds,
                "executor": name,
                "workers": workers,
                "chunk_size": chunk or f"auto ({size})",
                "evals": n,
                "tasks": tasks,
                "evals_per_s": n / wall,
                "efficiency": (n / wall) / ideal,
                "task_overhead_ms": 1e3 * max(workers * wall - n * per_eval[seconds], 0) / tasks,
            }
        )
    return rows, {f"fn {1e3 * s:g} ms": 1e3 * t for s, t in per_eval.items()}


def scheduler_rate(client, quick):
    """Tasks per second that Dask schedules when the tasks themselves take no time."""
    n = 200 if quick else 600
    seconds_for(Sleep(0.0), n, client, 1)
    wall = statistics.median(seconds_for(Sleep(0.0), n, client, 1) for _ in range(3))
    return {"tasks": n, "tasks_per_s": n / wall, "ms_per_task": 1e3 * wall / n}


def noisy_quadratic(theta, key):
    """Σ (θ_i + Z_i)², Z ~ N(0, I): E = Σ θ_i² + N, gradient 2θ; pathwise variance 4 each."""
    return jnp.sum((theta + jax.random.normal(key, theta.shape, theta.dtype)) ** 2)


def spsa_against_fd(quick):
    rows = []
    n_samples = 2000 if quick else 10_000
    for dim in (2, 20, 200):
        theta = jnp.ones(dim)
        for name, method in (
            ("FD-CRN central", sg.FiniteDifference()),
            ("FD-CRN forward", sg.FiniteDifference(scheme="forward")),
            ("SPSA", sg.SPSA()),
        ):
            est = sg.gradient(
                noisy_quadratic, theta, jax.random.key(1), method=method, n_samples=n_samples,
                batch_size=500, devices=1,  # FD at N = 200: 801 runs per sample
            )  # fmt: skip
            variance = float(jnp.mean(est.grad_std**2))
            z = float(jnp.max(jnp.abs(est.grad - 2 * theta) / est.grad_stderr))
            evals = method.evals_per_sample(dim, 1)
            rows.append(
                {
                    "dimension": dim,
                    "estimator": name,
                    "evals_per_sample": evals,
                    "variance_per_sample": variance,
                    "variance_x_evals": variance * evals,
                    "max_error_in_stderr": z,  # unbiased: below ~4
                }
            )
    return rows


def queue_cost(client, quick):
    """Cost per sample of the M/M/1 queue as a SimPy black box and as a JAX Lindley scan."""
    queue = sg.models.MM1SimPy(n_customers=20)
    theta, key = queue.default_theta(), jax.random.key(0)
    n = 100 if quick else 400
    start = time.perf_counter()
    for seed in range(n):
        queue({"lam": np.asarray(1.0), "mu": np.asarray(2.0)}, seed)
    simpy_ms = 1e3 * (time.perf_counter() - start) / n
    rows = {"simpy_ms_per_run": simpy_ms}
    box = sg.BlackBox(queue, progress=False)
    methods = (
        ("FD-CRN", sg.FiniteDifference()),
        ("FD-CRN-forward", sg.FiniteDifference(scheme="forward")),
        ("SPSA", sg.SPSA()),
    )
    for name, method in methods:
        run = functools.partial(
            sg.gradient, box, theta, key, method=method, n_samples=n, executor=client
        )
        run()
        wall = statistics.median(_timed(run) for _ in range(3))
        rows[f"simpy_{name}_dask2_ms_per_sample"] = 1e3 * wall / n
    model, m = sg.models.MM1Queue(n_customers=20), 10_000
    run = lambda: jax.block_until_ready(  # noqa: E731
        sg.gradient(model, 2.0, key, method=sg.Pathwise(), n_samples=m, devices=1)
    )
    run()
    rows["jax_pathwise_us_per_sample"] = 1e6 * statistics.median(_timed(run) for _ in range(5)) / m
    return rows


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    quick = "--quick" in sys.argv
    jax.config.update("jax_enable_x64", True)
    devices = sharding(quick)
    from distributed import Client, LocalCluster

    spawn = multiprocessing.get_context("spawn")
    pools = {w: concurrent.futures.ProcessPoolExecutor(w, mp_context=spawn) for w in (1, 2)}
    clusters = {
        w: LocalCluster(
            n_workers=w,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        for w in (1, 2)
    }
    clients = {w: Client(c) for w, c in clusters.items()}
    try:
        executors = {f"process pool, {w}": (pools[w], w) for w in (1, 2)}
        executors |= {f"dask, {w}": (clients[w], w) for w in (1, 2)}
        rows, per_eval_ms = throughput(executors, quick)
        scheduler = scheduler_rate(clients[2], quick)
        queue = queue_cost(clients[2], quick)
    finally:
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
        for p in pools.values():
            p.shutdown()
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "environment": environment(),
                "note": "shared 2-core machine: medians of interleaved repeats; read ratios",
                "sharding": devices,
                "in_process_ms_per_eval": per_eval_ms,
                "throughput": rows,
                "dask_scheduler": scheduler,
                "mm1_queue": queue,
                "spsa_vs_fd_crn": spsa_against_fd(quick),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
