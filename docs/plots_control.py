"""Make docs/img/control-side-by-side.png: REINFORCE against pathwise on the same task.

.venv/bin/python docs/plots_control.py
"""

import pathlib

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simgrad.models.applications import APPLICATIONS  # noqa: E402

jax.config.update("jax_enable_x64", True)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, colour in (("control-reinforce", "C3"), ("control-pathwise", "C0")):
    application = APPLICATIONS[name]
    result = application.run(jax.random.key(0), progress=False)
    steps = np.arange(result.n_steps)
    label = "REINFORCE (score, LOO baseline)" if "reinforce" in name else "pathwise"
    left.plot(steps, np.asarray(result.history.theta), color=colour, label=label)
    std = np.asarray(result.history.grad_stderr) * np.sqrt(application.n_samples)
    right.semilogy(steps, std, color=colour, label=label)
left.axhline(
    APPLICATIONS["control-pathwise"].optimum(),
    color="k",
    ls="--",
    lw=1,
    label="optimum k* (closed form)",
)
left.set(xlabel="step", ylabel="feedback gain k", title="the same task, two estimators")
left.legend(fontsize=8)
right.set(
    xlabel="step", ylabel="per-sample std of ∂E[reward]/∂k", title="gradient noise per sample"
)
right.legend(fontsize=8)
fig.tight_layout()
out = pathlib.Path(__file__).parent / "img" / "control-side-by-side.png"
fig.savefig(out, dpi=90)
print(f"wrote {out}")
