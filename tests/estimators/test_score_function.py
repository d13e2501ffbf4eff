"""ScoreFunction and Hybrid: unbiased against exact answers, variances against closed forms."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad.models import GALLERY

R = sg.random
BASELINES = [None, "mean", "loo", "ema", "cv"]


def per_sample(method, sim, theta, key, n):
    """The per-sample (value, gradient) estimates of a scalar simulator of a scalar θ, as
    `sg.gradient` sees them (the same keys, the estimator's flat view)."""
    keys = jax.random.split(key, n)
    flat = lambda x, k: sim(x[0], k)[None]  # noqa: E731
    run = eqx.filter_jit(lambda x, ks: method.sample_batch(flat, x, ks))
    samples = run(jnp.atleast_1d(jnp.asarray(theta)), keys)
    return samples.value[:, 0], samples.grad[:, 0, 0]


def assert_unbiased(est, exact):
    for got, se, want in zip(
        jax.tree.leaves(est.grad),
        jax.tree.leaves(est.grad_stderr),
        jax.tree.leaves(exact),
        strict=True,
    ):
        assert np.all(np.abs(np.asarray(got) - want) <= 4 * np.asarray(se)), (got, se, want)
        assert np.all(np.asarray(se) > 0)


def assert_variance(g, want):
    """Sample variance of ``g`` equals ``want`` to 4 of its own standard errors."""
    g = np.asarray(g, dtype=float)
    var = g.var(ddof=1)
    se = math.sqrt((np.mean((g - g.mean()) ** 4) - var**2) / g.size)
    assert abs(var - want) < 4 * se, (var, want, se)
    return var


# Mohamed, Rosca, Figurnov & Mnih (JMLR 2020), section 3: x ~ N(1, 1), f(x) = x², ∂/∂μ.
def square_of_normal(mu, key):
    return R.normal(key, mu, 1.0) ** 2


def test_mohamed_score_function_variance_is_30(key):
    _, g = per_sample(sg.ScoreFunction(baseline=None), square_of_normal, 1.0, key, 400_000)
    assert abs(np.mean(g) - 2.0) < 4 * np.std(g) / math.sqrt(g.size)
    assert_variance(g, 30.0)


def test_mohamed_pathwise_variance_is_4(key):
    _, g = per_sample(sg.Pathwise(), square_of_normal, 1.0, key, 100_000)
    assert_variance(g, 4.0)
    est = sg.gradient(square_of_normal, 1.0, key, method=sg.Hybrid(), n_samples=100_000)
    assert float(est.grad_std) ** 2 == pytest.approx(float(np.var(np.asarray(g), ddof=1)), rel=1e-9)


UNBIASED = ["digital", "poisson", "bernoulli", "bandit", "random_walk", "mm1"]


@pytest.mark.parametrize("name", UNBIASED)
def test_score_function_is_unbiased_on_the_gallery(name, key):
    model = GALLERY[name]
    theta = model.default_theta()
    est = sg.gradient(model, theta, key, method=sg.ScoreFunction(), n_samples=2**15)
    assert_unbiased(est, model.exact_grad(theta))
    assert abs(est.value - model.exact_value(theta)) <= 4 * est.value_stderr


@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_gets_the_digital_delta_and_vega(baseline, key):
    model = GALLERY["digital"]
    theta = model.default_theta()
    method = sg.ScoreFunction(baseline=baseline)
    est = sg.gradient(model, theta, key, method=method, n_samples=2**15)
    assert_unbiased(est, model.exact_grad(theta))


def test_pathwise_is_zero_and_wrong_on_the_digital_call(key):
    model = GALLERY["digital"]
    theta = model.default_theta()
    est = sg.gradient(model, theta, key, method=sg.Pathwise(), n_samples=1000)
    assert est.grad["S0"] == 0 and est.grad["sigma"] == 0
    assert model.exact_grad(theta)["S0"] > 0.01


def test_baselines_reduce_variance(key):
    model = GALLERY["poisson"]
    std = {}
    for baseline in (None, "loo", "cv"):
        method = sg.ScoreFunction(baseline=baseline)
        std[baseline] = float(sg.gradient(model, 3.0, key, method=method, n_samples=2**14).grad_std)
    # x²(x/λ - 1) against (x² - E x²)(x/λ - 1): Var drops from 392.0 to 234.0 at λ = 3
    assert std["loo"] < 0.85 * std[None]
    assert std["cv"] < 1.01 * std["loo"]


def test_mean_baseline_is_loo_shrunk_by_n_minus_1_over_n(key):
    n = 10
    f = lambda p, k: R.bernoulli(k, p) * 3.0  # noqa: E731
    mean = sg.gradient(f, 0.4, key, method=sg.ScoreFunction(baseline="mean"), n_samples=n)
    loo = sg.gradient(f, 0.4, key, method=sg.ScoreFunction(baseline="loo"), n_samples=n)
    np.testing.assert_allclose(mean.grad, loo.grad * (n - 1) / n, rtol=1e-12)


def test_ema_baseline_uses_only_previous_samples(key):
    f = lambda p, k: R.bernoulli(k, p) * 3.0  # noqa: E731
    method = sg.ScoreFunction(baseline="ema", ema_decay=0.5)
    values, g = per_sample(method, f, 0.4, key, 4)
    values = np.asarray(values)
    score = np.where(values > 0, 1 / 0.4, -1 / 0.6)
    b = [0.0, values[0], (0.5 * values[0] + values[1]) / 1.5]
    b.append((0.25 * values[0] + 0.5 * values[1] + values[2]) / 1.75)
    np.testing.assert_allclose(g, (values - np.array(b)) * score, rtol=1e-12)


def test_control_variate_coefficient_is_fitted_without_the_sample_itself(key):
    # With one Bernoulli, f is affine in the score: the fitted control variate is perfect.
    model = GALLERY["bernoulli"]
    est = sg.gradient(model, 0.3, key, method=sg.ScoreFunction(baseline="cv"), n_samples=64)
    assert float(est.grad) == pytest.approx(0.1, abs=1e-12)


def test_rao_blackwellisation_drops_draws_that_cannot_reach_the_output(key):
    def with_dead_draw(rate, k):
        _unused = R.bernoulli(jax.random.fold_in(k, 1), rate / 4)
        return R.poisson(k, rate) ** 2

    # `plain` is test_baselines_reduce_variance's first run: its compiled program is reused
    n = 2**14
    plain = sg.gradient(GALLERY["poisson"], 3.0, key, method=sg.ScoreFunction(), n_samples=n)
    rb = sg.gradient(with_dead_draw, 3.0, key, method=sg.ScoreFunction(), n_samples=n)
    np.testing.assert_allclose(rb.grad, plain.grad, rtol=1e-12)
    method = sg.ScoreFunction(rao_blackwell=False)
    raw = sg.gradient(with_dead_draw, 3.0, key, method=method, n_samples=n)
    assert raw.grad_std > 1.05 * rb.grad_std


def test_hybrid_mixes_pathwise_and_score(key):
    def sim(theta, k):
        k1, k2 = jax.random.split(k)
        return R.bernoulli(k1, theta["p"]) * R.normal(k2, theta["mu"], 0.5) ** 2

    theta = {"p": 0.3, "mu": 2.0}  # E = p (mu² + 1/4)
    exact = {"p": 4.25, "mu": 2 * 0.3 * 2.0}
    est = sg.gradient(sim, theta, key, method=sg.Hybrid(), n_samples=2**14)
    assert_unbiased(est, exact)
    sf = sg.gradient(sim, theta, key, method=sg.ScoreFunction(), n_samples=2**14)
    assert_unbiased(sf, exact)
    assert est.grad_std["mu"] < 0.5 * sf.grad_std["mu"]  # pathwise where it can


def test_hybrid_is_pathwise_without_discrete_draws(key):
    model = GALLERY["mm1"]
    h = sg.gradient(model, 2.0, key, method=sg.Hybrid(), n_samples=512)
    p = sg.gradient(model, 2.0, key, method=sg.Pathwise(), n_samples=512)
    np.testing.assert_allclose(h.grad, p.grad, rtol=1e-10)
    np.testing.assert_allclose(h.grad_std, p.grad_std, rtol=1e-10)


def test_draws_in_a_while_loop_use_forward_mode(key):
    def arrivals_before_one(rate, k):  # a Poisson process: E = rate, gradient 1
        def body(c):
            t, n, k = c
            k, sub = jax.random.split(k)
            return t + R.exponential(sub, rate), n + 1.0, k

        zero = jnp.zeros((), rate.dtype)
        return jax.lax.while_loop(lambda c: c[0] < 1.0, body, (zero, zero, k))[1] - 1

    est = sg.gradient(arrivals_before_one, 2.0, key, method=sg.ScoreFunction(), n_samples=8192)
    assert_unbiased(est, 1.0)
    with pytest.raises(ValueError, match="while_loop"):
        sg.gradient(
            arrivals_before_one, 2.0, key, method=sg.ScoreFunction(mode="reverse"), n_samples=8
        )


def test_float32_is_kept(key):
    model = GALLERY["digital"]
    theta = {"S0": jnp.float32(100.0), "sigma": jnp.float32(0.2)}
    est = sg.gradient(model, theta, key, method=sg.ScoreFunction(), n_samples=2**14)
    assert est.grad["S0"].dtype == jnp.float32 and est.value.dtype == jnp.float32
    assert_unbiased(est, model.exact_grad({"S0": 100.0, "sigma": 0.2}))


@pytest.mark.parametrize("baseline", BASELINES)
def test_chunks_have_their_own_baseline_and_no_recompilation(baseline, key):
    # With batch_size, a batch baseline couples the samples of one chunk: the estimate is
    # the mean over chunks of each chunk's own estimator, every chunk unbiased.
    traces = []

    def sim(p, k):
        traces.append(1)
        return (R.bernoulli(k, p) - 0.45) ** 2

    method = sg.ScoreFunction(baseline=baseline)
    chunked = sg.gradient(sim, 0.3, key, method=method, n_samples=96, batch_size=32)
    keys = jax.random.split(key, 96)
    grads = np.concatenate(
        [_per_sample_keys(method, sim, 0.3, keys[i : i + 32]) for i in range(0, 96, 32)]
    )
    np.testing.assert_allclose(chunked.grad, grads.mean(), rtol=1e-12)
    # "cv" is exact here: its spread is pure rounding (~1e-17), so compare on an absolute scale
    np.testing.assert_allclose(chunked.grad_std, grads.std(ddof=1), rtol=1e-10, atol=1e-12)
    if baseline is None:  # independent samples: the same as all at once
        whole = sg.gradient(sim, 0.3, key, method=method, n_samples=96)
        np.testing.assert_allclose(chunked.grad, whole.grad, rtol=1e-12)
    first = len(traces)
    sg.gradient(
        sim, 0.6, jax.random.key(1), method=method, n_samples=96, batch_size=32
    ).raise_if_failed()
    assert len(traces) == first


def _per_sample_keys(method, sim, theta, keys):
    flat = lambda x, k: sim(x[0], k)[None]  # noqa: E731
    run = eqx.filter_jit(lambda x, ks: method.sample_batch(flat, x, ks))
    return np.asarray(run(jnp.atleast_1d(jnp.asarray(theta)), keys).grad[:, 0, 0])


def test_errors_name_the_fix(key):
    method = sg.ScoreFunction()

    def invisible(t, k):  # no random draw at all
        return t**2

    with pytest.raises(ValueError, match=r"no random draws.*sg\.Pathwise"):
        sg.gradient(invisible, 1.0, key, method=method, n_samples=8)

    def direct_only(t, k):  # θ scales Z², which no change of variables puts into a draw
        return t * R.normal(k, 0.0, 1.0) ** 2

    with pytest.raises(ValueError, match=r"depend on theta.*sg\.Pathwise"):
        sg.gradient(direct_only, 1.0, key, method=method, n_samples=8)

    def scaled(t, k):  # θ·Z: scored as X = θZ with density φ(x/θ)/θ, E[X²] = θ², d/dθ = 2θ
        return (t * R.normal(k, 0.0, 1.0)) ** 2

    est = sg.gradient(scaled, 1.5, key, method=method, n_samples=4096)
    assert_unbiased(est, 3.0)

    def moving_support(t, k):
        return R.uniform(k, 0.0, t)

    with pytest.raises(ValueError, match="bounds that depend on theta"):
        sg.gradient(moving_support, 1.0, key, method=method, n_samples=8)
    est = sg.gradient(moving_support, 1.0, key, method=sg.Hybrid(), n_samples=4096)
    assert_unbiased(est, 0.5)

    with pytest.raises(ValueError, match="baseline must be one of"):
        sg.ScoreFunction(baseline="median")
    with pytest.raises(ValueError, match="ema_decay must be in"):
        sg.ScoreFunction(ema_decay=1.0)
    with pytest.raises(ValueError, match="mode must be"):
        sg.Hybrid(mode="sideways")
    with pytest.raises(TypeError, match="rao_blackwell"):
        sg.ScoreFunction(rao_blackwell="yes")


def test_invalid_draw_parameters_are_an_error_not_nan(key):
    def sim(p, k):
        return R.bernoulli(k, p * 4.0)  # p = 0.3 gives 1.2: not a probability

    # checked without host callbacks: the failure surfaces when a number is first read
    with pytest.raises(sg.SimulationError, match=r"p must be in \[0, 1\]"):
        sg.gradient(sim, 0.3, key, method=sg.ScoreFunction(), n_samples=8).raise_if_failed()


def test_registered_and_usable_inside_jit(key):
    from simgrad.estimators import ESTIMATORS

    names = {n for n, m in ESTIMATORS.items() if m.sees_draws and not m.perturbs_theta}
    assert {"score-vanilla", "score-loo", "score-cv", "hybrid"} <= names
    assert sg.ScoreFunction.needs_draw_sites and not sg.Hybrid.needs_draw_sites

    def sim(t, k):
        return R.normal(k, t, 1.0) ** 2 - 1  # E = t², gradient 2t

    method = sg.ScoreFunction()
    grad_at = jax.jit(lambda t: sg.gradient(sim, t, key, method=method, n_samples=256).grad)
    eager = sg.gradient(sim, jnp.asarray(0.3), key, method=method, n_samples=256)
    np.testing.assert_allclose(grad_at(jnp.asarray(0.3)), eager.grad, rtol=1e-9)
