"""Plots that save to a file draw on their own figure: matplotlib's backend and pyplot's
figures are left as the user had them (a notebook keeps showing its figures)."""

import subprocess
import sys
import textwrap


def test_saving_plots_leaves_the_backend_and_pyplot_alone(tmp_path):
    code = textwrap.dedent("""
        import matplotlib
        matplotlib.use("svg")  # the user's backend, whatever it is
        import matplotlib.pyplot as plt
        import jax, jax.numpy as jnp
        import simgrad as sg

        key = jax.random.key(0)
        sim = lambda t, k: (t + jax.random.normal(k) - 2.0) ** 2
        run = sg.optimize(sim, 0.0, key, steps=3, n_samples=4, progress=False)
        run.plot(path="run.png", exact=2.0)
        digital = lambda t, k: jnp.where(sg.random.normal(k, t, 1.0) > 0.0, 1.0, 0.0)
        sweep = sg.smooth_sweep(digital, 0.1, key, taus=[0.3, 0.1], n_samples=8)
        sweep.plot(path="sweep.png")
        sg.check(digital, 0.1, key).to_html("report.html", n_samples=4)
        print(matplotlib.get_backend(), plt.get_fignums())
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["svg", "[]"]
    for name in ("run.png", "sweep.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 1000


def test_plots_without_matplotlib_say_how_to_install_it(tmp_path):
    """matplotlib is the `plots` extra: the core runs without it, and each plot (a result's,
    the HTML report, the commands that plot) says how to install it."""
    code = textwrap.dedent("""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        import jax
        import simgrad as sg
        from simgrad.cli import app

        key = jax.random.key(0)
        sim = lambda t, k: (t + jax.random.normal(k) - 2.0) ** 2
        run = sg.optimize(sim, 0.0, key, steps=2, n_samples=4, progress=False)
        report = sg.check(sim, 0.1, key)
        for plot in (lambda: run.plot(path="run.png"), lambda: report.to_html("report.html")):
            try:
                plot()
            except ImportError as error:
                print(error)
        app(["check", "anything:sim", "--theta", "1"])
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    message = "plots need matplotlib, which is not installed: pip install 'simgrad[plots]'"
    assert done.returncode == 1, done.stderr[-3000:]
    assert [line.startswith(message) for line in done.stdout.splitlines()] == [True, True]
    assert f"Error: {message}" in done.stderr
    assert not list(tmp_path.iterdir())
