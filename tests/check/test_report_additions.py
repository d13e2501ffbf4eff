"""The HTML report shows what a user looks for first: the source line's text, the direction
of the line plot, the derivative of the mean beside AD's, and why the FD variance jumps."""

import html
import re

import jax
import numpy as np

import simgrad as sg
from simgrad._check._report import mean_derivative


def test_mean_derivative_is_the_mean_of_each_draws_slope():
    """Linear draws a_k·t + b_k: the central differences are exactly a_k."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    ts = np.linspace(-1.0, 1.0, 21)
    t, mean, stderr = mean_derivative(ts, ts[:, None] * a + b, span=3)
    np.testing.assert_allclose(t, ts[3:-3])
    np.testing.assert_allclose(mean, a.mean(), rtol=1e-12)
    np.testing.assert_allclose(stderr, a.std(ddof=1) / np.sqrt(50), rtol=1e-10)


def test_report_shows_source_text_direction_mean_derivative_and_the_jump(tmp_path):
    model = sg.models.DigitalCall()
    report = sg.check(model, model.default_theta(), jax.random.key(0))
    page = open(report.to_html(tmp_path / "r.html", n_samples=16), encoding="utf-8").read()
    finding = report.findings[0]
    source = open(finding.file, encoding="utf-8").read().splitlines()[finding.line - 1].strip()
    assert f"<code class='source'>{html.escape(source)}</code>" in page
    assert "h = the unit step in S0" in page  # the default direction: the first parameter
    assert "derivative of the mean" in page and "AD is biased" in page
    assert re.search(r"straddle\s+a kink or a jump", page)
