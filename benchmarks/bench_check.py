"""How long `sg.check` takes on every gallery model (tracing and analysis included: it runs
once per simulator, not in a loop), and `sg.one_sided` against `jax.jvp`.

Run: ``PYTHONPATH=src python benchmarks/bench_check.py`` — prints one JSON document.
"""

import json
import time

import jax
import jax.numpy as jnp

import simgrad as sg
from _timing import environment, median_seconds

jax.config.update("jax_enable_x64", True)


def main() -> None:
    rows = []
    for name, model in sg.models.GALLERY.items():
        theta = model.default_theta()
        start = time.perf_counter()
        report = sg.check(model, theta, jax.random.key(0))
        seconds = time.perf_counter() - start
        rows.append({"model": name, "check_s": round(seconds, 3), "kinds": report.kinds()})

    f = lambda t: jnp.sum(jnp.minimum(jnp.sin(t) ** 2, 0.5 * jnp.abs(t)))  # noqa: E731
    theta = jnp.linspace(-1.0, 1.0, 1000)
    one_sided = lambda t: sg.one_sided(f, t, jnp.ones_like(t)).right  # noqa: E731
    jvp = jax.jit(lambda t: jax.jvp(f, (t,), (jnp.ones_like(t),))[1])
    out = {
        "benchmark": "check",
        "environment": environment(),
        "check_per_gallery_model": rows,
        "one_sided_vs_jvp_1000_kinks": {
            "one_sided_s": median_seconds(one_sided, theta, repeats=3),  # traced, both sides
            "jax_jvp_jit_s": median_seconds(jvp, theta),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
