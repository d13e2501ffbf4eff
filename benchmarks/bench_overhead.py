"""Per-call overhead, asynchronous dispatch, memory and finite-difference cost of `sg.gradient`.

Prints one JSON document with a row per measurement, all ratios measured in this one
process, the functions timed in turn (interleaved), medians of the repeats, wall time and
this process's CPU time (XLA runs single-threaded, ``--xla_cpu_multi_thread_eigen=false``,
so CPU time is the work done; it is steadier than wall time on a shared machine):

* ``overhead``: `sg.gradient` (Pathwise, the estimator built once) and reading its
  gradient, over a hand-written ``jit(vmap(value_and_grad))`` with the same mean and
  standard deviation, waited for; European call, float32, n = 16 … 2^18.
* ``back_to_back``: 8 calls issued one after the other, then their gradients read,
  2^14 samples: dispatch is asynchronous, so the calls queue as with plain JAX.
* ``memory``: peak resident memory of a fresh process running n = 2^26 samples with
  ``batch_size=2^16`` (and 2^22 at once and in chunks, for scale), over that of a process
  that ran 2^10 (the fixed cost of JAX and the compiled program).
* ``finite_differences``: central differences with N = 100 and 1000 parameters (two
  samples of 4N + 1 runs: the 2h runs give the truncation estimate) over the same runs
  written by hand as one ``vmap``, over ``jax.grad`` and over one primal run.

    python benchmarks/bench_overhead.py [--quick]
"""

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import simgrad as sg  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment  # noqa: E402

MODEL = sg.models.EuropeanCall()
THETA = {"S0": jnp.float32(100.0), "sigma": jnp.float32(0.2)}


def interleaved_seconds(fns: dict, *args, repeats: int = 9, inner: int = 5) -> dict:
    """Per call: the median over rounds of wall time and of this process's CPU time (XLA is
    single-threaded here, so CPU time is the work done, steadier than wall time on a
    shared machine). Each round runs ``inner`` synchronised calls of every function in turn.
    Returns ``{name: (wall_s, cpu_s)}``."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(inner):
                jax.block_until_ready(fn(*args))
            times[name][0].append((time.perf_counter() - wall) / inner)
            times[name][1].append((time.process_time() - cpu) / inner)
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in times.items()}


def ratios(t: dict, a: str, b: str, prefix: str) -> dict:
    """Wall and CPU milliseconds of ``a`` and ``b`` and their ratios."""
    return {
        f"{a}_ms": 1e3 * t[a][0],
        f"{b}_ms": 1e3 * t[b][0],
        f"{a}_cpu_ms": 1e3 * t[a][1],
        f"{b}_cpu_ms": 1e3 * t[b][1],
        f"{prefix}_wall": t[a][0] / t[b][0],
        f"{prefix}_cpu": t[a][1] / t[b][1],
    }


def hand_written(sim, n):
    """What a user would write by hand: vmap(value_and_grad), then mean and standard error."""

    @jax.jit
    def run(theta, key):
        keys = jax.random.split(key, n)
        values, grads = jax.vmap(jax.value_and_grad(sim), in_axes=(None, 0))(theta, keys)
        stats = lambda x: (x.mean(0), x.std(0, ddof=1) / jnp.sqrt(n).astype(x.dtype))  # noqa: E731
        return stats(values), jax.tree.map(stats, grads)

    return run


# The estimator is built once, as in a loop over calls: building an equinox module
# (sg.Pathwise()) costs about 10 µs of its own, the user's code rather than sg.gradient's.
PATHWISE = sg.Pathwise()


def simgrad(sim, n, **kwargs):
    return lambda theta, key: (
        sg.gradient(sim, theta, key, method=PATHWISE, n_samples=n, **kwargs).grad
    )


def overhead(sizes, repeats) -> list[dict]:
    rows = []
    key = jax.random.key(0)
    for n in sizes:
        fns = {"simgrad": simgrad(MODEL, n), "hand": hand_written(MODEL, n)}
        t = interleaved_seconds(fns, THETA, key, repeats=repeats)
        row = {"n_samples": n} | ratios(t, "simgrad", "hand", "simgrad_over_hand")
        row["extra_ms_per_call_cpu"] = 1e3 * (t["simgrad"][1] - t["hand"][1])
        rows.append(row)
    return rows


def back_to_back(n, calls, repeats) -> dict:
    """``calls`` calls issued one after the other, then their results read: dispatch is
    asynchronous, so the calls queue on the device while Python issues the next."""
    keys = list(jax.random.split(jax.random.key(1), calls))
    hand = hand_written(MODEL, n)

    def ours(theta, _):
        estimates = [sg.gradient(MODEL, theta, k, method=PATHWISE, n_samples=n) for k in keys]
        return [e.grad for e in estimates]

    def theirs(theta, _):
        return [hand(theta, k) for k in keys]

    t = interleaved_seconds({"simgrad": ours, "hand": theirs}, THETA, None, repeats=repeats)
    return {"n_samples": n, "calls": calls} | ratios(t, "simgrad", "hand", "simgrad_over_hand")


_CHILD = """
import sys, jax, jax.numpy as jnp, simgrad as sg
n, batch = int(sys.argv[1]), (None if sys.argv[2] == "None" else int(sys.argv[2]))
theta = {"S0": jnp.float32(100.0), "sigma": jnp.float32(0.2)}
est = sg.gradient(sg.models.EuropeanCall(), theta, jax.random.key(0), method=sg.Pathwise(),
                  n_samples=n, batch_size=batch)
