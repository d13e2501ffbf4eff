"""`sg.Auto` on the gallery, and the overhead of `sg.expectation` + `jax.grad`.

Prints one JSON document, all ratios measured in this one process, the functions timed in
turn (interleaved), medians of the repeats (the machine may be shared and noisy: read the
ratios, not the absolute times):

* ``auto``: per gallery model, the estimator `sg.Auto` chose, its bias z (the largest
  |grad - exact| / grad_stderr over components; |z| < 4 is unbiased at 4σ), and its
  variance × time (sum over components of grad_stderr², times the median wall time of
  the call) relative to the best unbiased estimator of the registry on that model (the
  goal: ≤ 2). Every registered estimator's row is in ``estimators``.
* ``expectation_overhead``: ``jit(jax.grad(E))`` and eager ``jax.grad(E)`` for
  ``E = sg.expectation(sim, method=sg.Pathwise())`` over ``sg.gradient(...).grad`` with the
  same estimator, samples and keys (the goal: ≤ 1.05), on the European call.

    python benchmarks/bench_auto.py [--quick]
"""

import functools
import json
import os
import sys

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402
from simgrad._demo import applicable_estimators  # noqa: E402
from simgrad._src.names import named_components  # noqa: E402
from simgrad.models import GALLERY  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import environment, interleaved_seconds  # noqa: E402


def score(est, exact, seconds) -> dict:
    grad, stderr = named_components(est.grad), named_components(est.grad_stderr)
    z = None
    if exact is not None and all(s > 0 for s in stderr.values()):
        exact = named_components(exact)
        z = max(abs(grad[k] - exact[k]) / stderr[k] for k in grad)
    elif exact is not None:  # deterministic: exact to rounding, or not
        exact = named_components(exact)
        z = 0.0 if all(abs(grad[k] - exact[k]) <= 1e-6 * (1 + abs(exact[k])) for k in grad) else 1e9
    variance = sum(s**2 for s in stderr.values())
    return {"method": est.method, "z": z, "variance": variance, "ms": 1e3 * seconds,
            "variance_x_time": variance * seconds}  # fmt: skip


def auto_rows(scale: float, repeats: int) -> list[dict]:
    key = jax.random.key(0)
    rows = []
    for name, model in GALLERY.items():
        theta, n = model.default_theta(), max(2, int(model.n_samples * scale))
        methods = {"auto": sg.Auto(), **applicable_estimators(model)}
        run = functools.partial(sg.gradient, model, theta, key, n_samples=n)
        calls = {label: functools.partial(run, method=m) for label, m in methods.items()}
        seconds = interleaved_seconds(calls, repeats=repeats)
        exact = model.exact_grad(theta)
        results = {label: score(calls[label](), exact, seconds[label]) for label in calls}
        auto = results.pop("auto")
        if exact is None:  # no exact answer: every estimator competes (and z is unknown)
            unbiased = dict(results)
        else:
            unbiased = {k: r for k, r in results.items() if r["z"] is not None and r["z"] < 4}
        best = min(unbiased, key=lambda k: unbiased[k]["variance_x_time"]) if unbiased else None
        ratio = None
        if best is not None and unbiased[best]["variance_x_time"] > 0:
            ratio = auto["variance_x_time"] / unbiased[best]["variance_x_time"]
        elif best is not None:  # deterministic: exact everywhere, compare time
            ratio = auto["ms"] / unbiased[best]["ms"]
        # Auto runs exactly the registered estimator it chose: its row measures the choice
        # without the timing noise of a second, identical program.
        chosen = auto["method"].split(" → ")[-1]
        chosen = next((k for k, m in methods.items() if k != "auto" and repr(m) == chosen), None)
        choice = None
        if best is not None and chosen in results:
            mine, theirs = results[chosen], unbiased[best]
            key_ = "variance_x_time" if theirs["variance_x_time"] > 0 else "ms"
            choice = mine[key_] / theirs[key_]
        rows.append({"model": name, "n_samples": n, "exact": exact is not None, "auto": auto,
                     "chosen": chosen, "choice_over_best": choice, "best": best,
                     "auto_over_best": ratio, "estimators": results})  # fmt: skip
    return rows


def overhead_row(repeats: int) -> dict:
    model = GALLERY["european"]
    theta, key, n = model.default_theta(), jax.random.key(1), 2**14
    method = sg.Pathwise()
    E = sg.expectation(model, method=method, n_samples=n)
    jit_grad, eager_grad = jax.jit(jax.grad(E)), jax.grad(E)
    calls = {
        "sg.gradient": lambda: sg.gradient(model, theta, key, method=method, n_samples=n).grad,
        "jit(jax.grad(E))": lambda: jit_grad(theta, key),
        "jax.grad(E)": lambda: eager_grad(theta, key),
    }
    same = jax.tree.map(
        lambda a, b: float(abs(a - b)), calls["sg.gradient"](), jit_grad(theta, key)
    )
    seconds = interleaved_seconds(calls, repeats=repeats)
    base = seconds["sg.gradient"]
    return {"model": model.name, "n_samples": n, "max_abs_difference": max(jax.tree.leaves(same)),
            "ms": {k: 1e3 * v for k, v in seconds.items()},
            "over_sg_gradient": {k: v / base for k, v in seconds.items()}}  # fmt: skip


def main() -> None:
    quick = "--quick" in sys.argv
    jax.config.update("jax_enable_x64", True)
    overhead = overhead_row(15 if quick else 31)
    rows = auto_rows(0.25 if quick else 1.0, 5 if quick else 9)
    report = {
        "environment": environment(),
        "note": "interleaved medians on a possibly shared machine; ratios are what to read",
        "auto": rows,
        "auto_worst_ratio": max((r["auto_over_best"] or 0) for r in rows),
        "choice_worst_ratio": max((r["choice_over_best"] or 0) for r in rows),
        "auto_max_z": max((r["auto"]["z"] or 0) for r in rows),
        "expectation_overhead": overhead,
    }
    print(json.dumps(report, indent=1, default=lambda x: float(np.asarray(x))))


if __name__ == "__main__":
    main()
