"""Every registered estimator, held to the same contract (STYLE.md item 9).

Against exact answers (to 4 standard errors plus the finite-difference truncation
allowance): θ as a tuple, nested tuples, a list, a dict and an equinox module; vector and
pytree outputs (the Jacobian); float32 and float64 kept; chunks (``batch_size``) that do
not divide ``n_samples``; `jax.jit`, `jax.vmap` over keys and over θ; no recompilation.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import simgrad as sg
from simgrad.estimators import ESTIMATORS

from ..helpers import noisy_square, quadratic_tree, quadratic_tree_grad

DTYPES = [jnp.float32, jnp.float64]


def tolerance(dtype):
    """Relative allowance for deterministic error: ~20 √ε covers forward differences."""
    return 20 * float(jnp.finfo(dtype).eps) ** 0.5


def needs_draw_sites(method) -> bool:
    return method.needs_draw_sites


def assert_within(est, exact, dtype=jnp.float64):
    """Every entry of ``est.grad`` within 4 standard errors (plus rounding and truncation)."""
    assert jax.tree.structure(est.grad) == jax.tree.structure(exact)
    for got, se, want in zip(
        jax.tree.leaves(est.grad), jax.tree.leaves(est.grad_stderr), jax.tree.leaves(exact),
        strict=True,
    ):  # fmt: skip
        got, se, want = np.asarray(got), np.asarray(se), np.asarray(want)
        assert got.shape == want.shape
        slack = tolerance(dtype) * (1 + np.abs(want))
        assert np.all(np.abs(got - want) <= 4 * se + slack), (got, se, want)


# --- θ of every pytree kind, against exact gradients -------------------------------------
# X ~ N(a, 1) through simgrad.random (every estimator sees it); f = X² + 3b + cb:
# E f = a² + 1 + 3b + cb, ∂a = 2a, ∂b = 3 + c, ∂c = b.


class Params(eqx.Module):
    a: jax.Array
    rest: tuple


def f_abc(a, b, c, key):
    return sg.random.normal(key, a, 1.0) ** 2 + 3 * b + c * b


THETAS = {
    # the reported bug: a top-level tuple of floats
    "tuple": ((1.0, 2.0, 0.5), lambda t: t, lambda a, b, c: (a, b, c)),
    # nested tuple inside a list inside a dict inside an equinox module
    "nested": (
        Params(jnp.asarray(1.0), ([2.0], {"c": (0.5,)})),
        lambda t: (t.a, t.rest[0][0], t.rest[1]["c"][0]),
        lambda a, b, c: Params(a, ([b], {"c": (c,)})),
    ),
}


@pytest.mark.parametrize("kind", THETAS)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_pytree_theta_exact_gradient(name, kind, key):
    theta, unpack, pack = THETAS[kind]
    method = ESTIMATORS[name]
    sim = lambda t, k: f_abc(*unpack(t), k)  # noqa: E731
    est = sg.gradient(sim, theta, key, method=method, n_samples=2000)
    a, b, c = (float(v) for v in unpack(theta))
    exact = pack(2 * a, 3 + c, b)
    assert jax.tree.structure(est.grad) == jax.tree.structure(jax.tree.map(jnp.asarray, theta))
    assert_within(est, jax.tree.map(jnp.asarray, exact))
    assert abs(float(est.value) - (a**2 + 1 + 3 * b + c * b)) <= 4 * float(est.value_stderr)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_deterministic_dict_theta_exact_gradient(name, dtype, key):
    theta = {
        "x": jnp.array([0.5, -1.0, 2.0], dtype=dtype),
        "y": jnp.array([0.3, 1.5], dtype=dtype),
    }
    if needs_draw_sites(ESTIMATORS[name]):  # a deterministic program has no draw to score
        with pytest.raises(ValueError, match="Pathwise"):
            sg.gradient(
                quadratic_tree, theta, key, method=ESTIMATORS[name], n_samples=2
            ).raise_if_failed()
        return
    method = ESTIMATORS[name]
    # Random directions (SPSA, Gaussian smoothing) stay random on a deterministic program:
    # unbiased within 4 standard errors; every other estimator is exact with error 0.
    n = 4000 if method.random_directions else 2
    est = sg.gradient(quadratic_tree, theta, key, method=method, n_samples=n)
    exact = quadratic_tree_grad(theta)
    leaves = zip(*map(jax.tree.leaves, (est.grad, est.grad_stderr, exact)), strict=True)
    for got, stderr, want in leaves:
        assert got.dtype == dtype and got.shape == want.shape
        if method.random_directions:
            assert np.all(np.abs(got - want) <= 4 * stderr + 3 * tolerance(dtype))
            assert np.all(stderr > 0)
        else:
            np.testing.assert_allclose(got, want, rtol=tolerance(dtype), atol=tolerance(dtype))
            np.testing.assert_allclose(stderr, 0.0, atol=tolerance(dtype))  # deterministic
    if est.grad_bias is not None:  # the error estimate is small, and of the actual error's order
        parts = zip(*(jax.tree.leaves(t) for t in (est.grad, est.grad_bias, exact)), strict=True)
        for got, bias, want in parts:
            got, bias, want = (np.asarray(a, float) for a in (got, bias, want))
            assert np.all(np.abs(bias) <= 10 * tolerance(dtype) * (1 + np.abs(want)))
            assert np.all(np.abs(got - want) <= 2 * np.abs(bias) + 1e-3 * tolerance(dtype))


# --- vector and pytree outputs: the Jacobian ---------------------------------------------
# X ~ N(a, 1): E[X, X²] = [a, a² + 1], E[bX] = ab.


def moments(theta, key):
    x = sg.random.normal(key, theta["a"], 1.0)
    return {"m": jnp.stack([x, x**2]), "s": theta["b"] * x}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_vector_output_gives_the_jacobian(name, key):
    method = ESTIMATORS[name]
    a, b = 0.7, 2.0
    est = sg.gradient(moments, {"a": a, "b": b}, key, method=method, n_samples=4000)
    exact = {
        "m": {"a": jnp.array([1.0, 2 * a]), "b": jnp.zeros(2)},
        "s": {"a": jnp.asarray(b), "b": jnp.asarray(a)},
    }
    assert_within(est, exact)
    assert est.value["m"].shape == (2,) and est.value_stderr["s"].shape == ()
    np.testing.assert_allclose(
        est.value["m"], [a, a**2 + 1], atol=4 * float(est.value_stderr["m"][1])
    )
    assert est.n_evals == 4000 * method.evals_per_sample(2, 3)
    text = repr(est)
    assert "∂value['m'][1]/∂theta['a'] = " in text and "∂value['s']/∂theta['b'] = " in text


# --- dtypes, compilation, chunks, transformations -----------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_unbiased_on_stochastic_simulator(name, dtype, key):
    theta = jnp.asarray(1.5, dtype=dtype)
    est = sg.gradient(noisy_square, theta, key, method=ESTIMATORS[name], n_samples=4000)
    assert est.grad.dtype == dtype and est.value.dtype == dtype
    assert abs(est.value - 1.5**2) <= 4 * est.value_stderr + tolerance(dtype)
    assert abs(est.grad - 3.0) <= 4 * est.grad_stderr + 3 * tolerance(dtype)
    assert est.n_samples == 4000
    assert est.n_evals == 4000 * ESTIMATORS[name].evals_per_sample(1, 1)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_second_call_does_not_recompile(name, key):
    traces = []

    def sim(theta, key):
        traces.append(1)  # runs only while JAX traces
        return noisy_square(theta, key)

    method = ESTIMATORS[name]
    sg.gradient(sim, jnp.asarray(1.0), key, method=method, n_samples=64).raise_if_failed()
    first = len(traces)
    assert first > 0
    sg.gradient(
        sim, jnp.asarray(2.0), jax.random.key(1), method=method, n_samples=64
    ).raise_if_failed()
    assert len(traces) == first


def per_sample_rows(method, sim, theta, key, n, chunk):
    """Per-sample (value, Jacobian) of every sample straight from the estimator, with the
    keys `sg.gradient` uses (sample i's key is fold_in(key, i)), in chunks as it runs them:
    a batch baseline couples the samples of one chunk. Without one, the samples run in one
    batch (one compilation; a sample agrees with itself in another batch shape to rounding)."""
    x, unravel = ravel_pytree(theta)
    flat = lambda x, k: jnp.atleast_1d(sim(unravel(x), k))  # noqa: E731
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n, dtype=jnp.uint32))
    run = jax.jit(lambda x, keys: method.sample_batch(flat, x, keys))
    chunk = chunk if method.couples_samples else n
    parts = [run(x, keys[i : i + chunk]) for i in range(0, n, chunk)]
    return np.concatenate([p.value for p in parts]), np.concatenate([p.grad for p in parts])


@pytest.mark.parametrize("name", ESTIMATORS)
def test_batch_size_that_does_not_divide_n_samples(name, key):
    # 4000 samples in chunks of 1536: two full chunks and one of 928. Every sample has the
    # same key whatever the chunking, so the results agree to rounding — amplified ε/h-fold
    # by a finite difference's cancellation (of every estimator that differences runs:
    # finite differences, SPSA, smoothing), since XLA may round one sample differently in
    # another batch shape. The unchunked run is test_unbiased_on_stochastic_simulator's
    # (the same simulator, sample count and dtype): its compiled program is reused.
    method = ESTIMATORS[name]
    rtol = tolerance(jnp.float64) if method.evaluations_only else 1e-12
    theta = jnp.asarray(0.7, jnp.float64)  # as there: not weakly typed
    chunked = sg.gradient(noisy_square, theta, key, method=method, n_samples=4000, batch_size=1536)
    values, grads = per_sample_rows(method, noisy_square, theta, key, 4000, 1536)
    np.testing.assert_allclose(chunked.value, values.mean(), rtol=1e-12)
    np.testing.assert_allclose(chunked.grad, grads.mean(), rtol=rtol)
    np.testing.assert_allclose(chunked.grad_std, grads.std(ddof=1), rtol=rtol)
    if not method.couples_samples:
        whole = sg.gradient(noisy_square, theta, key, method=method, n_samples=4000)
        np.testing.assert_allclose(chunked.grad, whole.grad, rtol=rtol)
        np.testing.assert_allclose(chunked.grad_std, whole.grad_std, rtol=rtol)
        assert chunked.notes == ()
    else:  # a batch baseline is defined per chunk: said in the notes
        assert "within each chunk of batch_size=1536" in chunked.notes[0]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_works_under_jit_and_vmap(name, key):
    # jit of vmap over θ of vmap over keys, one compilation: the same numbers as eager calls,
    # to rounding (amplified by the differences of runs of evaluation-only estimators). The
    # eager calls reuse the program that test_unbiased_on_stochastic_simulator compiled (the
    # same simulator, n and dtype).
    method = ESTIMATORS[name]
    rtol = tolerance(jnp.float64) if method.evaluations_only else 1e-12
    run = lambda t, k: sg.gradient(noisy_square, t, k, method=method, n_samples=4000).grad  # noqa: E731
    keys, thetas = jax.random.split(key, 3), jnp.array([0.3, 0.5, 0.9])
    eager = np.array([[float(run(t, k)) for k in keys] for t in thetas])
    batched = jax.jit(jax.vmap(jax.vmap(run, (None, 0)), (0, None)))(thetas, keys)
    np.testing.assert_allclose(batched, eager, rtol=rtol)
