"""How long `sg.check` takes on every gallery model (tracing and analysis included: it runs
once per simulator, not in a loop), `sg.one_sided` against `jax.jvp`, and — with
``--baseline`` — the same check times for another checkout of simgrad, side by side.

Run: ``PYTHONPATH=src python benchmarks/bench_check.py [--baseline PATH/TO/src] [--rounds N]``
— prints one JSON document.

Each check runs in a fresh process (a check is the first thing a user runs on a simulator:
nothing is compiled yet), all gallery models one after the other. With ``--baseline``, the
rounds alternate between the baseline's ``src`` and this one, so that the machine's noise
(a shared runner) falls on both alike; the ratio is of the medians over the rounds.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp

from _timing import environment, median_seconds

# One round: check every gallery model in this process, print {model: seconds}.
_ROUND = """
import json, time, jax
jax.config.update("jax_enable_x64", True)
import simgrad as sg
times = {}
for name, model in sg.models.GALLERY.items():
    theta = model.default_theta()
    start = time.perf_counter()
    report = sg.check(model, theta, jax.random.key(0))
    times[name] = [time.perf_counter() - start, report.kinds()]
print(json.dumps(times))
"""


def _round(src: str) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", _ROUND], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="the src/ directory of the simgrad to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    here = str(pathlib.Path(__file__).resolve().parents[1] / "src")
    versions = {"this": here}
    if args.baseline is not None:
        versions = {"baseline": args.baseline, "this": here}
    runs = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, src in versions.items():
            runs[name].append(_round(src))
    models = list(runs["this"][0])
    rows = []
    for model in models:
        row = {"model": model, "kinds": runs["this"][0][model][1]}
        for name in versions:
            row[f"{name}_check_s"] = round(statistics.median(r[model][0] for r in runs[name]), 3)
        if args.baseline is not None:
            row["ratio"] = round(row["this_check_s"] / row["baseline_check_s"], 3)
        rows.append(row)

    jax.config.update("jax_enable_x64", True)
    import simgrad as sg

    f = lambda t: jnp.sum(jnp.minimum(jnp.sin(t) ** 2, 0.5 * jnp.abs(t)))  # noqa: E731
    theta = jnp.linspace(-1.0, 1.0, 1000)
    one_sided = lambda t: sg.one_sided(f, t, jnp.ones_like(t)).right  # noqa: E731
    jvp = jax.jit(lambda t: jax.jvp(f, (t,), (jnp.ones_like(t),))[1])
    out = {
        "benchmark": "check",
        "environment": environment(),
        "rounds": args.rounds,
        "check_per_gallery_model": rows,
        "one_sided_vs_jvp_1000_kinks": {
            "one_sided_s": median_seconds(one_sided, theta, repeats=3),  # traced, both sides
            "jax_jvp_jit_s": median_seconds(jvp, theta),
        },
    }
    if args.baseline is not None:
        total = {name: sum(r[f"{name}_check_s"] for r in rows) for name in versions}
        out["total_check_s"] = {name: round(t, 3) for name, t in total.items()}
        out["total_ratio"] = round(total["this"] / total["baseline"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
