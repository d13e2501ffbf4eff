"""The physics cut-and-count toy: the hard analysis has zero gradient; soft histograms give
gradients whose optimum reaches the brute-force scan's significance within 2%."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import simgrad as sg
from simgrad.models import CutAndCount, DiscreteChoice, asimov_significance


def test_asimov_significance_matches_the_single_bin_formula():
    s, b = 10.0, 30.0
    z = np.sqrt(2 * ((s + b) * np.log(1 + s / b) - s))
    np.testing.assert_allclose(asimov_significance(jnp.array([s]), jnp.array([b])), z)
    np.testing.assert_allclose(  # s ≪ b: Z → s / sqrt(b)
        asimov_significance(jnp.array([0.1]), jnp.array([1e4])), 0.1 / 100, rtol=1e-4
    )


def test_hard_analysis_agrees_with_its_closed_form_and_has_zero_gradient(key):
    hard = CutAndCount(n_mc=100_000)
    for theta in (0.0, 1.0):
        # The MC yields are unbiased; Z of them is slightly biased by the MC noise (≈1%).
        np.testing.assert_allclose(hard(theta, key), hard.exact_value(theta), rtol=0.02)
    assert float(jax.grad(hard)(1.0, key)) == 0.0


def test_soft_histogram_optimisation_reaches_the_brute_force_significance(key):
    grid = np.linspace(0.0, 3.0, 31)
    hard = CutAndCount(n_mc=20_000)
    scan_key = jax.random.fold_in(key, 1)
    z_hard = jax.jit(jax.vmap(lambda t: hard(t, scan_key)))(jnp.asarray(grid))
    best_scan = float(z_hard.max())

    soft = CutAndCount(tau=0.1, bandwidth=0.1)
    res = sg.optimize(
        soft,
        0.0,
        key,
        steps=150,
        n_samples=8,
        maximize=True,
        optimizer=optax.adam(0.05),
        progress=False,
    )
    z_found = float(hard(res.theta, scan_key))  # the soft optimum, judged by the hard analysis
    assert z_found > 0.98 * best_scan
    assert abs(float(res.theta) - grid[int(np.argmax(z_hard))]) < 0.3
    # and against the closed form (infinite MC): within 2% of the exact best cut
    exact_best = max(CutAndCount().exact_value(t) for t in grid)
    assert CutAndCount().exact_value(float(res.theta)) > 0.98 * exact_best


def test_gumbel_softmax_choice_bias_vanishes_as_tau_shrinks(key):
    model = DiscreteChoice()
    theta = model.default_theta()
    exact = model.exact_grad(theta)
    errors, budgets = [], []
    for tau in (1.0, 0.2):
        est = sg.gradient(
            DiscreteChoice(tau=tau), theta, key, method=sg.Pathwise(), n_samples=2**15
        )
        errors.append(np.abs(np.asarray(est.grad) - exact).max())
        budgets.append(4 * np.asarray(est.grad_stderr).max())
    assert errors[0] > 10 * budgets[0]  # tau = 1: clearly biased
    assert errors[1] < errors[0] / 5  # tau = 0.2: the bias has mostly gone
    # The hard model's score-function gradient is unbiased: within 4 standard errors.
    sf = sg.gradient(model, theta, key, method=sg.ScoreFunction(), n_samples=2**14)
    assert np.all(np.abs(np.asarray(sf.grad) - exact) < 4 * np.asarray(sf.grad_stderr))
