"""`sg.gradient` and `Estimate`: statistics, and every misuse named with its fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg

from .helpers import noisy_square


def test_statistics_match_numpy_on_the_per_sample_estimates(key):
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
    assert est.method == "Pathwise()"
    # the pathwise per-sample estimate 2(θ + Z) has standard deviation exactly 2
    assert abs(est.grad_std - 2.0) < 4 * 2.0 / np.sqrt(2 * n)


def test_repr_shows_values_with_error_bars(key):
    est = sg.gradient(noisy_square, 1.5, key, method=sg.Pathwise(), n_samples=100)
    text = repr(est)
    assert "value = " in text and "grad = " in text and " ± " in text


def test_legacy_raw_key_is_accepted():
    est = sg.gradient(noisy_square, 1.0, jax.random.PRNGKey(0), method=sg.Pathwise(), n_samples=10)
    assert est.n_samples == 10


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(n_samples=1), ValueError, "at least 2"),
        (dict(n_samples=2.5), TypeError, "n_samples must be an int"),
        (dict(method=sg.Pathwise), TypeError, "Did you mean method=Pathwise()"),
        (dict(method="pathwise"), TypeError, "method must be an estimator"),
        (dict(key=0), TypeError, "jax.random.key(0)"),
        (dict(key=jax.random.split(jax.random.key(0), 3)), ValueError, "single PRNG key"),
        (dict(theta=1), TypeError, "1.0 instead of 1"),
        (dict(theta=jnp.array([1, 2])), TypeError, "must be floating"),
        (dict(theta={"a": 1.0, "b": "x"}), TypeError, "theta['b']"),
        (dict(theta=float("nan")), ValueError, "not finite"),
        (dict(theta=jnp.asarray(jnp.inf)), ValueError, "theta is not finite"),  # on device
        (dict(theta={}), ValueError, "no parameters"),
        (dict(sim=lambda t, k: jnp.stack([t, t])), ValueError, "shape (2,)"),
        (dict(sim=lambda t, k: (t, t)), ValueError, "one scalar"),
        (dict(sim=lambda t, k: jnp.int32(1)), TypeError, "must return a float"),
        (dict(sim=3.0), TypeError, "sim must be a function"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_bad_input_is_named_with_its_fix(kwargs, error, words):
    args = (
        dict(sim=noisy_square, theta=1.0, key=jax.random.key(0), method=sg.Pathwise(), n_samples=8)
        | kwargs
    )
    with pytest.raises(error) as info:
        sg.gradient(args.pop("sim"), args.pop("theta"), args.pop("key"), **args)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: sg.FiniteDifference(step=0.0), ValueError, "positive"),
        (lambda: sg.FiniteDifference(step=-1e-3), ValueError, "positive"),
        (lambda: sg.FiniteDifference(step=float("inf")), ValueError, "finite"),
        (lambda: sg.FiniteDifference(step="big"), TypeError, "positive float"),
        (lambda: sg.FiniteDifference(scheme="backward"), ValueError, "'central' or 'forward'"),
        (lambda: sg.FiniteDifference(crn=1), TypeError, "True or False"),
        (lambda: sg.Pathwise(mode="sideways"), ValueError, "'reverse' or 'forward'"),
    ],
)
def test_bad_hyperparameters_are_named(make, error, words):
    with pytest.raises(error, match=None) as info:
        make()
    assert words in str(info.value)


def nan_for_some_samples(theta, key):
    u = jax.random.uniform(key, dtype=theta.dtype)
    return jnp.log(u - 0.1) * theta  # NaN whenever u < 0.1


def nan_gradient_only(theta, key):
    return jnp.sqrt(theta - theta)  # value 0, gradient inf at every sample


@pytest.mark.parametrize("method", [sg.Pathwise(), sg.FiniteDifference()])
def test_nonfinite_samples_raise_naming_estimator_and_count(method, key):
    with pytest.raises(sg.SimulationError) as info:
        sg.gradient(nan_for_some_samples, 1.0, key, method=method, n_samples=1000)
    message = str(info.value)
    assert repr(method) in message
    count = int(message.split(" in ")[1].split(" of ")[0])
    assert 60 < count < 140  # about 10% of 1000 samples
    assert "of 1000 samples" in message


def test_nonfinite_gradient_only_says_so(key):
    with pytest.raises(sg.SimulationError, match=r"in 8 of 8 samples \(the gradient only\)"):
        sg.gradient(nan_gradient_only, 1.0, key, method=sg.Pathwise(), n_samples=8)


def test_nonfinite_samples_raise_inside_jit(key):
    @jax.jit
    def grad_at(theta):
        return sg.gradient(
            nan_for_some_samples, theta, key, method=sg.Pathwise(), n_samples=100
        ).grad

    with pytest.raises(Exception, match="NaN or inf"):
        jax.block_until_ready(grad_at(jnp.asarray(1.0)))
