"""Saving and loading surrogates (MLPs and flows): a JSON header, then equinox leaves."""

import math
import os

import equinox as eqx
import jax

from .._src import runs
from ._fit import Surrogate
from ._fit import _build as _build_mlp
from ._flow import FlowSurrogate
from ._flow import _build as _build_flow

_MLP_KEYS = {"in_size", "out_size", "width", "depth", "dtype"}
_FLOW_KEYS = {"in_size", "out_size", "flow_layers", "knots", "interval", "nn_width", "nn_depth"}
_FLOW_KEYS |= {"dtype"}
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def save(path: str | os.PathLike, surrogate: Surrogate | FlowSurrogate) -> None:
    """Write ``surrogate`` (a `Surrogate` or a `FlowSurrogate`) to ``path`` atomically (a
    killed save leaves the previous file): a JSON header line (the network's shape, a
    checksum), then equinox-serialised leaves."""
    if not isinstance(surrogate, (Surrogate, FlowSurrogate)):
        raise TypeError(
            f"save expects a Surrogate or a FlowSurrogate, got {type(surrogate).__name__}."
        )
    path = runs.check_output_path(path, "path", "surrogate.eqx")
    runs.write_file(path, "surrogate", {"config": surrogate.config}, surrogate)


def load(path: str | os.PathLike) -> Surrogate | FlowSurrogate:
    """Read a surrogate written by `save` (no pickle: the header rebuilds the network).

    A corrupted, truncated or foreign file raises `simgrad.CheckpointError`; the header is
    checked against the file's length before anything is allocated.
    """
    header, payload = runs.read_header(path, "surrogate")
    config = header.get("config")
    flow = isinstance(config, dict) and "flow_layers" in config
    config = (_check_flow_config if flow else _check_config)(path, config, len(payload))
    if flow:  # flowjax keeps closures over its arrays: built for real (its size is
        skeleton = _build_flow(config, jax.random.key(0))  # bounded by the file's above)
    else:
        skeleton = eqx.filter_eval_shape(_build_mlp, config, jax.random.key(0))
    return runs.read_tree(path, payload, skeleton)


def _size(x) -> bool:
    return x == "scalar" or _count(x, 1)


def _count(x, minimum) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= minimum


def _check_config(path, config, n_bytes: int) -> dict:
    """The header's network description, refused unless well formed and able to fit in
    ``n_bytes`` (each layer stores two arrays of at least 64 bytes)."""
    ok = (
        isinstance(config, dict)
        and set(config) == _MLP_KEYS
        and _size(config["in_size"])
        and _size(config["out_size"])
        and _count(config["width"], 1)
        and _count(config["depth"], 0)
        and config["dtype"] in _DTYPES
    )
    if not ok:
        raise runs.CheckpointError(f"{path}: its header does not describe a surrogate network.")
    if 128 * (config["depth"] + 1) > n_bytes:
        raise runs.CheckpointError(
            f"{path}: its header describes {config['depth']} layers, which cannot fit in "
            f"its {n_bytes} bytes: the header is corrupted."
        )
    return config


def _check_flow_config(path, config, n_bytes: int) -> dict:
    """The header's flow description, refused unless well formed and able to fit in
    ``n_bytes``: every layer stores at least ``nn_width`` numbers per hidden layer and
    ``knots`` per spline, so a header claiming more than the file holds is refused before
    the flow's shapes are even computed."""
    ok = (
        isinstance(config, dict)
        and set(config) == _FLOW_KEYS
        and _size(config["in_size"])
        and _size(config["out_size"])
        and all(_count(config[k], m) for k, m in (("flow_layers", 1), ("knots", 2)))
        and all(_count(config[k], m) for k, m in (("nn_width", 1), ("nn_depth", 0)))
        and isinstance(config["interval"], float)
        and math.isfinite(config["interval"])
        and config["interval"] > 0
        and config["dtype"] in _DTYPES
    )
    if not ok:
        raise runs.CheckpointError(f"{path}: its header does not describe a flow surrogate.")
    dims = [1 if config[k] == "scalar" else config[k] for k in ("in_size", "out_size")]
    per_layer = config["nn_width"] * (config["nn_depth"] + 1) + config["knots"] + sum(dims)
    if 2 * config["flow_layers"] * per_layer > n_bytes:
        raise runs.CheckpointError(
            f"{path}: its header describes {config['flow_layers']} layers of width "
            f"{config['nn_width']}, which cannot fit in its {n_bytes} bytes: the header is "
            "corrupted."
        )
    return config
