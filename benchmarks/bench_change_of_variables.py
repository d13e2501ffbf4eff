"""The digital call written as users write it (standard noise from `jax.random`, transformed
by θ): variance × time of the change of variables against the other unbiased routes.

Rows, all on ``S_T = S0·exp(-σ²/2 + σZ)``, payoff ``1{S_T > 100}``, θ = (S0, σ) = (100, 0.2):

* ``change-of-variables``: `sg.ScoreFunction()` (what `sg.Auto()` picks): the draw is scored
  through the map (generalized likelihood ratio);
* ``change-of-variables+loo``: the same with the leave-one-out baseline;
* ``in-the-law``: θ in the draw's distribution (`sg.random.normal(key, loc, σ)`), the
  score function: the reference the change of variables must match;
* ``score-smooth``: `ScoreFunction(baseline="smooth")` on the θ-in-the-law program;
* ``pathwise-on-smooth``: `sg.Pathwise()` on `sg.smooth(sim, tau=1)` (biased: its bias is
  printed against the exact Black–Scholes answer).

Per row: per-sample standard deviation of ∂S0 and ∂σ, seconds per call (median of
interleaved repeats), and work-normalised variance ``std² × seconds`` relative to the
change of variables (lower is better). Prints JSON.

    python benchmarks/bench_change_of_variables.py [--quick]
"""

import json
import math
import sys

import jax
import jax.numpy as jnp
from scipy.stats import norm

import simgrad as sg
from _timing import environment, interleaved_seconds

THETA = {"S0": 100.0, "sigma": 0.2}
K = 100.0


def natural(theta, key):
    z = jax.random.normal(key)
    s_t = theta["S0"] * jnp.exp(-(theta["sigma"] ** 2) / 2 + theta["sigma"] * z)
    return jnp.where(s_t > K, 1.0, 0.0)


def in_the_law(theta, key):
    loc = jnp.log(theta["S0"]) - theta["sigma"] ** 2 / 2
    return jnp.where(sg.random.normal(key, loc, theta["sigma"]) > jnp.log(K), 1.0, 0.0)


def exact():
    s0, sigma = THETA["S0"], THETA["sigma"]
    d2 = (math.log(s0 / K) - sigma**2 / 2) / sigma
    return {"S0": norm.pdf(d2) / (s0 * sigma), "sigma": -norm.pdf(d2) * (d2 + sigma) / sigma}


def main(quick: bool) -> None:
    n = 2**14 if quick else 2**16
    key = jax.random.key(0)
    rows = {
        "change-of-variables": (natural, sg.ScoreFunction()),
        "change-of-variables+loo": (natural, sg.ScoreFunction(baseline="loo")),
        "in-the-law": (in_the_law, sg.ScoreFunction()),
        "score-smooth": (in_the_law, sg.ScoreFunction(baseline="smooth")),
        "pathwise-on-smooth": (sg.smooth(natural, 1.0), sg.Pathwise()),
    }
    calls = {
        name: (lambda sim=sim, method=method: sg.gradient(sim, THETA, key, method=method,
                                                          n_samples=n).grad)
        for name, (sim, method) in rows.items()
    }  # fmt: skip
    seconds = interleaved_seconds(calls, repeats=3 if quick else 7)
    truth, out = exact(), {}
    for name, (sim, method) in rows.items():
        est = sg.gradient(sim, THETA, key, method=method, n_samples=n)
        out[name] = {
            "seconds": seconds[name],
            **{f"std_{p}": float(est.grad_std[p]) for p in THETA},
            **{f"z_{p}": float((est.grad[p] - truth[p]) / est.grad_stderr[p]) for p in THETA},
        }
    base = out["change-of-variables"]
    for row in out.values():
        for p in THETA:
            row[f"var_x_time_{p}_vs_cov"] = (row[f"std_{p}"] ** 2 * row["seconds"]) / (
                base[f"std_{p}"] ** 2 * base["seconds"]
            )
    print(json.dumps({"n_samples": n, "exact": truth, "rows": out, **environment()}, indent=1))


if __name__ == "__main__":
    main("--quick" in sys.argv)
