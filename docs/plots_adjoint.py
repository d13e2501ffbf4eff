"""Draw docs/img/adjoint_convergence.png: both gradients against resolution, three problems.

python docs/plots_adjoint.py
"""

import pathlib

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

jax.config.update("jax_enable_x64", True)

import simgrad as sg  # noqa: E402

CASES = [
    ("heat (central, Euler)", sg.adjoint.HeatProblem(), (16, 32, 64, 128)),
    ("advection (upwind), sine", sg.adjoint.AdvectionProblem(), (64, 128, 256, 512)),
    (
        "superbee, square wave",
        sg.adjoint.AdvectionProblem(scheme="superbee", initial="square"),
        (64, 128, 256, 512),
    ),
]


def main():
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for ax, (title, problem, resolutions) in zip(axes, CASES, strict=True):
        report = sg.adjoint.consistency(problem, problem.default_theta(), resolutions)
        print(f"## {title}\n{report}\n")
        verdict = "consistent" if report.consistent else "inconsistent"
        report.plot(ax, title=f"{title}: {verdict}")
    fig.tight_layout()
    out = pathlib.Path(__file__).parent / "img" / "adjoint_convergence.png"
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
