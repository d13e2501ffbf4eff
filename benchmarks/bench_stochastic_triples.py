"""Stochastic triples against the score function, and their cost, side by side.

Prints one JSON document. For the state-dependent random walk of the StochasticAD.jl
tutorial (n = 10, 50, 100 steps unless ``--steps`` says otherwise; p = 2n; exact derivative
by dynamic programming): the per-sample standard deviation of `sg.StochasticTriples()` and
of `sg.ScoreFunction` with each baseline, the z-score against the exact derivative, and the
time per estimate over the primal simulation (`jit(vmap(sim))` on the same keys). Then, on
a program with no discrete draws (the gallery's Asian call), the time of the triples
estimator over plain forward-mode AD, `sg.Pathwise(mode="forward")`. And StochasticAD.jl's
categorical with zero-probability categories between those that can occur, against its
exact derivative.

Times are medians of repeats, the functions timed in turn in one process; XLA runs
single-threaded (set below unless ``XLA_FLAGS`` is already set), so this process's CPU
time is the work done, steadier than wall time on a shared machine: both are reported
(``time_over_primal`` from wall time, ``cpu_over_primal`` from CPU time).

    python benchmarks/bench_stochastic_triples.py [--n-samples 16384] [--repeats 7]
        [--steps 10 50 100 200]
"""

import argparse
import json
import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import simgrad as sg  # noqa: E402
from _timing import environment, interleaved_times  # noqa: E402
from simgrad.models import AsianCall, StateDependentWalk  # noqa: E402

PUBLISHED_TRIPLES_STD = {10: 0.99, 50: 3.42, 100: 6.48}  # StochasticAD.jl tutorial


def walk(n, key, n_samples, repeats):
    model = StateDependentWalk(n_steps=n)
    p = jnp.asarray(model.default_theta())
    exact = model.exact_grad(float(p))
    keys = jax.random.split(key, n_samples)
    primal = jax.jit(jax.vmap(model, in_axes=(None, 0)))
    methods = {
        "triples": sg.StochasticTriples(),
        "score-vanilla": sg.ScoreFunction(baseline=None),
        "score-loo": sg.ScoreFunction(baseline="loo"),
        "score-cv": sg.ScoreFunction(baseline="cv"),
    }
    fns = {"primal": lambda: primal(p, keys)}
    for name, method in methods.items():
        fns[name] = lambda m=method: sg.gradient(model, p, key, method=m, n_samples=n_samples)
    times = interleaved_times(fns, repeats=repeats)
    rows = {}
    for name in methods:
        est = fns[name]()
        rows[name] = {
            "grad": float(est.grad),
            "per_sample_std": float(est.grad_std),
            "z_vs_exact": (float(est.grad) - exact) / float(est.grad_stderr),
            "seconds": times[name]["wall"],
            "cpu_seconds": times[name]["cpu"],
            "time_over_primal": times[name]["wall"] / times["primal"]["wall"],
            "cpu_over_primal": times[name]["cpu"] / times["primal"]["cpu"],
        }
    best = min((r["per_sample_std"], k) for k, r in rows.items() if k.startswith("score"))
    return {
        "n_steps": n,
        "p": float(p),
        "exact_grad": exact,
        "published_triples_std": PUBLISHED_TRIPLES_STD.get(n),
        "primal_seconds": times["primal"]["wall"],
        "primal_cpu_seconds": times["primal"]["cpu"],
        "methods": rows,
        "best_score_baseline": best[1],
        "std_ratio_best_score_over_triples": best[0] / rows["triples"]["per_sample_std"],
    }


def zero_probability_categories(key, n_samples):
    """StochasticAD.jl's Categorical([0, p², 0, 0, 1 - p²]), f(k) = k, p = 0.45: exact -2.7."""

    def sim(p, key):
        return sg.random.categorical(key, probs=jnp.stack([0 * p, p**2, 0 * p, 0 * p, 1 - p**2]))

    exact = 2 * 0.45 * (1 - 4)
    rows = {}
    for name, method in (("triples", sg.StochasticTriples()), ("score-loo", sg.ScoreFunction())):
        est = sg.gradient(sim, 0.45, key, method=method, n_samples=n_samples)
        rows[name] = {
            "grad": float(est.grad),
            "per_sample_std": float(est.grad_std),
            "z_vs_exact": (float(est.grad) - exact) / float(est.grad_stderr),
        }
    return {"exact_grad": exact, "methods": rows}


def no_discrete_draws(key, n_samples, repeats):
    model = AsianCall()
    theta = jax.tree.map(jnp.asarray, model.default_theta())
    fns = {
        name: lambda m=method: sg.gradient(model, theta, key, method=m, n_samples=n_samples)
        for name, method in (
            ("forward", sg.Pathwise(mode="forward")),
            ("triples", sg.StochasticTriples()),
        )
    }
    times = interleaved_times(fns, repeats=repeats)
    return {
        "model": model.name,
        "seconds": {name: t["wall"] for name, t in times.items()},
        "cpu_seconds": {name: t["cpu"] for name, t in times.items()},
        "triples_over_forward": times["triples"]["wall"] / times["forward"]["wall"],
        "triples_over_forward_cpu": times["triples"]["cpu"] / times["forward"]["cpu"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2**14)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    key = jax.random.key(0)
    report = {
        "benchmark": "stochastic_triples",
        "environment": environment() | {"xla_flags": os.environ.get("XLA_FLAGS")},
        "n_samples": args.n_samples,
        "random_walk": [walk(n, key, args.n_samples, args.repeats) for n in args.steps],
        "zero_probability_categories": zero_probability_categories(key, args.n_samples),
        "no_discrete_draws": no_discrete_draws(key, args.n_samples, args.repeats),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
