"""`sg.BlackBox` that misbehaves: runs that hang (``timeout=``), Ctrl-C, an ``fn`` that
ignores its seed, failures inside `sg.optimize` and a user's ``jit``; and black boxes in
`sg.expectation`. Each hanging run sleeps 30 s: the tests check that the call returns long
before."""

import concurrent.futures
import multiprocessing
import os
import signal
import time

import jax
import numpy as np
import optax
import pytest

import simgrad as sg

from . import blackbox_sims as sims

KEY = jax.random.key(3)
SPSA = sg.SPSA(step=0.1)


@pytest.fixture(scope="module")
def pool():
    context = multiprocessing.get_context("spawn")  # forking a JAX process is unsafe
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        yield pool


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt here, as in a terminal (whatever the runner set)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("executor", [None, "pool"])
def test_a_run_past_its_timeout_is_stopped_and_named(executor, request):
    executor = executor and request.getfixturevalue(executor)
    box = sg.BlackBox(sims.sleeps, timeout=0.5, progress=False)
    start = time.monotonic()
    with pytest.raises(sg.SimulationError, match=r"did not return within timeout=0\.5 s") as info:
        sg.gradient(box, 1.0, KEY, method=SPSA, n_samples=4, executor=executor)
    assert time.monotonic() - start < 15  # not the 30 s of the run
    assert "sg.BlackBox(fn, timeout=...)" in str(info.value)  # how to raise the limit
    assert "sample " in str(info.value) and isinstance(info.value.seed, int)


@pytest.fixture
def pool_to_interrupt():
    """A pool of its own for a Ctrl-C, killed afterwards without waiting: the interrupt may
    land inside the pool's own bookkeeping in this thread, and a pool left mid-update can
    hang a shutdown that waits (seen once at the end of a full run)."""
    before = set(multiprocessing.active_children())
    pool = concurrent.futures.ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("spawn")
    )
    yield pool
    for process in set(multiprocessing.active_children()) - before:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("where", ["this thread", "a timeout's thread", "pool"])
def test_ctrl_c_stops_the_call_promptly(where, ctrl_c_raises, tmp_path, request):
    executor = request.getfixturevalue("pool_to_interrupt") if where == "pool" else None
    fn = sims.PressesCtrlC(os.getpid(), str(tmp_path / "pressed"))
    timeout = None if where == "this thread" else 2.0
    box = sg.BlackBox(fn, timeout=timeout, progress=False)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sg.gradient(box, 1.0, KEY, method=SPSA, n_samples=2, executor=executor)
    assert (tmp_path / "pressed").exists()
    assert time.monotonic() - start < 15


def test_an_fn_that_ignores_its_seed_is_refused():
    box = sg.BlackBox(sims.ignores_its_seed, progress=False)
    with pytest.raises(sg.SimulationError, match="for the same theta and seed") as info:
        sg.gradient(box, 1.0, KEY, method=sg.FiniteDifference(), n_samples=8)
    assert "np.random.default_rng(seed)" in str(info.value)  # what to do instead
    assert isinstance(info.value.seed, int)


def test_a_deterministic_fn_may_ignore_its_seed():
    box = sg.BlackBox(sims.deterministic, progress=False)
    est = sg.gradient(box, 1.5, KEY, method=sg.FiniteDifference(), n_samples=8)
    assert abs(float(est.grad) - 3.0) < 1e-4 and float(est.value) == 2.25


OPTIMIZE = dict(method=SPSA, n_samples=8, optimizer=optax.sgd(0.1), progress=False)


@pytest.mark.parametrize("nan", [False, True], ids=["raises", "returns NaN"])
def test_a_failure_inside_optimize_names_its_step(nan):
    box = sg.BlackBox(sims.FailsAbove(1.0, nan=nan), progress=False)  # E = (θ - 2)² + 1
    with pytest.raises(
        sg.SimulationError, match=r"^sg\.optimize, step (\d+): sg\.BlackBox"
    ) as info:
        sg.optimize(box, 0.0, KEY, steps=40, **OPTIMIZE)
    what = "fn returned nan" if nan else "fn raised ValueError: theta="
    assert what in str(info.value) and info.value.theta > 1.0
    step = int(str(info.value).split("step ")[1].split(":")[0])
    assert step > 0
    # the steps before the one named run without failing, and the path is the same
    before = sg.optimize(box, 0.0, KEY, steps=step, **OPTIMIZE)
    assert float(before.theta) + SPSA.step > 1.0  # step `step` reaches past the limit


def test_simulation_errors_names_a_black_box_failure_inside_jit():
    box = sg.BlackBox(sims.FailsAbove(0.0), progress=False)

    @jax.jit
    def grad_at(theta):
        return sg.gradient(box, theta, KEY, method=SPSA, n_samples=4).grad

    with pytest.raises(sg.SimulationError, match=r"^sg\.BlackBox: fn raised ValueError.*seed="):
        with sg.simulation_errors():
            jax.block_until_ready(grad_at(1.0))


def test_expectation_of_a_black_box_is_differentiated_by_its_estimator():
    box = sg.BlackBox(sims.square_loss, progress=False)
    E = sg.expectation(box, method=sg.FiniteDifference(), n_samples=200)
    theta = np.float32(0.5)
    est = E.estimate(theta, KEY)
    assert float(jax.grad(E)(theta, KEY)) == pytest.approx(float(est.grad), rel=1e-6)
    assert abs(float(est.grad) - 2 * (theta - 2.0)) < 4 * float(est.grad_stderr) + 1e-3
    assert abs(float(E(theta, KEY)) - ((theta - 2.0) ** 2 + 1)) < 4 * float(est.value_stderr)


def test_expectation_of_a_black_box_refuses_estimators_that_need_a_program():
    with pytest.raises(TypeError, match=r"sg\.FiniteDifference\(\), sg\.SPSA\(\)"):
        sg.expectation(sg.BlackBox(sims.square_loss), n_samples=8)  # sg.Auto() by default
