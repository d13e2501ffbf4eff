"""Run by tests/test_devices.py as two processes on localhost (`jax.distributed`, two CPU
devices each): sharded over all four global devices, each process gets the estimate that
one device alone gives. ``python tests/multihost_check.py PROCESS_ID PORT``."""

import os
import sys

# appended: the suite's fast-compile flags (tests/conftest.py) stay in force
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
jax.distributed.initialize(
    coordinator_address=f"localhost:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1])
)

import numpy as np  # noqa: E402

import simgrad as sg  # noqa: E402

jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 4 and jax.local_device_count() == 2


def sim(theta, key):  # E = θ² + 1, gradient 2θ
    return (theta + jax.random.normal(key)) ** 2


kwargs = dict(method=sg.Pathwise(), n_samples=1001, batch_size=300)
hosts = sg.gradient(sim, 1.5, jax.random.key(0), devices=jax.devices(), **kwargs)
one = sg.gradient(sim, 1.5, jax.random.key(0), devices=1, **kwargs)
assert {d.process_index for d in hosts.grad.sharding.device_set} == {0, 1}
np.testing.assert_allclose(float(hosts.grad), float(one.grad), rtol=1e-12)
np.testing.assert_allclose(float(hosts.grad_stderr), float(one.grad_stderr), rtol=1e-12)
print("ok", jax.process_index())
