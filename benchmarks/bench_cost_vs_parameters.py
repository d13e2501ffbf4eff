"""Cost of a gradient against the number of parameters N, on a discrete simulator.

Prints one JSON document. The simulator is a Reed–Frost epidemic in N groups of 10
people, each group with its own transmission rate θ_i: in each of 6 generations the
susceptibles of group i are infected with probability 1 - exp(-θ_i · I / P) (I infected
of P people in all), a binomial draw per group (`simgrad.random.binomial`); the output is
the attack rate, the fraction ever infected. For N in 1 … 1000, each estimator that
runs on it is timed per `sg.gradient` call at a fixed number of samples (compiled: the
warm-up call is excluded), and its per-sample gradient variance is read (the sum over
components of ``grad_std²``), so that variance × time — the time to reach a given error
bar — can be compared. ``claim`` is the estimate's: finite differences are "biased" for
discrete draws (timed for the cost curve only).

Times are medians of repeats, the estimators timed in turn in one process; XLA runs
single-threaded (set below unless ``XLA_FLAGS`` is already set), so this process's CPU
time is the work done, steadier than wall time on a shared machine; ratios are from CPU
time. ``crossover``: per quantity, the smallest N from which the score function (its
best baseline) beats stochastic triples at every larger N measured. ``auto_few``: the
largest N at which triples take at most ``TRIPLES_VARIANCE_ADVANTAGE`` times the score
function's time (their variance advantage on the StochasticAD.jl walk, `sg.Auto`'s
declared data): `sg.Auto`'s ``few`` from this run's ratios.
The whole run takes about 7 minutes on a shared 2-core machine (``--max-linear 16``: less).

    python benchmarks/bench_cost_vs_parameters.py [--n-samples 1024] [--repeats 3]
"""

import argparse
import json
import os
import sys
import warnings

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import simgrad as sg  # noqa: E402
from simgrad.estimators.auto import TRIPLES_VARIANCE_ADVANTAGE  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment, interleaved_times  # noqa: E402

GROUP_SIZE, GENERATIONS = 10, 6
N_PARAMETERS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1000)
ESTIMATORS = {
    "triples": sg.StochasticTriples(),
    "score-vanilla": sg.ScoreFunction(baseline=None),
    "score-loo": sg.ScoreFunction(baseline="loo"),
    "score-cv": sg.ScoreFunction(baseline="cv"),
    "hybrid": sg.Hybrid(),
    "finite-difference": sg.FiniteDifference(),
}
SCORE = ("score-vanilla", "score-loo", "score-cv", "hybrid")


def epidemic(theta, key):
    """Reed–Frost in ``theta.size`` groups; one infected person in group 0 at the start."""
    n = theta.size
    infected = jnp.zeros(n).at[0].set(1.0)
    susceptible = GROUP_SIZE - infected
    people = GROUP_SIZE * n

    def generation(state, key):
        susceptible, infected = state
        escape = jnp.exp(-theta * jnp.sum(infected) / people)
        new = sg.random.binomial(key, susceptible, 1 - escape)
        return (susceptible - new, new), None

    keys = jax.random.split(key, GENERATIONS)
    (susceptible, _), _ = jax.lax.scan(generation, (susceptible, infected), keys)
    return 1 - jnp.sum(susceptible) / people


def row(n, key, n_samples, repeats, names):
    theta = jnp.full(n, 2.0)
    fns = {
        name: lambda m=ESTIMATORS[name]: sg.gradient(
            epidemic, theta, key, method=m, n_samples=n_samples
        )
        for name in names
    }
    times = interleaved_times(fns, repeats=repeats)
    out = {}
    for name in names:
        est = fns[name]()
        variance = float(jnp.sum(est.grad_std**2))
        cpu = times[name]["cpu"]
        out[name] = {
            "claim": est.claim,
            "ms": 1e3 * times[name]["wall"],
            "cpu_ms": 1e3 * cpu,
            "per_sample_variance": variance,
            "variance_x_cpu_seconds": variance * cpu,
        }
    return {"n_parameters": n, "estimators": out}


def crossover(rows, quantity) -> int | None:
    """The smallest N from which the best score-function row beats triples at every larger N."""
    found = None
    for r in reversed(rows):
        est = r["estimators"]
        if "triples" not in est:
            continue
        best = min(est[s][quantity] for s in SCORE if s in est)
        if best >= est["triples"][quantity]:
            break
        found = r["n_parameters"]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-linear", type=int, default=32,
                        help="largest N timed for triples and finite differences")  # fmt: skip
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    warnings.filterwarnings("ignore", category=sg.BiasWarning)  # the claim is in each row
    key = jax.random.key(0)
    rows = []
    for n in N_PARAMETERS:
        names = [k for k in ESTIMATORS if k in SCORE or n <= args.max_linear]
        rows.append(row(n, key, args.n_samples, args.repeats, names))
        print(f"# N={n} done", file=sys.stderr, flush=True)
    for r in rows:
        est = r["estimators"]
        if "triples" in est:
            best = min(SCORE, key=lambda s: est[s]["cpu_ms"])
            r["triples_over_best_score_cpu"] = est["triples"]["cpu_ms"] / est[best]["cpu_ms"]
            best = min(SCORE, key=lambda s: est[s]["variance_x_cpu_seconds"])
            r["triples_over_best_score_variance_x_cpu"] = (
                est["triples"]["variance_x_cpu_seconds"] / est[best]["variance_x_cpu_seconds"]
            )
    report = {
        "benchmark": "cost_vs_parameters",
        "environment": environment() | {"xla_flags": os.environ.get("XLA_FLAGS")},
        "simulator": f"Reed–Frost epidemic, N groups of {GROUP_SIZE}, {GENERATIONS} "
        "generations, binomial draws, θ_i = 2",
        "n_samples": args.n_samples,
        "repeats": args.repeats,
        "max_linear": args.max_linear,
        "rows": rows,
        "crossover": {
            "cpu": crossover(rows, "cpu_ms"),
            "variance_x_cpu": crossover(rows, "variance_x_cpu_seconds"),
        },
        "triples_variance_advantage": TRIPLES_VARIANCE_ADVANTAGE,
        "auto_few": max(
            (
                r["n_parameters"]
                for r in rows
                if r.get("triples_over_best_score_cpu", float("inf")) <= TRIPLES_VARIANCE_ADVANTAGE
            ),
            default=0,
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
