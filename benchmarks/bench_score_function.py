"""Score-function baselines side by side, and the score function's cost over the primal.

Prints one JSON document. For the digital call and a discrete random walk (gallery models)
and each baseline: the per-sample standard deviation of every gradient component, the time
of one `sg.gradient` call (median of repeats, each baseline timed on its own), variance ×
time (lower is better: the time to reach a given standard error), and the variance
reduction and variance × time gain over the vanilla estimator. Then the cost of
`ScoreFunction` against the primal simulation (`jit(vmap(sim))` on the same keys).

    python benchmarks/bench_score_function.py [--n-samples 65536] [--repeats 7]
"""

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import simgrad as sg
from simgrad.models import GALLERY, DigitalCall

BASELINES = [None, "mean", "loo", "ema", "cv", "smooth"]


def timed(fn, repeats):
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def components(tree):
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path) or "theta"
        for index in np.ndindex(np.shape(leaf)):
            out[name + (str(list(index)) if index else "")] = float(np.asarray(leaf)[index])
    return out


def baselines(model, key, n, repeats):
    theta = jax.tree.map(jnp.asarray, model.default_theta())
    rows, exact = {}, components(model.exact_grad(model.default_theta()))
    for baseline in BASELINES:
        method = sg.ScoreFunction(baseline=baseline)
        run = lambda: sg.gradient(model, theta, key, method=method, n_samples=n)  # noqa: B023, E731
        seconds = timed(run, repeats)
        est = run()
        std = components(est.grad_std)
        grad = components(est.grad)
        rows[str(baseline)] = {
            "grad": grad,
            "z_vs_exact": {k: (grad[k] - exact[k]) / (std[k] / n**0.5) for k in grad},
            "per_sample_std": std,
            "seconds": seconds,
            "variance_x_seconds": {k: s**2 * seconds for k, s in std.items()},
            "notes": list(est.notes),
        }
    vanilla = rows["None"]["per_sample_std"]
    vanilla_seconds = rows["None"]["seconds"]
    for row in rows.values():
        row["variance_reduction_vs_vanilla"] = {
            k: vanilla[k] ** 2 / s**2 for k, s in row["per_sample_std"].items()
        }
        row["seconds_over_vanilla"] = row["seconds"] / vanilla_seconds
        # the time to reach a given standard error, vanilla's over this baseline's
        row["variance_x_seconds_gain_vs_vanilla"] = {
            k: r / row["seconds_over_vanilla"]
            for k, r in row["variance_reduction_vs_vanilla"].items()
        }
    best = {
        k: max((r["variance_reduction_vs_vanilla"][k], b) for b, r in rows.items()) for k in vanilla
    }
    best = {
        k: {
            "factor": f,
            "baseline": b,
            "seconds_over_vanilla": rows[b]["seconds_over_vanilla"],
            "variance_x_seconds_gain": rows[b]["variance_x_seconds_gain_vs_vanilla"][k],
        }
        for k, (f, b) in best.items()
    }
    return {
        "n_samples": n,
        "exact_grad": exact,
        "baselines": rows,
        "best_variance_reduction": best,
    }


def cost(model, key, n, repeats):
    """Compiled estimator and full `sg.gradient` call over the compiled primal, timed
    interleaved (one of each per round) so that machine load affects all alike."""
    theta = jax.tree.map(jnp.asarray, model.default_theta())
    keys = jax.random.split(key, n)
    primal = jax.jit(jax.vmap(model, (None, 0)))
    runs = {"primal": lambda: primal(theta, keys)}
    x, unravel = ravel_pytree(theta)
    flat = lambda x, k: model(unravel(x), k)[None]  # noqa: E731  (the estimator's flat view)
    for name, method in {
        "score-vanilla": sg.ScoreFunction(baseline=None),
        "score-loo": sg.ScoreFunction(baseline="loo"),
        "score-smooth": sg.ScoreFunction(baseline="smooth"),
        "pathwise": sg.Pathwise(),
    }.items():
        inner = jax.jit(lambda x, ks, m=method: m.sample_batch(flat, x, ks))
        runs[name] = lambda i=inner: i(x, keys)
        runs[name + " (sg.gradient)"] = lambda m=method: sg.gradient(
            model, theta, key, method=m, n_samples=n
        )
    for run in runs.values():
        jax.block_until_ready(run())  # compile
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "median_seconds": median,
        "over_primal": {
            name: t / median["primal"] for name, t in median.items() if name != "primal"
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2**16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    key = jax.random.key(0)
    report = {
        "benchmark": "score_function",
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "machine": platform.machine(),
        "x64": bool(jax.config.jax_enable_x64),
        "variance_reduction": {
            "digital": baselines(GALLERY["digital"], key, args.n_samples, args.repeats),
            # The same option in the money, for contrast: constant baselines help about
            # as much (the score is largest in the tails, where the payoff differs).
            "digital_K80": baselines(DigitalCall(K=80.0), key, args.n_samples, args.repeats),
            "random_walk": baselines(GALLERY["random_walk"], key, args.n_samples, args.repeats),
        },
        "cost_over_primal": {
            name: cost(GALLERY[name], key, args.n_samples, args.repeats)
            for name in ("digital", "random_walk", "mm1")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
