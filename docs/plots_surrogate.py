"""Draw docs/img/surrogate-flow.png: the toy hadronisation's leading-hadron momentum, real
against the flow surrogate of docs/surrogate.md, at three parton energies; and the flow's
gradient error of E[g(y) | x] at held-out x against training steps (gamma conditional of
benchmarks/bench_surrogate.py, 20 000 pairs).

    .venv/bin/python docs/plots_surrogate.py
"""

import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simgrad.random as sgr  # noqa: E402
from simgrad import surrogate  # noqa: E402

IMG = pathlib.Path(__file__).parent / "img"
HELD_OUT = np.array([0.15, 0.55, 0.95, 1.35, 1.75])


def hadronise(E, key):  # as in docs/surrogate.md
    k_n, k_z = jax.random.split(key)
    n = 1.0 + sgr.poisson(k_n, 0.4 * E)
    return E * sgr.beta(k_z, 2.0, n)


def distributions(ax):
    E = jax.random.uniform(jax.random.key(10), (10_000,), minval=2.0, maxval=12.0)
    p = jax.vmap(hadronise)(E, jax.random.split(jax.random.key(11), 10_000))
    flow = surrogate.fit_flow(E, p, key=jax.random.key(12), steps=400, progress=False)
    keys = jax.random.split(jax.random.key(0), 20_000)
    bins = np.linspace(0.0, 12.0, 61)
    for i, energy in enumerate([4.0, 8.0, 11.0]):
        real = jax.vmap(hadronise, (None, 0))(energy, keys)
        fake = jax.vmap(flow.sample, (0, None))(keys, energy)
        ax.hist(np.asarray(real), bins, density=True, histtype="step", color=f"C{i}", lw=1.5,
                label=f"E = {energy:g}: real")  # fmt: skip
        ax.hist(np.asarray(fake), bins, density=True, histtype="step", color=f"C{i}", ls="--",
                label="flow")  # fmt: skip
    ax.set(xlabel="leading-hadron momentum", ylabel="density",
           title="toy hadronisation: real (solid) and flow (dashed)")  # fmt: skip
    ax.legend(fontsize=8, ncol=3)


def gradient_error(ax):
    xs = jax.random.uniform(jax.random.key(0), (20_000,), minval=0.0, maxval=2.0)
    ys = jax.random.gamma(jax.random.key(1), 1.5 + xs)

    def exact(x):
        a = 1.5 + x
        return jnp.stack([a, a * (a + 1), 2.0 ** (-a)])

    def g(y):
        return jnp.stack([y, y**2, jnp.exp(-y)])

    values = np.asarray(jax.vmap(exact)(HELD_OUT))
    grads = np.asarray(jax.vmap(jax.jacfwd(exact))(HELD_OUT))
    steps = [250, 500, 1000, 2000, 4000]
    rel = []
    for n in steps:
        flow = surrogate.fit_flow(xs, ys, key=jax.random.key(2), steps=n, progress=False)
        a = surrogate.assess_flow(flow, HELD_OUT, g, values, grads, key=jax.random.key(4))
        rel.append(100 * a.grad_rel_each)
    rel = np.array(rel)
    for j, name in enumerate(["y", "y²", "exp(-y)"]):
        ax.plot(steps, rel[:, j], "o-", label=f"g = {name}")
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.minorticks_off()
    ax.set(xlabel="training steps", ylabel="gradient RMS error (%)",
           title="d/dx E[g(y) | x], y ~ Gamma(1.5 + x), 20 000 pairs")  # fmt: skip
    ax.legend(fontsize=8)
    return dict(zip(steps, rel.round(1).tolist(), strict=True))


def main():
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    distributions(left)
    curve = gradient_error(right)
    fig.tight_layout()
    fig.savefig(IMG / "surrogate-flow.png", dpi=110)
    print(curve)


if __name__ == "__main__":
    main()
