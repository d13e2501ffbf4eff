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
    res.plot(path=tmp_path / "run.png", exact=2.0)
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
        (dict(bounds=(1.0, -1.0)), ValueError, "reversed"),
        (dict(bounds=(float("nan"), 1.0)), ValueError, "lower bound is NaN"),
        (dict(optimizer=optax.adam(float("nan"))), ValueError, "NaN setting"),
        (dict(optimizer=optax.adam(jnp.nan)), ValueError, "NaN setting"),
        (dict(optimizer=optax.chain(optax.sgd(0.1), optax.clip(jnp.nan))), ValueError, "NaN"),
        (dict(batch_size=0), ValueError, "batch_size=0"),
        (dict(callback="print"), TypeError, "callback"),
        (dict(checkpoint=3), TypeError, "file path"),
    ],
)
def test_bad_arguments_say_what_to_fix(kwargs, error, words, key):
    args = dict(steps=5, n_samples=8, progress=False) | kwargs
    with pytest.raises(error) as info:
        sg.optimize(gaussian_mean_loss, 0.0, key, **args)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "where, words",
    [
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "missing" / "run.eqx", "does not exist"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "run.eqx", "not a folder"),
    ],
)
def test_a_checkpoint_path_is_checked_before_the_first_step(where, words, key, tmp_path):
    ran = []
    with pytest.raises(ValueError, match=words):
        sg.optimize(
            gaussian_mean_loss,
            0.0,
            key,
            steps=5,
            n_samples=8,
            checkpoint=where(tmp_path),
            callback=lambda i, e: ran.append(i),
            progress=False,
        )
    assert ran == []


# -- any optax optimiser: value, grad and value_fn are passed ------------------------------


def rosenbrock(theta, key):
    """Deterministic: minimum 0 at (1, 1); the key is ignored."""
    x, y = theta["x"], theta["y"]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_lbfgs_reaches_the_rosenbrock_minimum():
    res = sg.optimize(
        rosenbrock,
        {"x": -1.2, "y": 1.0},
        jax.random.key(0),
        steps=60,
        n_samples=2,
        optimizer=optax.lbfgs(),
        progress=False,
    )
    assert abs(float(res.theta["x"]) - 1) < 1e-5 and abs(float(res.theta["y"]) - 1) < 1e-5
    assert float(res.value) < 1e-9


def test_lbfgs_on_a_stochastic_objective_solves_each_steps_sample_average(key):
    res = sg.optimize(
        gaussian_mean_loss, 0.0, key, steps=6, n_samples=256, optimizer=optax.lbfgs(),
        progress=False,
    )  # fmt: skip
    # Each step solves its own sample average (common random numbers), whose minimiser is
    # 2 - mean(z): within 4 standard errors of the optimum 2.
    assert abs(float(res.theta) - 2.0) < 4 * float(res.history.grad_stderr[-1]) / 2


def test_n_evals_counts_the_line_searchs_evaluations(key):
    evaluations = []

    def loss(theta, key):
        x = sg.random.normal(key, theta, 1.0)
        jax.debug.callback(lambda v: evaluations.append(np.size(v)), x)
        return (x - 2.0) ** 2

    res = sg.optimize(loss, 0.0, key, steps=3, n_samples=4, optimizer=optax.lbfgs(),
                      progress=False)  # fmt: skip
    jax.effects_barrier()
    assert res.n_evals == sum(evaluations) > 3 * 4  # the line search's estimates too


def test_reduce_on_plateau_gets_the_value_and_reaches_the_optimum(key):
    optimizer = optax.chain(
        optax.adam(0.2), optax.contrib.reduce_on_plateau(patience=5, factor=0.5)
    )
    res = sg.optimize(
        gaussian_mean_loss, 0.0, key, steps=300, n_samples=256, optimizer=optimizer,
        progress=False,
    )  # fmt: skip
    assert float(optax.tree_utils.tree_get(res.opt_state, "scale")) < 1  # it saw the values
    assert abs(float(res.theta) - 2.0) < 4 * float(res.history.grad_stderr[-1]) / 2


# -- compilation: keyed on the optimiser's settings, independent of the run's length -------


def test_an_equal_new_optimizer_and_another_length_reuse_the_compilation(key):
    from simgrad._optimize import _run_chunk

    run = lambda opt, steps=20: sg.optimize(  # noqa: E731
        gaussian_mean_loss, 0.0, key, steps=steps, n_samples=16, optimizer=opt, progress=False
    )
    first = run(optax.adam(0.0123))
    compiled = _run_chunk._cached._cache_size()
    again = run(optax.adam(0.0123))  # a new object with equal settings
    longer = run(optax.adam(0.0123), steps=300)  # the compiled step does not depend on steps
    assert _run_chunk._cached._cache_size() == compiled
    np.testing.assert_array_equal(first.history.theta, again.history.theta)
    np.testing.assert_array_equal(first.history.theta, longer.history.theta[:20])
    run(optax.adam(0.0124))  # other settings: compiled anew, never shared by mistake
    assert _run_chunk._cached._cache_size() == compiled + 1


