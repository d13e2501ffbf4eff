"""Surrogates of stochastic components: the conditional normalizing flow against the exact
answers, side by side with the MLP surrogate on the conditional-mean task.

Prints one JSON document. For three one-dimensional conditionals y | x with exact
E[g(y) | x] and gradients — a gamma whose shape grows with x (skewed), a two-component
normal mixture whose weight moves with x (bimodal), a lognormal whose location and spread
move with x (heavy-tailed, heteroscedastic) — and each training-set size: the flow's fit
time (wall and CPU), its value and gradient RMS errors (relative) at held-out x for
g(y) = (y, y², e^-y), its largest |z| and Kolmogorov–Smirnov statistic against real
draws; the MLP surrogate's fit time and gradient error of E[y | x] on the same pairs (2000
steps, width 32, as in docs/surrogate.md); and the cost of one draw from the flow (with
its x-gradient) against one from the real component.

    python benchmarks/bench_surrogate.py [--sizes 5000,20000,50000] [--steps 3000]
                                         [--validation 0.1]

(--validation: the fraction fit_flow holds out to keep its best step; 0, the default,
keeps the last.)
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from _timing import environment, median_seconds
from simgrad import surrogate

HELD_OUT = np.array([0.15, 0.55, 0.95, 1.35, 1.75])  # x in [0, 2]


def stats(y):
    return jnp.stack([y, y**2, jnp.exp(-y)])


def gamma_sample(x, key):
    return jax.random.gamma(key, 1.5 + x)


def gamma_exact(x):
    a = 1.5 + x
    return jnp.stack([a, a * (a + 1), 2.0 ** (-a)])


def _mixture(x):
    w = jax.nn.sigmoid(2.0 * (x - 1.0))  # the weight of the upper component
    return w, jnp.array([-1.0, 1.5 + 0.5 * x]), 0.5


def mixture_sample(x, key):
    w, means, s = _mixture(x)
    k_c, k_n = jax.random.split(key)
    upper = jax.random.bernoulli(k_c, w)
    return jnp.where(upper, means[1], means[0]) + s * jax.random.normal(k_n)


def mixture_exact(x):
    w, m, s = _mixture(x)
    each = jnp.stack([m, m**2 + s**2, jnp.exp(-m + s**2 / 2)])  # (3, 2) normal moments
    return each @ jnp.stack([1 - w, w])


def _lognormal(x):
    return 0.5 * jnp.sin(2.0 * x), 0.25 + 0.15 * x


def lognormal_sample(x, key):
    mu, s = _lognormal(x)
    return jnp.exp(mu + s * jax.random.normal(key))


_Z, _W = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(z) φ(z) dz = Σ w f(z) / √(2π)


def lognormal_exact(x):  # Gauss–Hermite quadrature, exact for these smooth g
    mu, s = _lognormal(x)
    y = jnp.exp(mu + s * _Z)
    return jax.vmap(stats)(y).T @ (_W / np.sqrt(2 * np.pi))


CONDITIONALS = {
    "gamma (skewed)": (gamma_sample, gamma_exact),
    "normal mixture (bimodal)": (mixture_sample, mixture_exact),
    "lognormal (heteroscedastic)": (lognormal_sample, lognormal_exact),
}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - wall, time.process_time() - cpu


def one(name, n, steps, validation):
    sample, exact = CONDITIONALS[name]
    xs = jax.random.uniform(jax.random.key(0), (n,), minval=0.0, maxval=2.0)
    ys = jax.vmap(sample)(xs, jax.random.split(jax.random.key(1), n))
    values = np.asarray(jax.vmap(exact)(HELD_OUT))
    grads = np.asarray(jax.vmap(jax.jacfwd(exact))(HELD_OUT))
    real_keys = jax.random.split(jax.random.key(9), 5000)
    real = jax.vmap(lambda x: jax.vmap(lambda k: sample(x, k))(real_keys))
    flow, wall, cpu = timed(
        lambda: surrogate.fit_flow(
            xs, ys, key=jax.random.key(2), steps=steps, validation=validation, progress=False
        )
    )
    a = surrogate.assess_flow(
        flow, HELD_OUT, stats, values, grads, key=jax.random.key(4), n_samples=20_000,
        real=real(jnp.asarray(HELD_OUT)),
    )  # fmt: skip
    mlp, mlp_wall, mlp_cpu = timed(
        lambda: surrogate.fit(xs, ys, key=jax.random.key(2), steps=2000, width=32, progress=False)
    )
    m = surrogate.assess(mlp, HELD_OUT, values[:, 0], grads[:, 0])
    assert a.ks is not None
    return {
        "conditional": name,
        "pairs": n,
        "steps": steps,
        "validation": validation,
        "flow": {
            "fit_wall_s": round(wall, 1),
            "fit_cpu_s": round(cpu, 1),
            "value_rel": round(a.value_rel, 4),
            "grad_rel": round(a.grad_rel, 4),
            "grad_rel_each_g": [round(float(r), 4) for r in a.grad_rel_each],
            "grad_rel_of_mean": round(float(a.grad_rel_each[0]), 4),
            "grad_max_z": round(a.grad_z, 1),
            "ks_max": round(float(np.max(a.ks)), 4),
            "kept_step": int(flow.best_step) if validation else steps,
        },
        "mlp_conditional_mean": {
            "fit_wall_s": round(mlp_wall, 1),
            "fit_cpu_s": round(mlp_cpu, 1),
            "grad_rel_of_mean": round(m.grad_rel, 4),
        },
        "_flow": flow,
    }


def sampling_cost(flow, sample, n=65_536):
    keys = jax.random.split(jax.random.key(0), n)
    x = jnp.full((n,), 1.0)
    draw_flow = jax.jit(jax.vmap(jax.value_and_grad(lambda k, x: flow.sample(k, x), 1)))
    draw_real = jax.jit(jax.vmap(sample, (0, 0)))
    t_flow = median_seconds(draw_flow, keys, x)
    t_real = median_seconds(lambda k, x: draw_real(x, k), keys, x)
    return {
        "draws": n,
        "flow_draw_and_grad_ns": round(1e9 * t_flow / n, 1),
        "real_draw_ns": round(1e9 * t_real / n, 1),
        "ratio": round(t_flow / t_real, 2),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--validation", type=float, default=0.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for name in CONDITIONALS:
        for n in sizes:
            rows.append(one(name, n, args.steps, args.validation))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "_flow"}), flush=True)
    cost = {
        name: sampling_cost(next(r["_flow"] for r in rows if r["conditional"] == name), s)
        for name, (s, _) in CONDITIONALS.items()
    }
    for r in rows:
        del r["_flow"]
    out = {
        "benchmark": "surrogate",
        "environment": environment(),
        "held_out_x": HELD_OUT.tolist(),
        "statistics": ["y", "y^2", "exp(-y)"],
        "rows": rows,
        "sampling_cost": cost,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
