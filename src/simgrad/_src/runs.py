"""What long runs share (`sg.optimize`, surrogate fitting): a progress bar and checkpoints."""

import json
import os
import pathlib

import equinox as eqx


def progress_bar(label: str, field: str, show: bool, total: int, done: int):
    """A rich progress bar on stderr (stdout stays clean for results) with one live field.

    Update it with ``bar.update(bar.tasks[0].id, completed=i, **{field: text})``. When
    stderr is not a terminal (piped to a log, redirected to a file) the live bar cannot
    show, so a plain line reports the progress every few seconds instead.
    """
    import math
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class PlainWhenPiped(Progress):
        every_s = 5.0
        last = -math.inf

        def update(self, task_id, **kwargs):
            super().update(task_id, **kwargs)
            if self.disable or self.console.is_terminal:
                return
            task, now = self._tasks[task_id], time.monotonic()
            if now - self.last >= self.every_s or task.finished:
                self.last = now
                self.console.print(
                    f"{label}: {task.completed:.0f}/{task.total:.0f} {field} "
                    f"{task.fields.get(field, '')} ({task.elapsed or 0:.0f} s)",
                    markup=False, highlight=False, soft_wrap=True,
                )  # fmt: skip

    bar = PlainWhenPiped(
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
