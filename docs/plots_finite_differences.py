"""Make docs/img/finite-differences.png: the step-size trade-off and common random numbers.

.venv/bin/python docs/plots_finite_differences.py
"""

import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402
from simgrad.estimators.finite_difference import default_relative_step  # noqa: E402

jax.config.update("jax_enable_x64", True)
key = jax.random.key(0)
steps = np.logspace(-14, -1, 40)

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))

# Left: error of the difference quotient of exp at θ = 1 against the step, float64.
for scheme, colour in (("forward", "C0"), ("central", "C1")):
    errors = []
    for h in steps:
        est = sg.gradient(
            lambda t, k: jnp.exp(t),
            1.0,
            key,
            method=sg.FiniteDifference(scheme=scheme, step=float(h)),
            n_samples=2,
        )
        errors.append(abs(float(est.grad) - np.e) / np.e)
    left.loglog(steps, errors, "o-", ms=3, color=colour, label=scheme)
    left.axvline(default_relative_step(jnp.float64, scheme), color=colour, ls=":", lw=1)
left.set(xlabel="step h", ylabel="relative error", title="exp'(1): truncation vs rounding")
left.legend(title="scheme (dotted: default step)")

# Right: per-sample standard deviation on the European call's delta, with and without CRN.
model = sg.models.EuropeanCall()
theta = model.default_theta()
noise_steps = np.logspace(-4, 0, 9)
for crn, colour in ((True, "C2"), (False, "C3")):
    stds = []
    for h in noise_steps:
        est = sg.gradient(
            model, theta, key, n_samples=20_000, method=sg.FiniteDifference(step=float(h), crn=crn)
        )
        stds.append(float(est.grad_std["S0"]))
    right.loglog(noise_steps, stds, "o-", color=colour, label=f"crn={crn}")
right.loglog(noise_steps, 15 / noise_steps, "k--", lw=1, label="∝ 1/h")
right.set(
    xlabel="step h", ylabel="per-sample std of ∂/∂S0", title="European call: common random numbers"
)
right.legend()

fig.tight_layout()
out = pathlib.Path(__file__).parent / "img" / "finite-differences.png"
fig.savefig(out, dpi=90)
print(f"wrote {out}")
