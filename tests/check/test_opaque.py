"""sg.check on code it cannot see into — jax.pure_callback, io_callback, sg.BlackBox: an
"opaque" finding at the call's line, the report unverified (never clean), and the HTML
report rendered from evaluations alone."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import io_callback

import simgrad as sg

SHAPE = jax.ShapeDtypeStruct((), jnp.float64)


def _host_sin(x):
    return np.sin(np.asarray(x, np.float64))


def _line_of(fn, text: str) -> int:
    """The line number of the first line of ``fn`` holding ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def with_pure_callback(t, key):
    y = jax.pure_callback(_host_sin, SHAPE, t)
    return 2.0 * y + t


def with_io_callback(t, key):
    y = io_callback(_host_sin, SHAPE, t)
    return 2.0 * y


def noisy_callback(t, key):
    z = jax.random.normal(key)
    return jax.pure_callback(_host_sin, SHAPE, t + z, vmap_method="sequential")


def callback_and_threshold(t, key):
    y = jax.pure_callback(_host_sin, SHAPE, t)
    return jnp.where(t > 0.5, y, 0.0)


@jax.custom_jvp
def _sin_with_rule(x):
    return jax.pure_callback(_host_sin, SHAPE, x, vmap_method="sequential")


_sin_with_rule.defjvp(lambda p, t: (_sin_with_rule(p[0]), jnp.cos(p[0]) * t[0]))


def callback_with_a_jvp_rule(t, key):
    return _sin_with_rule(t) * t


def callback_theta_does_not_reach(t, key):
    c = jax.pure_callback(_host_sin, SHAPE, jnp.float64(0.3))
    return c * t**2


def black_box_fn(theta, seed):
    return float((theta + np.random.default_rng(seed).normal()) ** 2)


@pytest.mark.parametrize(
    "sim, call",
    [(with_pure_callback, "pure_callback"), (with_io_callback, "io_callback"),
     (noisy_callback, "pure_callback"), (callback_with_a_jvp_rule, "pure_callback")],
    ids=["pure_callback", "io_callback", "noisy", "custom_jvp"],
)  # fmt: skip
def test_a_callback_theta_reaches_is_unverified_at_its_line(sim, call):
    report = sg.check(sim, 0.7)
    assert not report.clean and not report.verified
    (finding,) = report.of_kind("opaque")
    where = _sin_with_rule if sim is callback_with_a_jvp_rule else sim
    assert (finding.primitive, finding.file) == (call, __file__)
    assert finding.line == _line_of(where, f"{call}(_host_sin")
    text = str(report)
    assert "UNVERIFIED" in text and f"{__file__}:{finding.line}" in text
    assert "write the computation in JAX" in finding.remedy
    assert "finite differences" in finding.remedy


def test_ad_s_gradient_is_missing_where_jax_cannot_differentiate_the_callback():
    report = sg.check(with_pure_callback, 0.7)
    assert report.grad is None
    assert any("AD cannot differentiate" in note for note in report.notes)
    # With a custom_jvp around it, AD's gradient is the rule's: d(t sin t) = sin t + t cos t.
    ruled = sg.check(callback_with_a_jvp_rule, 0.7)
    np.testing.assert_allclose(ruled.grad, np.sin(0.7) + 0.7 * np.cos(0.7), rtol=1e-12)


def test_the_callback_and_a_threshold_are_both_reported():
    report = sg.check(callback_and_threshold, 0.7)
    assert set(report.kinds()) == {"opaque", "threshold"}
    (threshold,) = report.of_kind("threshold")
    assert threshold.line == _line_of(callback_and_threshold, "jnp.where")


def test_a_callback_theta_does_not_reach_leaves_the_program_verified():
    report = sg.check(callback_theta_does_not_reach, 0.7)
    assert report.clean and report.verified


def test_a_black_box_is_unverified_at_its_function():
    report = sg.check(sg.BlackBox(black_box_fn, progress=False), 1.5, jax.random.key(1))
    assert not report.clean and not report.verified and report.stochastic
    (finding,) = report.findings
    assert finding.kind == "opaque" and finding.primitive == "sg.BlackBox"
    lines, start = inspect.getsourcelines(black_box_fn)
    assert (finding.file, finding.line, finding.function) == (__file__, start, "black_box_fn")


def test_fd_hazards_refuses_a_black_box_and_says_what_to_use():
    with pytest.raises(TypeError, match=r"sg\.check\(black_box, theta\)"):
        sg.fd_hazards(sg.BlackBox(black_box_fn, progress=False), 1.5)


@pytest.mark.parametrize(
    "sim, theta",
    [(with_pure_callback, 0.7), (with_io_callback, 0.7), (noisy_callback, 0.7),
     (callback_with_a_jvp_rule, 0.7), (sg.BlackBox(black_box_fn, progress=False), 1.5)],
    ids=["pure_callback", "io_callback", "noisy", "custom_jvp", "black_box"],
)  # fmt: skip
def test_the_html_report_renders_an_unverified_program(sim, theta, tmp_path):
    report = sg.check(sim, theta, jax.random.key(2))
    page = open(report.to_html(tmp_path / "r.html", n_samples=8), encoding="utf-8").read()
    assert page.count("src='data:image/png;base64,") == 2
    assert "Unverified" in page and "opaque" in page
    assert 'class="clean"' not in page
    if report.grad is None:
        assert "only the derivative of the mean is drawn" in page
    else:
        assert "AD is biased" in page  # AD's derivative (the custom rule's) is drawn


def test_the_line_plot_of_a_callback_is_its_values():
    """Without AD, the line plot's values are the function's own: 2 sin(t) + t along t."""
    from simgrad._check._report import line_data

    report = sg.check(with_pure_callback, 0.7)
    ts, values, slopes, _ = line_data(report, jnp.ones(1), n_samples=2, n_points=11)
    np.testing.assert_allclose(values, 2 * np.sin(0.7 + ts) + 0.7 + ts, rtol=1e-12)
    assert np.all(np.isnan(slopes))
