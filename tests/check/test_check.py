"""sg.check: each kind of defect found at the right line, nothing on smooth programs, the
digital call's remedy, kinks at θ and degenerate eigenvalues against exact answers."""

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad import KINDS

from . import defects

SOURCE = inspect.getsource(defects)


def _marked_lines(fn) -> dict[int, str]:
    """{line number: kind} of the ``# DEFECT: kind`` comments inside ``fn``."""
    lines, start = inspect.getsourcelines(fn)
    marked = {}
    for offset, text in enumerate(lines):
        m = re.search(r"# DEFECT: (\w+)", text)
        if m:
            marked[start + offset] = m.group(1)
    return marked


def _found(report) -> dict[int, set]:
    out: dict[int, set] = {}
    for f in report.findings:
        if f.file is not None and f.file.endswith("defects.py"):
            out.setdefault(f.line, set()).add(f.kind)
    return out


DEFECTIVE = [
    defects.threshold,
    defects.accept_reject,
    defects.rounding,
    defects.integer_cast,
    defects.kinks,
    defects.choices,
    defects.while_trip_count,
    defects.discrete_draws,
    defects.eigen,
    defects.nan_where,
    defects.threshold_in_scan,
]


@pytest.mark.parametrize("fn", DEFECTIVE, ids=lambda f: f.__name__)
def test_each_kind_is_found_at_its_line(fn, key):
    report = sg.check(fn, 0.7, key, max_directions=0)
    found = _found(report)
    for line, kind in _marked_lines(fn).items():
        assert kind in found.get(line, set()), (fn.__name__, line, kind, str(report))
    # Nothing is reported on a line that is not marked (in the user's file).
    assert set(found) <= set(_marked_lines(fn)), str(report)


def test_every_finding_says_what_ad_returns_and_the_remedy(key):
    report = sg.check(defects.kinks, 0.7, key)
    for f in report.findings:
        assert f.ad_returns and f.remedy and f.kind in KINDS


@pytest.mark.parametrize(
    "fn, theta",
    [
        (defects.black_scholes, jnp.array([100.0, 0.2])),
        (lambda t, key: sg.models.EulerDecay()(t, key), 0.5),
        (defects.smooth_ode, 0.3),
        (defects.dead_defect, 1.5),
        (defects.smooth_library, 0.3),
    ],
    ids=["black_scholes", "euler", "smooth_ode", "dead_defect", "smooth_library"],
)
def test_smooth_programs_are_clean(fn, theta, key):
    report = sg.check(fn, theta, key)
    assert report.clean, str(report)
    assert "clean" in str(report)


def test_double_where_is_not_a_nan_risk(key):
    """The remedy for NaN-through-where is not reported as one (its thresholds are real)."""
    report = sg.check(defects.double_where, 0.5, key)
    assert report.findings and not report.of_kind("nan_where")
    assert sg.check(defects.nan_where, 0.5, key).of_kind("nan_where")


def test_only_theta_dependence_is_reported(key):
    """A floor of the noise alone, and max(z, 0) of the noise, are not θ's business —
    but ``t * max(z, 0)`` is smooth in t: nothing to report."""
    assert sg.check(defects.theta_free_defect, 1.0, key).clean


def test_digital_call_threshold_downstream_of_a_draw_names_the_score_function(key):
    model = sg.models.DigitalCall()
    report = sg.check(model, model.default_theta(), key)
    (finding,) = report.findings
    assert finding.kind == "threshold" and finding.primitive == "gt"
    assert finding.file.endswith("digital.py") and finding.function == "DigitalCall.__call__"
    source = inspect.getsource(sg.models.digital).splitlines()
    assert "log_st >" in source[finding.line - 1]
    assert finding.random and "score function" in finding.remedy and "unbiased" in finding.remedy
    assert report.stochastic


def test_kink_at_theta_reports_both_exact_slopes_and_the_tie():
    report = sg.check(lambda t, key: jnp.minimum(t**2, 2 * t), 2.0)
    (kink,) = report.of_kind("kink_at_theta")
    assert kink.detail == "slope 4 from the left, 2 from the right along θ[0]; AD returns 3"
    (static,) = report.of_kind("kink")
    assert (kink.primitive, kink.file, kink.line) == ("min", static.file, static.line)
    # Of three kinks, the one tied at θ = 1 is named: |θ - 1| (line 1 of `kinks`).
    report = sg.check(defects.kinks, 1.0)
    (kink,) = report.of_kind("kink_at_theta")
    (abs_line,) = [n for n, kind in _marked_lines(defects.kinks).items()][:1]
    assert (kink.primitive, kink.line) == ("abs", abs_line)
    # Away from the kink the static finding stays, the measured one goes.
    assert not sg.check(lambda t, key: jnp.minimum(t**2, 2 * t), 1.5).of_kind("kink_at_theta")


