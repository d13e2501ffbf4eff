"""Type aliases used across simgrad (documentation only; nothing is enforced here)."""

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from jaxtyping import Array, Float, PRNGKeyArray, PyTree

Theta: TypeAlias = PyTree[Float[Array, "..."]]
"""Simulator parameters: a float, an array, or any pytree of floating arrays."""

Scalar: TypeAlias = Float[Array, ""]

Output: TypeAlias = PyTree[Float[Array, "..."]]
"""What a simulator returns: a scalar, an array, or a pytree of floating arrays."""

Jacobian: TypeAlias = PyTree[Float[Array, "..."]]
"""Derivatives of an ``Output`` in ``Theta``, laid out as `jax.jacrev` lays them out: the
output's structure, in it ``Theta``'s structure, each leaf of shape
``output_leaf.shape + theta_leaf.shape``; ``Theta`` itself for a scalar output."""

Key: TypeAlias = PRNGKeyArray

Shape: TypeAlias = Sequence[int]
"""A batch shape, as `jax.random` takes it: a tuple of ints."""

Simulator: TypeAlias = Callable[[Any, Key], Output]
"""``sim(theta, key) -> output``: one Monte Carlo replicate; randomness only from ``key``."""

SIMULATION_ERROR_MARK = "sg.SimulationError: "
"""Starts the message of simgrad's run-time errors raised inside compiled code (by
``equinox.error_if``); `sg.simulation_errors` and `sg.gradient` turn them into
`SimulationError`."""
