"""Type aliases used across simgrad (documentation only; nothing is enforced here)."""

from collections.abc import Callable
from typing import Any, TypeAlias

from jaxtyping import Array, Float, PRNGKeyArray, PyTree

Theta: TypeAlias = PyTree[Float[Array, "..."]]
"""Simulator parameters: a float, an array, or any pytree of floating arrays."""

Scalar: TypeAlias = Float[Array, ""]

Key: TypeAlias = PRNGKeyArray

Simulator: TypeAlias = Callable[[Any, Key], Scalar]
"""``sim(theta, key) -> scalar``: one Monte Carlo replicate; randomness only from ``key``."""
