"""`sg.BlackBox`: simulators not written in JAX, through every evaluation-only estimator, in
this process, on a process pool and on a Dask cluster; seeds, a killed worker, errors.

One instrumented black box (`blackbox_sims.Probe`) serves most tests, so that each
estimator compiles once for the whole module.
"""

import collections
import concurrent.futures
import functools
import logging
import multiprocessing
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import simgrad as sg

from . import blackbox_sims as sims

KEY = jax.random.key(11)
THETA = {"x": np.array([0.5, -1.0]), "w": {"y": 0.7}}  # nested: an array and a float
N = 300
PROBE = sims.Probe()
BOX = sg.BlackBox(PROBE, progress=False)

METHODS = {
    "fd-central": sg.FiniteDifference(),
    "fd-forward": sg.FiniteDifference(scheme="forward"),
    "fd-independent": sg.FiniteDifference(crn=False, step=0.05),
    "spsa": sg.SPSA(),
    "smoothing": sg.GaussianSmoothing(sigma=0.3),
}


@functools.cache
def in_process(name):
    return sg.gradient(BOX, THETA, KEY, method=METHODS[name], n_samples=N)


def sample_seed(i: int) -> int:
    """The seed of sample ``i``, as `sg.BlackBox` documents it."""
    return sg.BlackBox.seed(jax.random.fold_in(KEY, i))


@pytest.fixture
def probe():
    PROBE.__init__()
    yield PROBE
    PROBE.__init__()


@pytest.fixture(scope="module")
def pool():
    # spawn: forking a process that runs JAX's threads is unsafe
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        yield pool


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.mark.parametrize("name", METHODS)
def test_each_estimator_recovers_the_closed_form_gradient(name):
    est = in_process(name)
    sigma = METHODS[name].sigma if name == "smoothing" else 0.0  # its bias: the smoothing
    value, grad = sims.quadratic_exact(THETA, sigma)
    assert jax.tree.structure(est.grad) == jax.tree.structure(THETA)
    # + 0.01: the O(h²) bias of the mean of runs at θ ± h that FD reports as the value
    assert abs(est.value - value) <= 4 * est.value_stderr + 0.01
    leaves = map(jax.tree.leaves, (est.grad, est.grad_stderr, grad))
    for got, stderr, want in zip(*leaves, strict=True):
        assert np.all(np.abs(got - want) <= 4 * stderr + 1e-6), name
        assert np.all(stderr > 0)
    assert est.n_samples == N and est.n_evals == N * METHODS[name].evals_per_sample(3, 1)
    assert est.method == repr(METHODS[name])


@pytest.mark.parametrize("executor", ["pool", "client"])
@pytest.mark.parametrize("name", METHODS)
def test_every_executor_gives_the_in_process_estimate_exactly(name, executor, request):
    executor = request.getfixturevalue(executor)
    est = sg.gradient(BOX, THETA, KEY, method=METHODS[name], n_samples=N, executor=executor)
    for got, want in zip(jax.tree.leaves(est), jax.tree.leaves(in_process(name)), strict=True):
        assert np.array_equal(got, want)


def test_a_worker_killed_mid_run_loses_nothing(client, probe, tmp_path):
    uninterrupted = in_process("spsa")  # before arming the probe: it would kill this process
    probe.kill_marker = str(tmp_path / "killed")
    box = sg.BlackBox(PROBE, chunk_size=10, progress=False)  # 60 tasks
    est = sg.gradient(box, THETA, KEY, method=METHODS["spsa"], n_samples=N, executor=client)
    assert (tmp_path / "killed").exists()  # a worker did kill itself, mid-run
    for got, want in zip(jax.tree.leaves(est), jax.tree.leaves(uninterrupted), strict=True):
        assert np.array_equal(got, want)


def test_seeds_are_the_sample_keys_and_shared_by_the_runs_of_a_sample(probe):
    seeds = [sample_seed(i) for i in range(N)]
    # central differences: θ, θ ± h and θ ± 2h (the truncation estimate) in 3 coordinates
    for name, runs in (("fd-central", 13), ("spsa", 2), ("smoothing", 2)):
        probe.seen.clear()
        sg.gradient(BOX, THETA, KEY, method=METHODS[name], n_samples=N)
        seen, expected = collections.Counter(probe.seen), collections.Counter(seeds * runs)
        assert not expected - seen, name  # one seed per sample, every run
        extra = seen - expected  # and once per call, the seed check repeats one run
        assert sum(extra.values()) == 1 and set(extra) <= set(seeds), name
    probe.seen.clear()
    sg.gradient(BOX, THETA, KEY, method=METHODS["fd-independent"], n_samples=N)
    assert len(set(probe.seen)) == 13 * N and not set(probe.seen) & set(seeds)
    assert all(0 <= s < 2**63 for s in probe.seen)


@jax.jit
def grad_in_jit(theta):
    method = METHODS["spsa"]
    return sg.gradient(BOX, theta, KEY, method=method, n_samples=N, batch_size=64).grad


