"""Numerics for the whole suite: float64 available, strict dtype promotion, a fixed key."""

import os

import jax
import pytest

# The `simgrad` commands run in-process here keep no persistent compilation cache (it is
# tested in a subprocess, with its own cache folder, in tests/test_cli.py).
os.environ.setdefault("SIMGRAD_NO_CACHE", "1")

# Scripts that tests/test_devices.py runs in fresh processes (they set XLA_FLAGS before JAX
# starts, or join a jax.distributed run): never imported here, not even for doctests.
collect_ignore = ["devices_check.py", "multihost_check.py"]

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261126)