def test_degenerate_eigenvalues_offer_the_gradient_of_the_cluster_sum():
    """A(t) = [[t, s], [s, 2 - t]] + I has eigenvalues 2 ± sqrt((t - 1)² + s²), equal at
    t = 1, s = 0. The cluster's sum is 4 - its gradient is exactly (0, 0); each eigenvalue
    alone is not differentiable there."""

    def sim(theta, key):
        t, s = theta[0], theta[1]
        a = jnp.array([[t + 1.0, s], [s, 3.0 - t]])
        w, _ = jnp.linalg.eigh(a)
        return w[0]

    report = sg.check(sim, jnp.array([1.0, 0.0]))
    (cluster,) = report.clusters
    assert cluster.indices == (0, 1)
    np.testing.assert_allclose(cluster.eigenvalues, [2.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(cluster.grad_sum, [0.0, 0.0], atol=1e-12)
    assert report.of_kind("degenerate_eigenvalues")
    assert "symmetric function" in report.of_kind("degenerate_eigenvalues")[0].remedy
    # Off the degeneracy: eigen risk noted statically, nothing measured.
    far = sg.check(sim, jnp.array([1.5, 0.3]))
    assert far.of_kind("eigen") and not far.clusters


def test_cluster_sum_gradient_matches_the_trace_formula():
    """d/dθ (λ1 + λ2) for a 3×3 A(θ) with a double eigenvalue: tr(P ∂A), exactly."""
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(3), (3, 3)))[0]

    def sim(theta, key):
        d = jnp.array([1.0 + theta[0], 1.0 + theta[1] ** 2, 5.0 * theta[2]])
        w, _ = jnp.linalg.eigh(q @ jnp.diag(d) @ q.T)
        return w[2]

    report = sg.check(sim, jnp.array([0.0, 0.0, 1.0]))
    (cluster,) = report.clusters
    assert cluster.indices == (0, 1)
    np.testing.assert_allclose(cluster.grad_sum, [1.0, 0.0, 0.0], atol=1e-10)


def test_check_validates_its_input(key):
    with pytest.raises(TypeError, match="sim must be a function"):
        sg.check(3.0, 1.0, key)
    with pytest.raises(TypeError, match="theta must be"):
        sg.check(defects.threshold, 1, key)
    with pytest.raises(ValueError, match="must return a scalar"):
        sg.check(lambda t, k: jnp.stack([t, t]), 1.0, key)
    with pytest.raises(ValueError, match="unknown kind"):
        sg.check(defects.threshold, 1.0, key).of_kind("nope")


def test_kink_at_theta_names_the_kink_acting_along_each_direction():
    """|θ0| and max(θ1, 0) both tie at 0: along θ[0] the kink is the abs, along θ[1] the max
    (not the first tied kink for both)."""

    def sim(theta, key):
        a = jnp.abs(theta[0])
        b = jnp.maximum(theta[1], 0.0)
        return a + 2.0 * b

    report = sg.check(sim, jnp.zeros(2))
    first = inspect.getsourcelines(sim)[1]
    along = {f.detail.split("along ")[1].split(";")[0]: f for f in report.of_kind("kink_at_theta")}
    assert (along["θ[0]"].primitive, along["θ[0]"].line) == ("abs", first + 1)
    assert (along["θ[1]"].primitive, along["θ[1]"].line) == ("max", first + 2)
    assert along["θ[0]"].detail.startswith("slope -1 from the left, 1 from the right")
    assert along["θ[1]"].detail.startswith("slope 0 from the left, 2 from the right")


def test_a_custom_vjp_function_is_checked_through_its_computation_and_said_so():
    @jax.custom_vjp
    def ramp(x):
        return jnp.maximum(x, 0.0)

    ramp.defvjp(lambda x: (ramp(x), x), lambda x, g: (jnp.where(x > 0, g, 0.0),))
    report = sg.check(lambda t, key: ramp(t - 1.0) * 3.0, 1.0)
    (kink,) = report.of_kind("kink_at_theta")
    assert kink.primitive == "max" and kink.detail.startswith("slope 0 from the left, 3 from")
    assert "AD returns 0" in kink.detail  # the custom rule's, in reverse mode
    assert any("custom_vjp" in note for note in report.notes) and "note:" in str(report)


def test_check_refuses_a_non_finite_theta_or_output_naming_the_leaf(key):
    with pytest.raises(ValueError, match=r"theta\['b'\]\[1\] holds nan"):
        sg.check(lambda t, k: t["a"] + jnp.sum(t["b"]), {"a": 1.0, "b": jnp.array([0.0, jnp.nan])})
    with pytest.raises(ValueError, match="theta holds inf"):
        sg.check(defects.threshold, jnp.inf, key)
    with pytest.raises(ValueError, match="finite output"):
        sg.check(lambda t, k: jnp.log(t - 1.0), 1.0, key)
    with pytest.raises(ValueError, match="empty"):
        sg.check(lambda t, k: jnp.sum(t), jnp.zeros(0), key)


def test_nan_at_theta_reaches_the_html_report_and_the_taylor_verdict(tmp_path):
    report = sg.check(lambda t, key: jnp.sqrt(t**2) + t, 0.0)
    (finding,) = report.findings
    assert finding.kind == "nan_at_theta" and finding.primitive == "sqrt"
    assert np.isnan(report.grad) and not report.clean
    page = pathlib.Path(report.to_html(tmp_path / "nan.html", n_samples=2)).read_text()
    assert "Taylor test failed: the gradient is not finite" in page and "Clean" not in page


def test_a_jitted_helper_called_twice_is_two_places():
    """_ramp(t - 1) + _ramp(2t - 2) at t = 1: both calls of one jitted max tie; the sides are
    0 and 1 + 2 = 3 (this used to raise IndexError in the tie test)."""
    from . import corpus

    report = sg.check(corpus.shared_jit_helper, 1.0)
    (kink,) = report.of_kind("kink_at_theta")
    assert kink.primitive == "max" and kink.line == inspect.getsourcelines(corpus._ramp)[1] + 2
    assert kink.detail.startswith("slope 0 from the left, 3 from the right along θ[0]")