def test_works_inside_jit_in_batches():
    got = grad_in_jit(jax.tree.map(np.asarray, THETA))
    for a, b in zip(*map(jax.tree.leaves, (got, in_process("spsa").grad)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_inside_jit_a_failure_still_names_its_seed(probe):
    probe.raise_every = 5
    with pytest.raises(Exception, match=r"ValueError: boom[\s\S]*seed="):
        grad_in_jit(jax.tree.map(np.asarray, THETA))


def test_optimize_a_black_box_and_resume_on_a_cluster(client, tmp_path):
    box = sg.BlackBox(sims.square_loss, progress=False)
    kwargs = dict(
        method=sg.SPSA(step=0.1), steps=24, n_samples=16, optimizer=optax.sgd(0.1), progress=False
    )
    whole = sg.optimize(box, 0.0, KEY, **kwargs)
    assert abs(float(whole.theta) - 2.0) < 0.3  # E = (θ - 2)² + 1
    assert whole.n_evals == 24 * 16 * 2

    class Crash(Exception):
        pass

    def crash_at_13(step, estimate):
        if step == 13:
            raise Crash

    path = tmp_path / "run.eqx"
    with pytest.raises(Crash):
        sg.optimize(
            box, 0.0, KEY, checkpoint=path, checkpoint_every=5, callback=crash_at_13, **kwargs
        )
    resumed = sg.optimize(box, 0.0, KEY, checkpoint=path, resume=True, executor=client, **kwargs)
    for a, b in zip(jax.tree.leaves(resumed.history), jax.tree.leaves(whole.history), strict=True):
        assert np.array_equal(a, b)


def test_an_exception_in_fn_names_theta_and_seed_and_reproduces(probe):
    probe.raise_every = 5
    with pytest.raises(sg.SimulationError, match=r"fn raised ValueError: boom") as info:
        sg.gradient(BOX, THETA, KEY, method=METHODS["spsa"], n_samples=N)
    error = info.value
    assert f"seed={error.seed}" in str(error) and "theta=" in str(error)
    assert isinstance(error.__cause__, ValueError)
    with pytest.raises(ValueError, match="boom"):
        PROBE(error.theta, error.seed)
    i = int(str(error).split("sample ")[1].split(" of")[0])
    assert error.seed == sample_seed(i)


def test_an_exception_on_a_worker_carries_its_traceback(client, probe):
    probe.raise_every = 5
    with pytest.raises(sg.SimulationError, match="seed=") as info:
        sg.gradient(BOX, THETA, KEY, method=METHODS["spsa"], n_samples=N, executor=client)
    assert "The traceback of fn" in str(info.value) and "raise ValueError" in str(info.value)


def test_a_nan_result_names_its_sample(probe):
    probe.odd_seed, probe.output = sample_seed(5), float("nan")
    with pytest.raises(sg.SimulationError, match="fn returned nan") as info:
        sg.gradient(BOX, THETA, KEY, method=METHODS["fd-central"], n_samples=N)
    assert f"sample 5 of {N}" in str(info.value) and info.value.seed == sample_seed(5)


@pytest.mark.parametrize("output", [np.ones(2), "x", None])
def test_an_output_that_is_not_one_float_is_named(output, probe):
    probe.odd_seed, probe.output = sample_seed(0), output
    with pytest.raises(sg.SimulationError, match="fn must return one float"):
        sg.gradient(BOX, THETA, KEY, method=METHODS["spsa"], n_samples=N)


class _BrokenPool(concurrent.futures.Executor):
    """What a process pool does after one of its processes died."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        future.set_exception(concurrent.futures.process.BrokenProcessPool("terminated"))
        return future


POOL = "the process pool fixture"


@pytest.mark.parametrize(
    "fn, method, executor, error, words",
    [
        (PROBE, sg.Pathwise(), None, TypeError, "sg.SPSA()"),
        (PROBE, sg.ScoreFunction(), None, TypeError, "sg.FiniteDifference()"),
        (PROBE, sg.StochasticTriples(), None, TypeError, "GaussianSmoothing"),
        (PROBE, sg.Pathwise, None, TypeError, "Did you mean"),
        (PROBE, sg.SPSA(), "cluster", TypeError, "concurrent.futures.Executor"),
        (PROBE, METHODS["spsa"], _BrokenPool(), sg.SimulationError, "worker process died"),
        (lambda t, s: 0.0, sg.SPSA(), POOL, sg.SimulationError, "picklable"),
    ],
)
def test_misuse_is_named_with_its_fix(fn, method, executor, error, words, request):
    if executor == POOL:
        executor = request.getfixturevalue("pool")  # a real pool, which must pickle fn
    box = sg.BlackBox(fn, progress=False)
    with pytest.raises(error) as info:
        sg.gradient(box, THETA, KEY, method=method, n_samples=N, executor=executor)
    assert words in str(info.value)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="fn must be a function"):
        sg.BlackBox(3.0)
    with pytest.raises(ValueError, match="chunk_size"):
        sg.BlackBox(PROBE, chunk_size=0)
    with pytest.raises(TypeError, match="progress"):
        sg.BlackBox(PROBE, progress="yes")
    with pytest.raises(TypeError, match="executor= runs the evaluations of an sg.BlackBox"):
        sg.gradient(lambda t, k: t, 1.0, KEY, method=sg.SPSA(), n_samples=4, executor=object())


def test_progress_bar_counts_the_evaluations(capsys):
    sg.gradient(sg.BlackBox(PROBE), THETA, KEY, method=METHODS["spsa"], n_samples=N)
    err = capsys.readouterr().err
    assert "evaluating" in err and f"{2 * N}/{2 * N}" in err


def test_importing_simgrad_imports_neither_dask_nor_simpy():
    code = "import sys, simgrad; print(sorted({'dask', 'distributed', 'simpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_simpy_queue_matches_queueing_theory():
    queue = sg.models.MM1SimPy(n_customers=20)
    theta = queue.default_theta()
    box = sg.BlackBox(queue, progress=False)
    est = sg.gradient(box, theta, KEY, method=sg.SPSA(), n_samples=400)
    assert abs(est.value - queue.exact_value(theta)) <= 4 * est.value_stderr + 1e-4
    for name, want in queue.exact_grad(theta).items():
        assert abs(est.grad[name] - want) <= 4 * est.grad_stderr[name], name
    # the JAX Lindley recursion of the same queue has the same answer in mu
    assert queue.exact_grad(theta)["mu"] == sg.models.MM1Queue().exact_grad(theta["mu"])
