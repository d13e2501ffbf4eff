"""`sg.gradient` and `Estimate`: statistics, keys, lazy checks, memory, and run-time errors.

Misuse named with its fix is in tests/test_bad_input.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad._engine import estimate

from .helpers import noisy_square


def test_statistics_match_numpy_on_the_per_sample_estimates(key):
    # sample i's key is fold_in(key, i), the same keys as jax.random.split(key, n)
    n = 1000
    est = sg.gradient(noisy_square, 1.5, key, method=sg.Pathwise(), n_samples=n)
    keys = jax.random.split(key, n)
    values = jax.vmap(noisy_square, in_axes=(None, 0))(jnp.asarray(1.5), keys)
    grads = jax.vmap(jax.grad(noisy_square), in_axes=(None, 0))(jnp.asarray(1.5), keys)
    np.testing.assert_allclose(est.value, values.mean(), rtol=1e-12)
    np.testing.assert_allclose(est.value_stderr, values.std(ddof=1) / np.sqrt(n), rtol=1e-12)
    np.testing.assert_allclose(est.grad, grads.mean(), rtol=1e-12)
    np.testing.assert_allclose(est.grad_std, grads.std(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(est.grad_stderr, grads.std(ddof=1) / np.sqrt(n), rtol=1e-12)
    assert est.method == "Pathwise()" and est.grad_bias is None and est.notes == ()
    # the pathwise per-sample estimate 2(θ + Z) has standard deviation exactly 2
    assert abs(est.grad_std - 2.0) < 4 * 2.0 / np.sqrt(2 * n)


def test_repr_shows_values_with_error_bars(key):
    est = sg.gradient(noisy_square, 1.5, key, method=sg.Pathwise(), n_samples=100)
    text = repr(est)
    assert "value = " in text and "grad = " in text and " ± " in text
    assert "truncation" not in text  # unbiased: no truncation estimate


def test_legacy_raw_key_is_accepted():
    est = sg.gradient(noisy_square, 1.0, jax.random.PRNGKey(0), method=sg.Pathwise(), n_samples=10)
    assert est.n_samples == 10 and np.isfinite(float(est.grad))


def test_numpy_integers_are_sizes(key):
    est = sg.gradient(
        noisy_square, 1.0, key, method=sg.Pathwise(), n_samples=np.int64(16), batch_size=np.int32(5)
    )
    assert est.n_samples == 16 and np.isfinite(float(est.grad))


def test_memory_is_bounded_by_batch_size(key):
    # Compiled only: the scratch memory XLA plans for 2**30 samples in chunks of 2**12 is
    # that of one chunk (keys derived per chunk, statistics merged chunk by chunk).
    def scratch(n, batch):
        run = lambda t, k: estimate(  # noqa: E731
            noisy_square, t, k, method=sg.Pathwise(), n_samples=n, batch_size=batch
        )
        compiled = jax.jit(run).lower(jnp.float32(1.0), key).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    chunked = scratch(2**30, 2**12)
    assert chunked < 2**12 * 64  # a few dozen bytes per sample of one chunk
    assert scratch(2**16, None) > 2**16 * 8  # all at once: linear in n


# --- run-time errors: NaN from the simulator -----------------------------------------------


def nan_for_some_samples(theta, key):
    u = jax.random.uniform(key, dtype=theta.dtype)
    return jnp.log(u - 0.1) * theta  # NaN whenever u < 0.1


def nan_gradient_only(theta, key):
    return jnp.sqrt(theta - theta)  # value 0, gradient inf at every sample


@pytest.mark.parametrize("method", [sg.Pathwise(), sg.FiniteDifference()])
def test_nonfinite_samples_raise_naming_estimator_and_count(method, key):
    est = sg.gradient(nan_for_some_samples, 1.0, key, method=method, n_samples=1000)
    # returned at once; the first number read raises, before any wrong number is seen
    with pytest.raises(sg.SimulationError) as info:
        float(est.grad)
    message = str(info.value)
    assert repr(method) in message
    keys = jax.random.split(key, 1000)
    u = jax.vmap(lambda k: jax.random.uniform(k, dtype=jnp.float64))(keys)
    exact = int(np.sum(np.asarray(u) < 0.1))  # the samples whose log is NaN
    assert f"in {exact} of 1000 samples (the value itself in {exact})" in message
    for read in (lambda: est.value, lambda: est.grad_stderr, lambda: repr(est)):
        with pytest.raises(sg.SimulationError):
            read()


def log_above(theta, key):
    return jnp.log(jax.random.uniform(key, dtype=theta.dtype) - theta[0])  # NaN when u < θ


def test_failures_are_counted_at_the_theta_of_the_call(key):
    """The count, made on first reading, reruns the call's own θ: a NumPy θ changed in place
    in between changes nothing."""
    theta = np.array([0.1])
    est = sg.gradient(log_above, theta, key, method=sg.Pathwise(), n_samples=1000)
    theta[0] = -1.0  # no sample would fail here
    keys = jax.random.split(key, 1000)
    u = jax.vmap(lambda k: jax.random.uniform(k, dtype=jnp.float64))(keys)
    exact = int(np.sum(np.asarray(u) < 0.1))
    with pytest.raises(sg.SimulationError, match=f"in {exact} of 1000 samples"):
        est.grad  # noqa: B018


def test_nonfinite_gradient_only_says_so(key):
    est = sg.gradient(nan_gradient_only, 1.0, key, method=sg.Pathwise(), n_samples=8)
    with pytest.raises(sg.SimulationError, match=r"in 8 of 8 samples \(the gradient only\)"):
        est.grad_std  # noqa: B018


def test_nonfinite_samples_raise_inside_jit_and_convert_to_simulation_error(key):
    @jax.jit
    def grad_at(theta):
        return sg.gradient(
            nan_for_some_samples, theta, key, method=sg.Pathwise(), n_samples=100
        ).grad

    with pytest.raises(jax.errors.JaxRuntimeError, match="sg.SimulationError: Pathwise"):
        jax.block_until_ready(grad_at(jnp.asarray(1.0)))
    with pytest.raises(sg.SimulationError, match="NaN or inf in some of 100 samples") as info:
        with sg.simulation_errors():
            jax.block_until_ready(grad_at(jnp.asarray(1.0)))
    assert isinstance(info.value.__cause__, jax.errors.JaxRuntimeError)


def test_nonfinite_theta_on_device_inside_jit(key):
    run = jax.jit(
        lambda t: sg.gradient(noisy_square, t, key, method=sg.Pathwise(), n_samples=8).grad
    )
    with pytest.raises(sg.SimulationError, match="theta is not finite"):
        with sg.simulation_errors():
            jax.block_until_ready(run(jnp.asarray(jnp.nan)))


def test_overflowing_statistics_are_not_blamed_on_samples(key):
    # every sample is finite (3e38 in float32) but their sum overflows
    sim = lambda t, k: t * jnp.float32(3e38)  # noqa: E731
    est = sg.gradient(sim, jnp.float32(1.0), key, method=sg.Pathwise(), n_samples=4)
    with pytest.raises(sg.SimulationError, match="every sample is finite but .* overflowed"):
        float(est.value)


# --- differentiating an estimate by accident ------------------------------------------------


@pytest.mark.parametrize("transform", [jax.grad, jax.jacfwd])
def test_differentiating_an_estimate_names_sg_expectation(transform, key):
    def loss(theta):
        return sg.gradient(noisy_square, theta, key, method=sg.Pathwise(), n_samples=64).value

    with pytest.raises(TypeError, match=r"sg\.expectation"):
        transform(loss)(1.0)

    def closes_over(scale):  # the derivative enters through a closure, not through theta
        sim = lambda t, k: scale * noisy_square(t, k)  # noqa: E731
        return sg.gradient(sim, 1.0, key, method=sg.Pathwise(), n_samples=64).value

    with pytest.raises(TypeError, match=r"sg\.expectation"):
        transform(closes_over)(2.0)
