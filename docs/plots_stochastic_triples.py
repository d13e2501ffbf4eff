"""Make docs/img/stochastic-triples.png: the state-dependent random walk, triples vs score.

Left: per-sample standard deviation of d/dp E[X_n²] against the number of steps n (p = 2n)
for stochastic triples and the score function (vanilla and with its best baseline), with
StochasticAD.jl's published triples figures. Right: the estimates with 4σ error bars
against the exact derivative (dynamic programming).

.venv/bin/python docs/plots_stochastic_triples.py
"""

import pathlib

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402

jax.config.update("jax_enable_x64", True)
key = jax.random.key(0)
steps = [10, 25, 50, 100]
methods = {
    "stochastic triples": sg.StochasticTriples(),
    "score function, best baseline (cv)": sg.ScoreFunction(baseline="cv"),
    "score function, vanilla": sg.ScoreFunction(baseline=None),
}
std = {name: [] for name in methods}
rel = {name: [] for name in methods}
for n in steps:
    walk = sg.models.StateDependentWalk(n_steps=n)
    p, exact = walk.default_theta(), walk.exact_grad(walk.default_theta())
    for name, method in methods.items():
        est = sg.gradient(walk, p, key, method=method, n_samples=8192)
        std[name].append(float(est.grad_std))
        rel[name].append(((float(est.grad) - exact) / exact, 4 * float(est.grad_stderr) / exact))

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for (name, values), colour in zip(std.items(), ("C0", "C1", "C3"), strict=True):
    left.loglog(steps, values, "o-", color=colour, label=name)
left.loglog([10, 50, 100], [0.99, 3.42, 6.48], "k+", ms=10, label="StochasticAD.jl (published)")
left.set(
    xlabel="steps n (p = 2n)",
    ylabel="per-sample std of the estimate",
    title="d/dp E[X_n²]: spread of one sample",
)
left.legend(fontsize=8)
for i, ((name, values), colour) in enumerate(zip(rel.items(), ("C0", "C1", "C3"), strict=True)):
    x = np.array(steps) * (1 + 0.06 * (i - 1))
    errors, bars = np.array(values).T
    right.errorbar(x, errors, yerr=bars, fmt="o", color=colour, capsize=3, label=name)
right.axhline(0, color="k", lw=1)
right.set_xscale("log")
right.set(
    xlabel="steps n",
    ylabel="(estimate − exact) / exact, ±4σ",
    title="all unbiased; 8192 samples each",
)
right.legend(fontsize=8)
fig.tight_layout()
out = pathlib.Path(__file__).parent / "img" / "stochastic-triples.png"
fig.savefig(out, dpi=90)
print(out)
