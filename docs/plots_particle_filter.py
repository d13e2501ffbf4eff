"""Make docs/img/particle-filter.png and print the table of docs/applications/particle-filter.md.

The gradient of the log-likelihood of the Gompertz model (20 years, b = 0.55) by the
particle filter, against the Kalman filter's exact one, as the particle count N grows:
the consistent route (pathwise AD through the stop-gradient correction), the naive one
(pathwise with the ancestors held fixed), and the unbiased route (score function on
E[p̂], divided by the estimate of E[p̂], delta-method error bar from 20 batch means).

PYTHONPATH=src .venv/bin/python docs/plots_particle_filter.py   (about 6 minutes of CPU)
"""

import pathlib
import warnings

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402
from simgrad.models.applications import GompertzParticleFilter  # noqa: E402

jax.config.update("jax_enable_x64", True)
warnings.simplefilter("ignore", sg.BiasWarning)  # the pathwise routes are biased: measured here
B, KEY = 0.55, jax.random.key(2)
exact = float(jax.grad(GompertzParticleFilter().exact_log_likelihood)(B))
print(f"exact d log p / db at b = {B}: {exact:.4f} (Kalman filter)")
print("| N | consistent (stop-gradient) | its bias | naive pathwise | unbiased (ratio) |")
print("| --- | --- | --- | --- | --- |")
rows = []
for n_particles in (4, 16, 64, 256):
    pf = GompertzParticleFilter(n_particles=n_particles)
    n = 4000 if n_particles < 256 else 1000
    routes = {}
    for correction in (True, False):
        est = sg.gradient(
            lambda b, k, c=correction, pf=pf: pf.log_likelihood(b, k, correction=c),
            B,
            KEY,
            method=sg.Pathwise(),
            n_samples=n,
        )
        routes[correction] = (float(est.grad), float(est.grad_stderr))
    ratio = "not run"
    if n_particles <= 64:
        batches = [
            sg.gradient(pf.simulator, B, k, method=pf.method(), n_samples=500)
            for k in jax.random.split(KEY, 20)
        ]
        p = np.array([float(e.value) for e in batches])
        g = np.array([float(e.grad) for e in batches])
        r = g.mean() / p.mean()
        r_se = np.std(g - r * p, ddof=1) / np.sqrt(len(p)) / p.mean()
        routes["ratio"] = (r, r_se)
        ratio = f"{r:.2f} ± {r_se:.2f}"
    (sw, sw_se), (naive, naive_se) = routes[True], routes[False]
    rows.append((n_particles, routes))
    print(
        f"| {n_particles} | {sw:.3f} ± {sw_se:.3f} | {sw - exact:+.3f} | "
        f"{naive:.3f} ± {naive_se:.3f} | {ratio} |",
        flush=True,
    )

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ns = np.array([n for n, _ in rows])
for name, label, colour, dx in (
    (True, "pathwise + stop-gradient correction (consistent)", "C0", 1.0),
    (False, "pathwise, ancestors held fixed (naive)", "C3", 1.0),
    ("ratio", "score function on E[p̂], ratio (unbiased route)", "C2", 1.08),
):
    pts = [(n, r[name]) for n, r in rows if name in r]
    x = np.array([n for n, _ in pts]) * dx
    y = np.array([v for _, (v, _) in pts])
    e = np.array([s for _, (_, s) in pts])
    ax.errorbar(x, y, yerr=2 * e, marker="o", color=colour, label=label, capsize=3)
ax.axhline(exact, color="k", ls="--", lw=1, label="exact (Kalman filter)")
ax.set_xscale("log", base=2)
ax.set_xticks(ns, [str(n) for n in ns])
ax.set(
    xlabel="particles N",
    ylabel="∂ log p(y | b) / ∂b at b = 0.55",
    title="Gompertz model, 20 years: log-likelihood gradient (±2 s.e.)",
)
ax.legend(fontsize=8)
fig.tight_layout()
out = pathlib.Path(__file__).parent / "img" / "particle-filter.png"
fig.savefig(out, dpi=110)
print(f"wrote {out}")
