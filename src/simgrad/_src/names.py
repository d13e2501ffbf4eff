"""Human names for the parts of a parameter pytree: ``S0``, ``x[1]``, ``θ`` for a bare scalar."""

import jax
import numpy as np


def path_name(path) -> str:
    """``("S0",)`` → ``S0``; an empty path (a bare scalar θ) → ``θ``."""
    parts = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
    return "".join(str(p) for p in parts) or "θ"


def named_components(tree) -> dict[str, float]:
    """Flatten a pytree of arrays to ``{"S0": 0.63, "x[1]": ...}`` (``θ`` for a scalar)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        base = path_name(path)
        leaf = np.asarray(leaf, dtype=float)
        if leaf.ndim == 0:
            out[base] = float(leaf)
        else:
            for index in np.ndindex(leaf.shape):
                out[f"{base}[{','.join(map(str, index))}]"] = float(leaf[index])
    return out


def leaf_name(structure, index: int) -> str:
    """``theta['a'][0]``: the name of θ's leaf ``index`` in ``structure`` (a treedef)."""
    if structure is None:
        return "theta"
    placeholders = jax.tree.unflatten(structure, list(range(structure.num_leaves)))
    path = jax.tree_util.tree_flatten_with_path(placeholders)[0][index][0]
    return f"theta{jax.tree_util.keystr(path)}"
