"""Programs kept on disk (simgrad._src.executables): what `simgrad demo` reads back on its
second run instead of tracing and lowering. A kept program must give exactly what the
traced one gives, including the Python data of the result (the estimate's notes and
claim), and must never be read for another program."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad import _estimate
from simgrad._src.executables import Kept, kept_in, remembered
from simgrad.models import GALLERY


def _kept(folder):
    return [p for p in folder.rglob("*") if p.is_file()]


def _counting(traces: list):
    def f(x, scale):
        traces.append(1)  # runs once per trace, never when the program is read back
        return {"y": jnp.sin(x) * scale, "total": jnp.sum(x)}

    return f


def test_a_kept_program_is_read_back_without_tracing(tmp_path):
    traces = []
    x, scale = jnp.linspace(0.0, 1.0, 5), jnp.float64(3.0)
    with kept_in(tmp_path):
        first = Kept(jax.jit(_counting(traces)), "f")(x, scale)
        assert len(traces) == 1 and len(_kept(tmp_path)) == 1
        # a new function object, as in a new process: read from the folder, not traced
        again = Kept(jax.jit(_counting(traces)), "f")(x, scale)
    assert len(traces) == 1
    assert jax.tree.structure(again) == jax.tree.structure(first)
    np.testing.assert_array_equal(again["y"], first["y"])
    np.testing.assert_array_equal(again["y"], np.sin(np.asarray(x)) * 3.0)


def test_other_shapes_dtypes_or_names_are_other_programs(tmp_path):
    traces = []
    with kept_in(tmp_path):
        Kept(jax.jit(_counting(traces)), "f")(jnp.ones(5), jnp.float64(1.0))
        Kept(jax.jit(_counting(traces)), "f")(jnp.ones(6), jnp.float64(1.0))
        Kept(jax.jit(_counting(traces)), "f")(jnp.ones(5, jnp.float32), jnp.float32(1.0))
        Kept(jax.jit(_counting(traces)), "g")(jnp.ones(5), jnp.float64(1.0))
    assert len(traces) == 4 and len(_kept(tmp_path)) == 4


def test_outside_kept_in_nothing_is_written(tmp_path):
    traces = []
    out = Kept(jax.jit(_counting(traces)), "f")(jnp.ones(3), jnp.float64(2.0))
    assert float(out["total"]) == 3.0 and not _kept(tmp_path)


def test_a_torn_file_is_exported_again(tmp_path):
    traces = []
    with kept_in(tmp_path):
        Kept(jax.jit(_counting(traces)), "f")(jnp.ones(3), jnp.float64(2.0))
        (kept,) = _kept(tmp_path)
        kept.write_bytes(kept.read_bytes()[:100])
        out = Kept(jax.jit(_counting(traces)), "f")(jnp.ones(3), jnp.float64(2.0))
    assert len(traces) == 2 and float(out["total"]) == 3.0


def test_a_program_with_a_host_callback_runs_unkept(tmp_path):
    def f(x):
        return jax.pure_callback(np.cos, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    with kept_in(tmp_path):
        out = Kept(jax.jit(f), "cos")(jnp.arange(3.0))
    np.testing.assert_allclose(out, np.cos(np.arange(3.0)))
    assert not _kept(tmp_path)


def test_an_estimate_read_back_is_the_traced_one(tmp_path):
    """The demo's case: sg.gradient on a gallery model, its runner kept. A second runner
    (as in a new process) reads the program instead of tracing it (no BiasWarning this
    time: it is issued while tracing); the estimate, with the claim and notes made while
    tracing, is the same to the bit."""
    model = GALLERY["digital"]
    theta, key = model.default_theta(), jax.random.key(7)

    def estimate():
        return sg.gradient(model, theta, key, method=sg.Pathwise(), n_samples=256)

    with kept_in(tmp_path), pytest.warns(sg.BiasWarning):
        first = estimate()
    for runners in (_estimate._BY_IDENTITY, _estimate._BY_VALUE, _estimate._RECENT):
        runners.clear()  # as in a new process: no compiled runner in memory
    with kept_in(tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error")  # not traced again: no warning
        again = estimate()
    assert first.claim == "biased"
    assert (again.method, again.notes, again.claim) == (first.method, first.notes, first.claim)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(first), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.grad["sigma"] == first.grad["sigma"]  # the numbers, read to the host


def test_remembered_values_are_computed_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return [["euler", "pathwise-reverse"]]

    with kept_in(tmp_path):
        assert remembered("plan", compute) == remembered("plan", compute)
    assert remembered("plan", compute) == [["euler", "pathwise-reverse"]]  # outside: computed
    assert len(calls) == 2


def test_only_this_versions_programs_are_kept(tmp_path):
    """Programs of another fingerprint (an earlier simgrad, other flags) are deleted when a
    run keeps programs: the folder never grows with every version."""
    old = tmp_path / "0123456789abcdef01234567"
    old.mkdir()
    (old / "program").write_bytes(b"from an earlier version")
    with kept_in(tmp_path):
        Kept(jax.jit(_counting([])), "f")(jnp.ones(3), jnp.float64(2.0))
    assert not old.exists() and len(_kept(tmp_path)) == 1
