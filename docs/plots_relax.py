"""Draw docs/img/relax-bias-variance.png (sg.smooth_sweep on the digital call) and
docs/img/relax-cut.png (the physics cut: hard scan against the soft optimisation).

    .venv/bin/python docs/plots_relax.py
"""

import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import simgrad as sg  # noqa: E402

IMG = pathlib.Path(__file__).parent / "img"


def bias_variance():
    model = sg.models.DigitalCall()
    theta = model.default_theta()
    taus = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    r = sg.smooth_sweep(
        model, theta, jax.random.key(0), taus, n_samples=2**15, exact=model.exact_grad(theta)
    )
    r.plot(path=IMG / "relax-bias-variance.png", title="digital call: sg.smooth + Pathwise")
    return r


def physics_cut():
    grid = np.linspace(0.0, 3.0, 61)
    hard = sg.models.CutAndCount(n_mc=50_000)
    key = jax.random.key(1)
    z_hard = np.asarray(jax.jit(jax.vmap(lambda t: hard(t, key)))(jnp.asarray(grid)))
    soft = sg.models.CutAndCount(tau=0.1, bandwidth=0.1)
    z_soft = np.asarray(jax.jit(jax.vmap(lambda t: soft(t, key)))(jnp.asarray(grid)))
    res = sg.optimize(
        soft, 0.0, jax.random.key(2), steps=150, n_samples=8, maximize=True,
        optimizer=optax.adam(0.05), progress=False,
    )  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(grid, z_hard, "k-", drawstyle="steps-mid", lw=1, label="hard analysis (scan)")
    ax.plot(grid, z_soft, "C0-", label="soft cut + soft histogram (τ = 0.1)")
    exact = [sg.models.CutAndCount().exact_value(t) for t in grid]
    ax.plot(grid, exact, "C2:", label="hard, infinite MC (closed form)")
    ax.axvline(float(res.theta), color="C1", lw=0.8, label="cut found by sg.optimize (soft)")
    ax.set(xlabel="cut θ (keep y > θ)", ylabel="significance Z")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMG / "relax-cut.png", dpi=90)
    return float(res.theta), float(hard(res.theta, key)), float(z_hard.max())


if __name__ == "__main__":
    r = bias_variance()
    print("best tau", r.taus[r.best], {k: v[r.best] for k, v in r.grad.items()})
    print("physics (theta, Z at soft optimum, best scan Z):", physics_cut())
