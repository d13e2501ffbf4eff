"""`sg.optimize`: reaches known optima within the final standard error; resumes bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simgrad as sg


def gaussian_mean_loss(theta, key):
    """E[(X - 2)²] for X ~ N(θ, 1) = (θ - 2)² + 1: optimum θ = 2, curvature 2."""
    x = sg.random.normal(key, theta, 1.0)
    return (x - 2.0) ** 2


@pytest.mark.parametrize(
    "method", [sg.Pathwise(), sg.FiniteDifference(), sg.ScoreFunction()], ids=repr
)
def test_reaches_the_gaussian_mean_within_the_final_standard_error(method, key):
    res = sg.optimize(
        gaussian_mean_loss,
        0.0,
        key,
        method=method,
        steps=200,
        n_samples=256,
        optimizer=optax.sgd(0.1),
        progress=False,
    )
    # A gradient error δg moves the optimum by δg / curvature.
    tolerance = 4 * float(res.history.grad_stderr[-1]) / 2
    assert abs(float(res.theta) - 2.0) < tolerance
    assert abs(float(res.value) - 1.0) < 4 * float(res.value_stderr) + 0.05
    assert res.history.value.shape == (200,)
    assert res.n_evals == 200 * 256 * method.evals_per_sample(1, 1)


def test_reaches_a_bernoulli_parameter_by_score_function(key):
    # b1, b2 ~ Bernoulli(p): E[(b1 + b2 - 0.8)²] = 2p(1 - p) + 4(p - 0.4)², minimum at p = 0.3,
    # curvature 4. Discrete draws: only the score function sees the dependence on p.
    def loss(p, key):
        b = sg.random.bernoulli(key, p, shape=(2,))
        return (jnp.sum(b) - 0.8) ** 2

    res = sg.optimize(
        loss,
        0.5,
        key,
        method=sg.ScoreFunction(),
        steps=300,
        n_samples=256,
        optimizer=optax.sgd(0.05),
        bounds=(0.01, 0.99),
        progress=False,
    )
    assert abs(float(res.theta) - 0.3) < 4 * float(res.history.grad_stderr[-1]) / 4
    assert not bool(res.history.projected.any())


def test_maximize_ascends(key):
    reward = lambda t, k: -gaussian_mean_loss(t, k)  # noqa: E731
    res = sg.optimize(
        reward,
        0.0,
        key,
        steps=200,
        n_samples=256,
        maximize=True,
        optimizer=optax.sgd(0.1),
        progress=False,
    )
    assert abs(float(res.theta) - 2.0) < 4 * float(res.history.grad_stderr[-1]) / 2


def test_bounds_project_and_are_reported(key):
    res = sg.optimize(
        gaussian_mean_loss,
        0.0,
        key,
        steps=100,
        n_samples=64,
        optimizer=optax.sgd(0.1),
        bounds=(-1.0, 1.5),
        progress=False,
    )
    assert float(res.theta) == 1.5  # the optimum 2 lies outside: the projection holds θ at 1.5
    assert bool(res.history.projected[-1]) and not bool(res.history.projected[0])


def test_pytree_theta_and_history_structure(key):
    def sim(theta, key):
        z = jax.random.normal(key, (2,), dtype=theta["a"].dtype)
        return jnp.sum((theta["a"] + z - jnp.array([1.0, -1.0])) ** 2) + (theta["b"] - 3) ** 2

    theta0 = {"a": jnp.zeros(2), "b": jnp.asarray(0.0)}
    res = sg.optimize(
        sim, theta0, key, steps=300, n_samples=64, optimizer=optax.sgd(0.1), progress=False
    )
    stderr = {k: np.asarray(v[-1]) for k, v in res.history.grad_stderr.items()}
    assert np.all(np.abs(res.theta["a"] - np.array([1.0, -1.0])) < 4 * stderr["a"] / 2)
    assert abs(float(res.theta["b"]) - 3.0) < 1e-6  # no noise in b: converges exactly
    assert res.history.theta["a"].shape == (300, 2)
    assert res.history.grad["b"].shape == (300,)


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_reproduces_the_run_bit_for_bit(key, tmp_path):
    kwargs = dict(steps=30, n_samples=32, optimizer=optax.adam(0.05), progress=False)
    whole = sg.optimize(gaussian_mean_loss, 0.0, key, **kwargs)

    path = tmp_path / "run.eqx"

    def kill_at_17(step, estimate):
        if step == 17:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    with pytest.raises(KeyboardInterrupt):
        sg.optimize(
            gaussian_mean_loss,
            0.0,
            key,
            checkpoint=path,
            checkpoint_every=5,
            callback=kill_at_17,
            **kwargs,
        )
    resumed = sg.optimize(gaussian_mean_loss, 0.0, key, checkpoint=path, resume=True, **kwargs)
    assert np.array_equal(resumed.theta, whole.theta)
    for a, b in zip(jax.tree.leaves(resumed.history), jax.tree.leaves(whole.history), strict=True):
        assert np.array_equal(a, b)


def test_resume_from_a_periodic_checkpoint_after_a_crash(key, tmp_path):
    kwargs = dict(steps=20, n_samples=32, optimizer=optax.adam(0.05), progress=False)
    whole = sg.optimize(gaussian_mean_loss, 0.0, key, **kwargs)
    path = tmp_path / "run.eqx"

    def crash_at_13(step, estimate):
        if step == 13:
            raise Interrupt  # a crash: no save on the way out, the step-10 checkpoint stays

    with pytest.raises(Interrupt):
        sg.optimize(
            gaussian_mean_loss,
            0.0,
            key,
            checkpoint=path,
            checkpoint_every=5,
            callback=crash_at_13,
            **kwargs,
        )
    resumed = sg.optimize(gaussian_mean_loss, 0.0, key, checkpoint=path, resume=True, **kwargs)
    assert np.array_equal(resumed.theta, whole.theta)


def test_plot_writes_a_file(key, tmp_path):
    res = sg.optimize(gaussian_mean_loss, 0.0, key, steps=20, n_samples=16, progress=False)
    res.plot(tmp_path / "run.png", exact=2.0)
    assert (tmp_path / "run.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(optimizer="adam"), TypeError, "optax"),
        (dict(steps=0), ValueError, "steps=0"),
        (dict(n_samples=1), ValueError, "n_samples=1"),
        (dict(resume=True), ValueError, "checkpoint=PATH"),
        (dict(bounds=(3.0, 4.0)), ValueError, "outside bounds"),
        (dict(bounds=(0.0,)), TypeError, "pair"),
        (dict(method=sg.Pathwise), TypeError, "Did you mean"),
    ],
)
def test_bad_arguments_say_what_to_fix(kwargs, error, words, key):
    args = dict(steps=5, n_samples=8, progress=False) | kwargs
    with pytest.raises(error) as info:
        sg.optimize(gaussian_mean_loss, 0.0, key, **args)
    assert words in str(info.value)


def test_existing_checkpoint_needs_resume_and_matching_run(key, tmp_path):
    path = tmp_path / "run.eqx"
    sg.optimize(gaussian_mean_loss, 0.0, key, steps=5, n_samples=8, checkpoint=path, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        sg.optimize(
            gaussian_mean_loss, 0.0, key, steps=5, n_samples=8, checkpoint=path, progress=False
        )
    with pytest.raises(ValueError, match="different run"):
        sg.optimize(
            gaussian_mean_loss,
            0.0,
            key,
            steps=5,
            n_samples=16,
            checkpoint=path,
            resume=True,
            progress=False,
        )
