"""Every public result is one kind of object (issue 22): an `AbstractResult` — an equinox
module whose ``repr`` is its summary — and, where it draws, ``plot(ax=None, ...)``."""

import functools
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import simgrad as sg
from simgrad._result import AbstractResult

# Every public result type, as reached from `simgrad`: a new one is one line here.
# (OptimizeResult, OptimizeHistory and surrogate.Surrogate join when they derive from it.)
RESULTS = [
    "Estimate",
    "adjoint.ODEGradient",
    "adjoint.ConsistencyReport",
    "adjoint.DiffusivityFit",
    "Report",
    "Finding",
    "Cluster",
    "OneSided",
    "TaylorResult",
    "DotProductResult",
    "SweepResult",
    "OptimizeResult",
    "OptimizeHistory",
    "surrogate.Surrogate",
]


def _public(name: str) -> type:
    return functools.reduce(getattr, name.split("."), sg)


@pytest.mark.parametrize("name", RESULTS)
def test_every_result_is_an_abstract_result_with_its_own_summary(name):
    cls = _public(name)
    assert issubclass(cls, AbstractResult) and issubclass(cls, eqx.Module)
    assert not inspect.isabstract(cls), f"{name} does not write summary()"
    # repr is the summary: nothing overrides it, and str falls back to it
    assert cls.__repr__ is AbstractResult.__repr__
    assert cls.__str__ is object.__str__


@pytest.mark.parametrize("name", [n for n in RESULTS if hasattr(_public(n), "plot")])
def test_plot_takes_ax_first_defaulting_to_none(name):
    parameters = list(inspect.signature(_public(name).plot).parameters.values())
    assert parameters[0].name == "self"
    assert parameters[1].name == "ax" and parameters[1].default is None


def test_the_plot_test_covers_the_results_that_draw():
    assert {n for n in RESULTS if hasattr(_public(n), "plot")} >= {
        "adjoint.ConsistencyReport",
        "SweepResult",
    }


def _kink(t, key):
    return jnp.minimum(t**2, 2 * t)


def _summarises(result, *texts):
    text = result.summary()
    assert repr(result) == text == str(result)
    for t in texts:
        assert t in text, (t, text)


def test_check_report_and_its_findings_summarise():
    report = sg.check(_kink, 2.0)
    _summarises(report, "simgrad check: 2 finding(s)", "slope 4 from the left, 2 from the right")
    for f in report.findings:
        _summarises(f, f"[{f.kind}] {f.primitive} at {f.where}", f.remedy)
    # findings are static: no leaves, hashable, equal to themselves
    assert jax.tree.leaves(report.findings) == []
    assert report.findings[0] == report.findings[0] and hash(report.findings[0])
    assert "clean" in repr(sg.check(lambda t, key: jnp.sin(t), 0.3))


def test_a_degenerate_cluster_summarises():
    def eig(t, key):
        return jnp.linalg.eigh(jnp.diag(jnp.array([1.0, 1.0, 2.0])) * t)[0][0]

    (cluster,) = sg.check(eig, 1.5).clusters
    _summarises(cluster, "eigenvalues 0..1", "1.5, 1.5", "gradient of their sum: θ = 2")


def test_one_sided_summarises_the_slopes_and_the_verdict():
    d = sg.one_sided(lambda t: jnp.minimum(t**2, 2 * t), 2.0, 1.0)
    _summarises(d, "value = 4", "slope 4 from the left, 2 from the right", "a kink", "exact")
    smooth = sg.one_sided(jnp.sin, 0.0, 1.0)
    _summarises(smooth, "slope 1 from the left, 1 from the right", "the sides agree")
    root = sg.one_sided(lambda t: jnp.sqrt(t**2), 0.0, 1.0)
    _summarises(root, "not exact", f"note: {root.note}")
    # the numbers are the pytree's leaves; the verdict's text is not
    assert len(jax.tree.leaves(d)) == 3


def test_taylor_and_dot_product_tests_summarise():
    x = jnp.array([0.3, 1.2, -0.4])
    good = sg.taylor_test(lambda x: jnp.sum(jnp.sin(x)), x, jnp.cos(x))
    _summarises(good, "passed", f"rate {good.rate:.2f}")
    bad = sg.taylor_test(lambda x: jnp.sum(jnp.sin(x)), x, jnp.ones(3))
    _summarises(bad, "FAILED", f"rate {bad.rate:.2f}", bad.reason)
    assert len(good.summary().splitlines()) == 2 + len(good.eps)
    dot = sg.dot_product_test(lambda x: jnp.sin(x) * x[::-1], x)
    _summarises(dot, "passed", f"{dot.forward:.10g}", f"relative error {dot.relative_error:.2g}")


def test_inside_a_trace_the_repr_is_equinoxs():
    seen = []

    @jax.jit
    def run(x):
        d = sg.OneSided(value=x, right=x, left=-x)
        seen.append(repr(d))
        return x

    run(1.0)
    assert seen[0].startswith("OneSided(value=") and "slope" not in seen[0]  # not the summary


def test_sweep_summarises_and_plots_into_given_axes():
    digital = lambda t, k: jnp.where(sg.random.normal(k, t, 1.0) > 0.0, 1.0, 0.0)  # noqa: E731
    sweep = sg.smooth_sweep(digital, 0.1, jax.random.key(0), taus=[0.3, 0.1], n_samples=16)
    best = f"tau {sweep.taus[sweep.best]:<8g} {float(sweep.grad[sweep.best]):.6g} ± "
    _summarises(sweep, "best tau 0.", best, "← best")
    ax = Figure().subplots()
    assert sweep.plot(ax, title="digital") is ax
    assert len(ax.lines) >= 2
    with pytest.raises(TypeError, match="1 matplotlib Axes"):
        sweep.plot(list(Figure().subplots(1, 2)))
    assert np.isfinite(sweep.rmse).all()
