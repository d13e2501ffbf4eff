"""`Report.claims` and the report's verdict table: which estimator each finding breaks, read
from the same declarations as `Estimate.claim` — and equal to the claim an estimate makes."""

import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg


def threshold_after_draw(theta, key):
    return jnp.where(jax.random.normal(key) + theta > 1.0, 1.0, 0.0)


def smooth(theta, key):
    return (theta + jax.random.normal(key)) ** 2


def gamma_shape(theta, key):
    return jnp.log(sg.random.gamma(key, theta, 1.0))


def host_sin(theta, key):
    shape = jax.ShapeDtypeStruct((), jnp.float32)
    return jax.pure_callback(lambda t: np.sin(t).astype(np.float32), shape, theta)


# MeasureValued() claims what it promises where it runs: on threshold_after_draw (θ + Z, θ
# in no draw's distribution) sg.gradient refuses it, as the score function refuses programs
# it cannot score. Enumerate() claims its rest's (Pathwise()) for continuous randomness.
EXPECTED = {
    threshold_after_draw: {"Pathwise()": "biased", "ScoreFunction()": "unbiased",
                           "Hybrid()": "biased", "StochasticTriples()": "biased",
                           "MeasureValued()": "unbiased", "Enumerate(rest=Pathwise())": "biased",
                           "FiniteDifference()": "biased", "SPSA()": "biased"},
    smooth: {"Pathwise()": "unbiased", "ScoreFunction()": "unbiased", "Hybrid()": "unbiased",
             "StochasticTriples()": "unbiased", "MeasureValued()": "unbiased",
             "Enumerate(rest=Pathwise())": "unbiased", "FiniteDifference()": "approximate",
             "SPSA()": "approximate"},
    gamma_shape: {"Pathwise()": "unbiased", "ScoreFunction()": "unbiased",
                  "Hybrid()": "unbiased", "StochasticTriples()": "unbiased",
                  "MeasureValued()": "unbiased", "Enumerate(rest=Pathwise())": "unbiased",
                  "FiniteDifference()": "biased", "SPSA()": "biased"},
    host_sin: dict.fromkeys(("Pathwise()", "ScoreFunction()", "Hybrid()",
                             "StochasticTriples()", "MeasureValued()",
                             "Enumerate(rest=Pathwise())", "FiniteDifference()", "SPSA()"),
                            "unverified"),
}  # fmt: skip


@pytest.mark.parametrize("sim", EXPECTED, ids=lambda f: f.__name__)
def test_claims_name_what_each_estimator_promises(sim):
    theta = 2.0 if sim is gamma_shape else 0.3
    claims = sg.check(sim, theta).claims()
    assert {name: claim for name, (claim, _) in claims.items()} == EXPECTED[sim]
    for claim, reason in claims.values():
        assert (claim in ("biased", "unverified")) == bool(reason)


@pytest.mark.parametrize("method", [sg.Pathwise(), sg.FiniteDifference()], ids=repr)
def test_the_report_says_what_the_estimate_says(method):
    """The table and the estimate read one declaration: the same claim, the same reason."""
    claim, reason = sg.check(threshold_after_draw, 0.3).claims()[repr(method)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.BiasWarning)
        est = jax.eval_shape(
            lambda t: sg.gradient(threshold_after_draw, t, jax.random.key(0), method=method,
                                  n_samples=8),
            jnp.asarray(0.3),
        )  # fmt: skip
    assert est.claim == claim == "biased"
    assert f"claim: {claim} — {reason}" in est.notes


def test_the_html_report_shows_the_verdict(tmp_path):
    path = sg.check(threshold_after_draw, 0.3).to_html(tmp_path / "r.html", n_samples=16)
    text = pathlib.Path(path).read_text(encoding="utf-8")
    assert "What each estimator promises here" in text
    assert text.count("class='claim-biased'") == 6 and text.count("class='claim-unbiased'") == 2


def test_each_finding_names_the_estimators_it_breaks_the_worst_first(tmp_path):
    def kink_and_threshold(theta, key):  # the kink comes first in the program
        return jnp.abs(theta[1]) + threshold_after_draw(theta[0], key)

    report = sg.check(kink_and_threshold, jnp.array([0.3, 1.0]))
    kinds = [f.kind for f in report.findings]
    assert kinds == ["kink", "threshold"]
    assert report.breaks(report.findings[0]) == []
    assert "ScoreFunction()" not in report.breaks(report.findings[1])
    assert len(report.breaks(report.findings[1])) == 6
    path = report.to_html(tmp_path / "r.html", n_samples=4)
    text = pathlib.Path(path).read_text(encoding="utf-8")
    # the verdict opens the page, and the threshold (6 estimators broken) leads the table
    assert text.index("What each estimator promises here") < text.index("finding(s)</h2>")
    assert text.index("threshold (gt)") < text.index("kink (abs)")
