"""Numerics for the whole suite: float64 available, strict dtype promotion, a fixed key."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261126)
