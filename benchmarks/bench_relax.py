"""Relaxations side by side on the digital call, and the cost of smoothing through the core.

Prints one JSON document. For the digital call's delta: the score function on the hard
model (unbiased), `sg.smooth(model, tau) + Pathwise` at several tau, and a hand-written
sigmoid payoff at the same tau (what `sg.smooth` should reproduce) — each with its
gradient, standard error, error against the exact delta, and the time of one
`sg.gradient` call. Smoothing is done once at trace time, so `sg.smooth` should cost the
same as the hand-written relaxation.

    python benchmarks/bench_relax.py [--n-samples 65536] [--repeats 7]
"""

import argparse
import json
import math

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import simgrad as sg  # noqa: E402
import simgrad.random as sgr  # noqa: E402
from _timing import environment, interleaved_seconds  # noqa: E402


def hand_smoothed(tau):
    m = sg.models.DigitalCall()

    def sim(theta, key):
        S0, sigma = theta["S0"], theta["sigma"]
        loc = jnp.log(S0) + (m.r - 0.5 * sigma**2) * m.T
        log_st = sgr.normal(key, loc, sigma * math.sqrt(m.T))
        return math.exp(-m.r * m.T) * jax.nn.sigmoid((log_st - math.log(m.K)) / tau)

    return sim


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=int, default=2**16)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model = sg.models.DigitalCall()
    theta = model.default_theta()
    exact = model.exact_grad(theta)["S0"]
    key = jax.random.key(0)
    n = args.n_samples
    runs = {"score_function (hard)": (model, sg.ScoreFunction())}
    for tau in (0.1, 0.03, 0.01):
        runs[f"smooth tau={tau} + pathwise"] = (sg.smooth(model, tau), sg.Pathwise())
        runs[f"hand sigmoid tau={tau} + pathwise"] = (hand_smoothed(tau), sg.Pathwise())
    fns = {
        name: (lambda s=s, m=m: sg.gradient(s, theta, key, method=m, n_samples=n))
        for name, (s, m) in runs.items()
    }
    times = interleaved_seconds(fns, repeats=args.repeats)
    results = {}
    for name, fn in fns.items():
        est = fn()
        g, se = float(est.grad["S0"]), float(est.grad_stderr["S0"])
        results[name] = {
            "delta": g,
            "stderr": se,
            "error_vs_exact": g - exact,
            "seconds": times[name],
        }
    print(
        json.dumps(
            {
                "benchmark": "relax",
                "model": "digital call, delta",
                "exact_delta": exact,
                "n_samples": n,
                "results": results,
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
