"""Samples sharded over devices (`devices=`): the same key gives the same estimate on 1, 2
and 4 devices, and over two processes (`jax.distributed`), up to the order of summation.

JAX fixes its device count when it starts, so each check runs in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (tests/devices_check.py,
tests/multihost_check.py): four CPU devices stand in for GPUs or hosts.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import simgrad as sg
from simgrad._src.devices import sample_mesh

HERE = Path(__file__).parent
# The suite's XLA_FLAGS (fast compilation) pass on; the scripts add the device count.
ENV = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), ENV.get("PYTHONPATH")]))


def run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def test_one_two_and_four_devices_give_the_same_estimate():
    # Pathwise with a Jacobian (pytree output, θ a dict, an equinox module), the score
    # function with a leave-one-out baseline (it couples samples: still the same numbers),
    # finite differences; batch sizes that divide neither n_samples nor 4; sg.optimize.
    process = run(str(HERE / "devices_check.py"))
    out, _ = process.communicate(timeout=900)
    assert process.returncode == 0 and out.strip().endswith("ok"), out[-4000:]


def test_two_processes_with_jax_distributed():
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    processes = [run(str(HERE / "multihost_check.py"), str(i), port) for i in (0, 1)]
    try:
        outs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    for i, (p, out) in enumerate(zip(processes, outs, strict=True)):
        assert p.returncode == 0 and f"ok {i}" in out, out[-4000:]


def test_one_device_is_the_single_device_program():
    # devices=1 (and the default, on a machine with one device) builds no mesh: the
    # compiled program and its fast path are those of a run without sharding.
    assert sample_mesh(1) is None
    assert sample_mesh([jax.local_devices()[0]]) is None
    if jax.local_device_count() == 1:
        assert sample_mesh(None) is None


@pytest.mark.parametrize(
    "devices, error, words",
    [
        (0, ValueError, "pass 1 to"),
        (jax.local_device_count() + 1, ValueError, "pass 1 to"),
        ("gpu", TypeError, "list of jax.Device"),
        ([], TypeError, "non-empty list"),
        ([jax.local_devices()[0]] * 2, ValueError, "twice"),
    ],
)
def test_bad_devices_are_named(devices, error, words):
    with pytest.raises(error, match=words):
        sg.gradient(
            lambda t, k: t**2, 1.0, jax.random.key(0), method=sg.Pathwise(), n_samples=2,
            devices=devices,
        )  # fmt: skip