float(est.grad["S0"])
# VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss across fork and exec
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def peak_rss_mb(n, batch) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), str(batch)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    return int(out.stdout.split()[-1]) / 1024  # VmHWM is in KiB


def memory(quick: bool) -> list[dict]:
    base = peak_rss_mb(2**10, None)
    cases = [(2**22, None), (2**22, 2**16)] + ([] if quick else [(2**26, 2**16)])
    rows = []
    for n, batch in cases:
        peak = peak_rss_mb(n, batch)
        rows.append(
            {
                "n_samples": n,
                "batch_size": batch,
                "peak_rss_mb": peak,
                "over_baseline_mb": peak - base,
                "baseline_rss_mb": base,
                "bytes_per_sample": (peak - base) * 2**20 / n,
            }
        )
    return rows


def fd_sim(x, key):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2) + jnp.sum(jnp.sin(x))


def finite_differences(sizes, repeats) -> list[dict]:
    return [fd_row(n_params, repeats) for n_params in sizes]


def fd_row(n_params, repeats) -> dict:
    """Central differences (2 samples, with the 2h runs of the truncation estimate) over the
    same perturbed runs written by hand as one ``vmap``, and over ``jax.grad``."""
    key = jax.random.key(0)
    method = sg.FiniteDifference()
    x = jnp.linspace(-1.2, 1.5, n_params)
    runs = method.evals_per_sample(n_params, 1)
    eye = jnp.eye(n_params)
    points = x + 1e-3 * jnp.concatenate([eye, -eye, 2 * eye, -2 * eye, jnp.zeros((1, n_params))])
    points = jnp.concatenate([points, points])  # two samples
    hand_runs = jax.jit(lambda p: jax.vmap(fd_sim, in_axes=(0, None))(p, key))
    grad, primal = jax.jit(jax.grad(fd_sim)), jax.jit(fd_sim)
    t = interleaved_seconds(
        {
            "simgrad": lambda x, _: sg.gradient(fd_sim, x, key, method=method, n_samples=2).grad,
            "batched_runs": lambda x, _: hand_runs(points),
            "jax_grad": lambda x, _: grad(x, key),
            "primal": lambda x, _: primal(x, key),
        },
        x,
        None,
        repeats=repeats,
        inner=1 if n_params > 100 else 5,
    )
    return (
        {"n_params": n_params, "runs_per_sample": runs, "n_samples": 2}
        | ratios(t, "simgrad", "batched_runs", "simgrad_over_batched_runs")
        | {
            "simgrad_over_jax_grad_cpu": t["simgrad"][1] / t["jax_grad"][1],
            "simgrad_over_primal_cpu": t["simgrad"][1] / t["primal"][1],
        }
    )


def main() -> None:
    quick = "--quick" in sys.argv
    repeats = 5 if quick else 21
    report = {
        "benchmark": "overhead",
        "environment": environment() | {"xla_flags": os.environ.get("XLA_FLAGS")},
        "overhead": overhead([16, 2**12, 2**14, 2**16] + ([] if quick else [2**18]), repeats),
        "back_to_back": back_to_back(2**14, 8, repeats),
        "finite_differences": finite_differences([100] if quick else [100, 1000], repeats),
        "memory": memory(quick),
        "goals": {
            "overhead_simgrad_over_hand_at_n_ge_2^12": 1.05,
            "back_to_back_simgrad_over_hand": 1.1,
            "memory": "bounded by batch_size",
            "finite_differences": "the batched runs, no more",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
