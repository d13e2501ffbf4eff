"""Devices: the mesh that samples are sharded over, and arguments placed on every device.

A run over several devices splits each chunk of samples along the mesh's one axis,
`AXIS`; every sample is computed as on one device, only the order of summation differs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "samples"  # the one axis of the device mesh: samples are split along it


def split_samples(mesh: Mesh | None) -> NamedSharding | None:
    """The sharding that splits a leading sample axis over ``mesh`` (None without one)."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(AXIS))


def sample_mesh(devices) -> Mesh | None:
    """The mesh that samples are sharded over, from a ``devices=`` argument (see
    `gradient`); None for the default device alone: the single-device program, unchanged."""
    local = jax.local_devices()
    if devices is None:
        chosen = local
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={devices}: this process has {len(local)} local "
                f"{local[0].platform} device(s); pass 1 to {len(local)}, None for all of "
                "them, or a sequence of jax.Device (jax.devices() in a multi-host run)."
            )
        chosen = local[: int(devices)]
    else:
        chosen = list(devices) if isinstance(devices, (list, tuple)) else None
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise TypeError(
                "devices must be None (every local device), an int k (the first k local "
                "devices) or a non-empty list of jax.Device such as jax.devices(), got "
                f"{devices!r}."
            )
        if len(set(chosen)) < len(chosen):
            raise ValueError(f"devices={devices!r} names a device twice: list each once.")
    if len(chosen) == 1 and chosen[0] == local[0]:
        return None
    return _mesh(tuple(chosen))


@functools.cache
def _mesh(devices: tuple) -> Mesh:
    return Mesh(np.array(devices), (AXIS,))


def replicate(tree, mesh: Mesh | None):
    """``tree`` on every device of ``mesh`` (a no-op without one): a compiled run over a
    mesh refuses arguments committed to one device (``jax.device_put(x, device)``). Over
    several processes (`jax.distributed`) each process passes its own copy of the same
    values, assembled into one global array."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(functools.partial(_global, sharding=sharding), tree)


def _global(x, sharding):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x  # already global
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _global(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
