"""Make the plot of docs/check.md: a kink seen by AD and by `sg.one_sided`, and the
finite-difference variance of the digital call with and without common random numbers.

Run: ``PYTHONPATH=src python docs/plots_check.py`` (writes docs/img/check.png).
"""

import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402
from simgrad._check._report import fd_variance  # noqa: E402

jax.config.update("jax_enable_x64", True)


def main() -> None:
    f = lambda t: jnp.minimum(t**2, 2 * t)  # noqa: E731
    ts = jnp.linspace(1.0, 3.0, 201)
    ad = jax.vmap(jax.grad(f))(ts)
    d = sg.one_sided(f, 2.0, 1.0)

    model = sg.models.DigitalCall()
    report = sg.check(model, model.default_theta(), jax.random.key(0))
    eps = 100.0 * np.logspace(-5, -0.5, 10)
    crn, independent = fd_variance(report, jnp.array([1.0, 0.0]), 4096, eps)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(ts, f(ts), color="C0", label="f(θ) = min(θ², 2θ)")
    left.plot(ts, ad, color="C3", label="AD derivative")
    left.plot([2.0], [float(jax.grad(f)(2.0))], "o", color="C3")
    left.plot([1.8, 2.0], [4.0 - 0.2 * float(d.left), 4.0], "--", color="k", lw=1)
    left.plot([2.0, 2.2], [4.0, 4.0 + 0.2 * float(d.right)], "--", color="k", lw=1,
              label=f"one_sided: {float(d.left):g} left, {float(d.right):g} right")  # fmt: skip
    left.set_xlabel("θ")
    left.set_title("a kink: AD returns 3 at θ = 2")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.loglog(eps, np.where(crn > 0, crn, np.nan), "o-", label="common random numbers")
    right.loglog(eps, independent, "s-", label="independent draws")
    right.set_xlabel("ε (step in S0)")
    right.set_ylabel("variance of central differences")
    right.set_title("digital call: a threshold after a draw")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    fig.tight_layout()
    out = pathlib.Path(__file__).parent / "img" / "check.png"
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