# -- run-time failures name the step ----------------------------------------------------


def test_a_simulator_nan_raises_simulation_error_naming_the_step(key):
    def sim(theta, key):  # NaN once theta passes 0.45: at step 5 of sgd(0.1) from 0
        return -theta + 0.0 * jnp.log(0.45 - theta)

    with pytest.raises(sg.SimulationError, match="step 5:.*NaN or inf in 8 of 8"):
        sg.optimize(sim, 0.0, key, steps=20, n_samples=8, optimizer=optax.sgd(0.1),
                    progress=False)  # fmt: skip


def test_a_diverging_optimiser_raises_floating_point_error_naming_the_step(key):
    lr = lambda count: jnp.where(count >= 3, jnp.nan, 0.1)  # noqa: E731
    with pytest.raises(FloatingPointError, match="step 4: theta became non-finite"):
        sg.optimize(gaussian_mean_loss, 0.0, key, steps=10, n_samples=8,
                    optimizer=optax.sgd(lr), progress=False)  # fmt: skip


# -- checkpoints: a fingerprint of the run ------------------------------------------------


def other_loss(theta, key):
    return (sg.random.normal(key, theta, 1.0) - 3.0) ** 2


BASE = dict(steps=4, n_samples=8, progress=False)


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(sim=other_loss), "the simulator differs"),
        (dict(key=jax.random.key(1)), "key differs"),
        (dict(optimizer=optax.adam(0.06)), "the optimizer differs"),
        (dict(optimizer=optax.sgd(0.05)), "the optimizer differs"),
        (dict(n_samples=16), "n_samples differs (saved 8, now 16)"),
        (dict(method=sg.ScoreFunction()), "method differs"),
        (dict(theta0=0.5), "the theta0 differs"),
        (dict(bounds=(-5.0, 5.0)), "the bounds differs"),
        (dict(maximize=True), "maximize differs"),
    ],
)
def test_a_checkpoint_of_a_different_run_is_refused_saying_what_differs(change, words, tmp_path):
    path = tmp_path / "run.eqx"
    run = dict(sim=gaussian_mean_loss, theta0=0.0, key=jax.random.key(0))
    run |= dict(optimizer=optax.adam(0.05), checkpoint=path) | BASE
    sg.optimize(run.pop("sim"), run.pop("theta0"), run.pop("key"), **run)
    other = dict(sim=gaussian_mean_loss, theta0=0.0, key=jax.random.key(0))
    other |= dict(optimizer=optax.adam(0.05), checkpoint=path, resume=True) | BASE | change
    with pytest.raises(sg.CheckpointError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sg.optimize(other.pop("sim"), other.pop("theta0"), other.pop("key"), **other)


def test_a_finished_run_continues_to_more_steps_bit_for_bit(key, tmp_path):
    kwargs = dict(n_samples=16, optimizer=optax.adam(0.05), progress=False)
    whole = sg.optimize(gaussian_mean_loss, 0.0, key, steps=25, **kwargs)
    path = tmp_path / "run.eqx"
    sg.optimize(gaussian_mean_loss, 0.0, key, steps=10, checkpoint=path, **kwargs)
    with pytest.raises(ValueError, match="at step 10, beyond steps=5"):
        sg.optimize(gaussian_mean_loss, 0.0, key, steps=5, checkpoint=path, resume=True,
                    **kwargs)  # fmt: skip
    kwargs["optimizer"] = optax.adam(0.05)  # an equal new object is the same optimiser
    more = sg.optimize(gaussian_mean_loss, 0.0, key, steps=25, checkpoint=path, resume=True,
                       **kwargs)  # fmt: skip
    for a, b in zip(jax.tree.leaves(more.history), jax.tree.leaves(whole.history), strict=True):
        np.testing.assert_array_equal(a, b)
    assert more.n_evals == whole.n_evals


def test_existing_checkpoint_needs_resume_and_matching_run(key, tmp_path):
    path = tmp_path / "run.eqx"
    sg.optimize(gaussian_mean_loss, 0.0, key, steps=5, n_samples=8, checkpoint=path, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        sg.optimize(
            gaussian_mean_loss, 0.0, key, steps=5, n_samples=8, checkpoint=path, progress=False
        )
    with pytest.raises(sg.CheckpointError, match="different run"):
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
