"""PDE gradients: against exact answers and finite differences, orders of convergence,
the Taylor test on every adjoint, the inconsistent case, and the inverse heat problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.adjoint import AdvectionProblem, HeatProblem, consistency, taylor_test

SMOOTH = {  # problem, resolution, tolerance of the continuous adjoint there (discretisation)
    "heat": (HeatProblem(), 32, 0.01),
    "upwind": (AdvectionProblem(), 256, 0.05),
}


@pytest.fixture(scope="module")
def heat_report():
    problem = HeatProblem()
    return consistency(problem, problem.default_theta(), (16, 32, 64, 128))


@pytest.fixture(scope="module")
def upwind_report():
    problem = AdvectionProblem()
    return consistency(problem, problem.default_theta(), (64, 128, 256, 512))


@pytest.fixture(scope="module")
def superbee_report():
    problem = AdvectionProblem(scheme="superbee", initial="square")
    return consistency(problem, problem.default_theta(), (64, 128, 256, 512))


@pytest.mark.parametrize("name", SMOOTH)
def test_discrete_gradient_matches_finite_differences(name, key):
    problem, n, _ = SMOOTH[name]
    theta = problem.default_theta()
    discrete = problem.discrete_gradient(theta, n)
    fd = sg.gradient(
        lambda th, k: problem.value(th, n), theta, key, method=sg.FiniteDifference(), n_samples=2
    )
    for k in theta:
        assert float(discrete[k]) == pytest.approx(float(fd.grad[k]), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", SMOOTH)
def test_continuous_gradient_matches_finite_differences_up_to_discretisation(name, key):
    """The continuous adjoint is not the gradient of J_h, only close to it: within the
    discretisation error at this resolution (relative to the gradient's size)."""
    problem, n, rtol = SMOOTH[name]
    theta = problem.default_theta()
    continuous = problem.continuous_gradient(theta, n)
    fd = sg.gradient(
        lambda th, k: problem.value(th, n), theta, key, method=sg.FiniteDifference(), n_samples=2
    )
    size = np.linalg.norm([float(v) for v in fd.grad.values()])
    for k in theta:
        assert abs(float(continuous[k]) - float(fd.grad[k])) < rtol * size


@pytest.mark.parametrize("name", SMOOTH)
def test_taylor_rate_of_discrete_gradients(name):
    problem, n, _ = SMOOTH[name]
    theta = {k: jnp.asarray(v) for k, v in problem.default_theta().items()}
    result = taylor_test(
        lambda th: problem.value(th, n), theta, problem.discrete_gradient(theta, n)
    )
    assert result.passed and abs(result.rate - 2) < 0.2, result


def test_taylor_rate_of_continuous_gradient():
    """The continuous adjoint is O(dx²) off the gradient of J_h, which leaves an O(ε dx²)
    term in the remainder: on a fine grid it stays below the O(ε²) term over these steps."""
    problem, n = HeatProblem(), 256
    theta = {k: jnp.asarray(v) for k, v in problem.default_theta().items()}
    result = taylor_test(
        lambda th: problem.value(th, n), theta, problem.continuous_gradient(theta, n), n=4
    )
    assert result.passed and abs(result.rate - 2) < 0.2, result
    # a coarse grid's continuous gradient, off by O(dx²) = 4e-3 relative, fails the same test
    coarse = taylor_test(
        lambda th: problem.value(th, n), theta, problem.continuous_gradient(theta, 8), n=4
    )
    assert not coarse.passed


def test_heat_orders_match_theory(heat_report):
    assert heat_report.consistent
    assert abs(heat_report.discrete_order - 2.0) < 0.2
    assert abs(heat_report.continuous_order - 2.0) < 0.2
    assert heat_report.difference[-1] < 1e-4


def test_upwind_orders_match_theory(upwind_report):
    assert upwind_report.consistent
    assert abs(upwind_report.discrete_order - 1.0) < 0.2
    assert abs(upwind_report.continuous_order - 1.0) < 0.2


def test_limiter_inconsistency_is_detected(superbee_report):
    report = superbee_report
    assert not report.consistent
    assert report.difference_order < 0.5 and "inconsistent" in report.verdict
    assert report.discrete_order < 0.5  # AD through the limiter does not converge
    assert report.continuous_order > 0.7  # the continuous adjoint does
    assert "discrete gradient; the continuous one does" in report.verdict


def test_report_table_and_plot(heat_report, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    text = heat_report.table()
    assert "observed orders" in text and "consistent" in text and str(128) in text
    ax = heat_report.plot()
    ax.figure.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_agreement_to_rounding_is_consistent():
    """A problem whose 'continuous' gradient is its discrete one: difference at rounding."""

    class Same(HeatProblem):
        def continuous_gradient(self, theta, n):
            return self.discrete_gradient(theta, n)

    problem = Same()
    report = consistency(problem, problem.default_theta(), (8, 16, 32))
    assert report.consistent and report.difference_order == float("inf")


def test_inverse_heat_recovers_diffusivity(key):
    problem = HeatProblem()
    true = dict(problem.default_theta(), kappa=0.8)
    n, noise = 32, 0.01
    clean = problem.final_state(true, n)
    observed = clean + noise * jax.random.normal(key, clean.shape)
    fit = sg.adjoint.fit_diffusivity(observed, problem)
    # the error bar follows from the noise: sigma / |du/dkappa|
    du = jax.jacfwd(lambda k: problem.final_state(dict(true, kappa=k), n))(jnp.asarray(0.8))
    predicted = noise / float(jnp.linalg.norm(du))
    assert fit.kappa_stderr == pytest.approx(predicted, rel=0.3)
    assert abs(fit.kappa - 0.8) < 4 * predicted
    assert fit.losses[-1] < fit.losses[0] and fit.grad_norm < 1e-8


def test_inverse_heat_without_noise_is_exact():
    """Same grid as the noisy fit, another start: the compiled fit is reused."""
    problem = HeatProblem()
    observed = problem.final_state(dict(problem.default_theta(), kappa=1.3), 32)
    fit = sg.adjoint.fit_diffusivity(observed, problem, kappa0=0.3)
    assert fit.kappa == pytest.approx(1.3, rel=1e-8)


def test_input_validation():
    heat = HeatProblem()
    theta = heat.default_theta()
    with pytest.raises(TypeError, match="keys"):
        heat.discrete_gradient({"kappa": 1.0}, 16)
    with pytest.raises(ValueError, match="resolution"):
        heat.continuous_gradient(theta, 2)
    with pytest.raises(ValueError, match="kappa_max"):
        heat.value(dict(theta, kappa=5.0), 16)
    with pytest.raises(ValueError, match="not finite"):
        heat.value(dict(theta, a=float("nan")), 16)
    with pytest.raises(ValueError, match="c_max"):
        AdvectionProblem().value({"c": -1.0, "a": 1.0}, 16)
    with pytest.raises(ValueError, match="scheme"):
        AdvectionProblem(scheme="minmod")
    with pytest.raises(ValueError, match="final time"):
        HeatProblem(T=-1.0)
    with pytest.raises(ValueError, match="courant"):
        AdvectionProblem(courant=1.5)
    with pytest.raises(ValueError, match="at least 3"):
        consistency(heat, theta, (16, 32))
    with pytest.raises(ValueError, match="increasing"):
        consistency(heat, theta, (16, 64, 32))
    with pytest.raises(TypeError, match="PDE problem"):
        consistency(sg.adjoint.robertson(), theta, (16, 32, 64))
    with pytest.raises(ValueError, match="interior nodes"):
        sg.adjoint.fit_diffusivity(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="kappa0"):
        sg.adjoint.fit_diffusivity(jnp.ones(15), kappa0=-1.0)


def test_report_without_reference_still_judges_the_difference():
    class NoClosedForm(HeatProblem):
        def exact_gradient(self, theta):
            return None

    problem = NoClosedForm()
    report = consistency(problem, problem.default_theta(), (8, 16, 32))
    assert report.reference is None and report.discrete_error is None
    assert report.consistent and abs(report.difference_order - 2.0) < 0.2
    assert "disc error" not in report.table()
