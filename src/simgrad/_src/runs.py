"""What long runs share (`sg.optimize`, surrogate fitting): a progress bar and checkpoints."""

import json
import os
import pathlib

import equinox as eqx


def progress_bar(label: str, field: str, show: bool, total: int, done: int):
    """A rich progress bar on stderr (stdout stays clean for results) with one live field.

    Update it with ``bar.update(bar.tasks[0].id, completed=i, **{field: text})``.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{field} {{task.fields[{field}]}}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    if show:
        bar.add_task(label, total=total, completed=done, **{field: "…"})
    return bar


def save_checkpoint(path: pathlib.Path, tree, meta: dict) -> None:
    """Write ``tree`` (equinox serialisation, no pickle) and ``meta`` beside it, atomically:
    a run killed while writing leaves the previous checkpoint intact."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # a file object: equinox adds no ".eqx" suffix
        eqx.tree_serialise_leaves(f, tree)
    path.with_name(path.name + ".json").write_text(json.dumps(meta))
    os.replace(tmp, path)


def load_checkpoint(path: pathlib.Path, like, meta: dict, fix: str):
    """Read a checkpoint shaped like ``like``, refusing one whose ``meta`` differs.

    Keys of the saved header absent from ``meta`` (a step count, say) are not compared;
    ``fix`` tells the user what to do on a mismatch.
    """
    meta_path = path.with_name(path.name + ".json")
    saved = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    mismatched = {k: (saved.get(k), v) for k, v in meta.items() if saved.get(k) != v}
    if mismatched:
        raise ValueError(
            f"checkpoint {path} was written by a different run {mismatched} (saved, now): {fix}"
        )
    with open(path, "rb") as f:
        return eqx.tree_deserialise_leaves(f, like)
