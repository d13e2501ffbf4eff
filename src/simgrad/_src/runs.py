"""What long runs share (`sg.optimize`, surrogate fitting): one resumable run loop, a
progress bar, output paths checked before the run, fingerprints of a run, and files written
atomically with a checksum.

A simgrad file is one JSON header line, then equinox-serialised leaves (no pickle). The
header names the kind of file, the run that wrote it (a fingerprint) and the length and
SHA-256 of the leaves, so a corrupted, truncated or foreign file is refused with a
`CheckpointError` that says which, and reading never allocates more than the file holds.
"""

import functools
import hashlib
import io
import json
import math
import os
import pathlib
import re
import time
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

_FORMAT = 1
_MAX_HEADER = 1 << 20  # bytes: a header line longer than this is not ours


class CheckpointError(ValueError):
    """A checkpoint or saved surrogate that cannot be used: corrupted, truncated, not a
    simgrad file, or written by a different run. The message names the file and says which."""


def progress_bar(label: str, field: str, show: bool, total: int, done: int):
    """A rich progress bar on stderr (stdout stays clean for results) with one live field.

    Update it with ``bar.update(bar.tasks[0].id, completed=i, **{field: text})``. When
    stderr is not a terminal (piped to a log, redirected to a file) the live bar cannot
    show, so a plain line reports the progress every few seconds instead.
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
        fields: dict[str, Any] = {field: "…"}  # a custom field (rich's **fields)
        bar.add_task(label, total=total, completed=done, **fields)
    return bar


def check_output_path(path, name: str, example: str = "run.eqx") -> pathlib.Path:
    """``path`` as a `pathlib.Path`, refused *before* a run if it cannot be written.

    ``name`` is the argument's name in the messages (``"checkpoint"``, ``"--html"``);
    ``example`` a file name to suggest when ``path`` is a folder.

    >>> check_output_path("/", "checkpoint")
    Traceback (most recent call last):
    ValueError: checkpoint='/' is a folder: give a file in it, e.g. '/run.eqx'.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or pathlib.Path), got {path!r}.")
    p = pathlib.Path(path)
    try:
        existed = p.exists()
        _check_writable(p, f"{name}={str(path)!r}", example, existed)
    except OSError as error:  # what os.access cannot tell: a read-only file system, a name
        raise ValueError(  # too long, a network mount
            f"{name}={str(path)!r}: cannot write there ({error.strerror}); choose another path."
        ) from None
    return p


def _check_writable(p: pathlib.Path, given: str, example: str, existed: bool) -> None:
    """Refuse ``p`` (``given``: the argument as the user wrote it, for the messages)."""
    if p.is_dir():
        raise ValueError(f"{given} is a folder: give a file in it, e.g. {str(p / example)!r}.")
    folder = p.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{given}: {str(folder)!r} {what}; create the folder first.")
    if not os.access(folder, os.W_OK | os.X_OK) or (existed and not os.access(p, os.W_OK)):
        raise ValueError(f"{given}: no permission to write there; choose another path.")
    with open(p, "ab"):  # appending changes nothing in a file that exists
        pass
    if not existed:
        p.unlink()  # the probe's own empty file


# -- fingerprints ------------------------------------------------------------------------


def fingerprint(obj, *, stable: bool, visit=None):
    """A structural description of ``obj`` that two equal configurations share.

    Functions compare by code, defaults and the values they close over (optax optimisers
    are closures: two ``optax.adam(1e-3)`` objects are equal), containers by their items,
    arrays by their bytes. ``stable=False`` gives a hashable key for a compilation cache
    (objects it cannot look into compare by identity, so it never equates two that may
    differ); ``stable=True`` gives a string hash that is the same in another process (for
    a checkpoint's header). ``visit(x)``, if given, is called on every number and array
    found.
    """
    out = _describe(obj, stable, set(), visit or (lambda x: None))
    return hashlib.sha256(repr(out).encode()).hexdigest() if stable else out


def _describe(obj, stable: bool, seen: set, visit):
    walk = functools.partial(_describe, stable=stable, seen=seen, visit=visit)
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, float):
        visit(obj)
        return ("float", obj.hex())
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)) and not isinstance(
        obj, jax.core.Tracer
    ):
        visit(obj)
        return ("array", array_hash(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__qualname__, tuple(walk(x) for x in obj))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted((repr(k), walk(v)) for k, v in obj.items())))
    if isinstance(obj, functools.partial):
        return ("partial", walk(obj.func), walk(obj.args), walk(obj.keywords))
    if isinstance(obj, types.MethodType):
        return ("method", walk(obj.__func__), walk(obj.__self__))
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        name = (obj.__module__, obj.__qualname__)
        if id(obj) in seen:  # a recursive closure
            return ("function", name)
        seen.add(id(obj))
        cells = tuple(walk(c.cell_contents) for c in obj.__closure__ or ())
        if stable:  # what the code refers to, stable across Python versions
            consts = (c.co_qualname if isinstance(c, types.CodeType) else c for c in code.co_consts)
            ident = (tuple(map(repr, consts)), code.co_names)
        else:
            ident = (code, id(obj.__globals__))
        return ("function", name, ident, walk(obj.__defaults__), walk(obj.__kwdefaults__), cells)
    if stable:
        return ("object", type(obj).__qualname__, re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj)))
    try:
        hash(obj)
        return ("value", type(obj), obj)
    except TypeError:
        return ("id", id(obj))


def array_hash(*trees) -> str:
    """SHA-256 of the structure, dtypes, shapes and bytes of the arrays in ``trees``."""
    h = hashlib.sha256()
    for tree in trees:
        leaves, treedef = jax.tree.flatten(tree)
        h.update(str(treedef).encode())
        for leaf in leaves:
            if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            a = np.asarray(leaf)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def program_hash(fn, *args) -> str:
    """SHA-256 of the program ``fn(*args)`` traces to (its jaxpr and constants).

    Object addresses that a jaxpr may print are removed, so the hash is the same in
    another process for the same program.
    """
    closed = jax.make_jaxpr(fn)(*args)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", str(closed.jaxpr))
    return hashlib.sha256((text + array_hash(closed.consts)).encode()).hexdigest()


def key_fingerprint(key) -> dict:
    """A PRNG key as JSON: its implementation and its bits."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return {"impl": str(jax.random.key_impl(key)), "bits": _ints(jax.random.key_data(key))}
    return {"impl": "raw", "bits": _ints(key)}


def _ints(x) -> list:
    return np.asarray(x).ravel().tolist()


# -- files -------------------------------------------------------------------------------


def write_file(path: pathlib.Path, kind: str, header: dict, tree) -> None:
    """Write ``tree`` under a header naming ``kind``, atomically: the leaves are serialised
    in memory, written to ``path.tmp`` and flushed to disk, then renamed over ``path`` — a
    run killed at any moment leaves the previous file intact."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    payload = buffer.getvalue()
    head = {"simgrad": kind, "format": _FORMAT} | header
    head |= {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(json.dumps(head).encode() + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(path: str | os.PathLike, kind: str) -> tuple[dict, bytes]:
    """The header and the verified leaves' bytes of a file written by `write_file`."""
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror}).") from None
    end = data.find(b"\n", 0, _MAX_HEADER)
    payload = data[end + 1 :]
    try:
        header = json.loads(data[:end]) if end >= 0 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("simgrad") != kind:
        raise CheckpointError(
            f"{path} is not a simgrad {kind} file (its header line is missing or unreadable): "
            "the file is corrupted, truncated, or of another kind."
        )
    if header.get("format") != _FORMAT:
        raise CheckpointError(
            f"{path}: format {header.get('format')!r}, this simgrad reads format {_FORMAT}."
        )
    if (
        header.get("bytes") != len(payload)
        or header.get("sha256") != hashlib.sha256(payload).hexdigest()
    ):
        raise CheckpointError(
            f"{path} is corrupted: its arrays ({len(payload)} bytes) do not match the "
            f"length and checksum in its header ({header.get('bytes')} bytes) — the file "
            "was truncated or altered. Delete it to start afresh."
        )
    return header, payload


def read_tree(path: str | os.PathLike, payload: bytes, like):
    """Deserialise ``payload`` into the structure of ``like`` (arrays or shape structs).

    Each leaf's stored shape and dtype are read and compared with ``like``'s before any
    memory is allocated, and the total is compared with the payload's length first.
    """
    leaves = jax.tree.leaves(like)
    needed = sum(_nbytes(x) for x in leaves if _is_array_leaf(x))
    if needed > len(payload):
        raise CheckpointError(
            f"{path} holds {len(payload)} bytes of arrays but its header describes "
            f"{needed} bytes: the header is corrupted."
        )
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), like, filter_spec=_read_leaf)
    except Exception as e:  # equinox wraps the cause in its TreePathError
        raise CheckpointError(
            f"{path} does not hold the arrays its header describes: {e.__cause__ or e}."
        ) from None


def _is_array_leaf(x) -> bool:
    return isinstance(
        x, (jax.Array, jax.ShapeDtypeStruct, np.ndarray, np.generic, bool, int, float, complex)
    )


def _nbytes(x) -> int:
    shape, dtype = _shape_dtype(x)
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _shape_dtype(x):
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)):
        return tuple(x.shape), np.dtype(x.dtype)
    return (), np.asarray(x).dtype


def _read_leaf(f, like):
    """Read one ``.npy`` record, refusing a shape or dtype other than ``like``'s unread."""
    if not _is_array_leaf(like):
        return like
    shape, dtype = _shape_dtype(like)
    version = np.lib.format.read_magic(f)
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in read:
        raise ValueError(f"unknown array record version {version}")
    got_shape, fortran, got_dtype = read[version](f)
    if tuple(got_shape) != shape or got_dtype.itemsize != dtype.itemsize:
        raise ValueError(
            f"an array of shape {got_shape} and dtype {got_dtype} where {shape} {dtype} was due"
        )
    data = f.read(_nbytes(like))
    if len(data) != _nbytes(like):
        raise EOFError("the arrays end early")
    out = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
        return jnp.asarray(out)
    if isinstance(like, np.ndarray):
        return out.copy()
    return type(like)(out.item())


def check_checkpoint(path, resume: bool, example: str = "run.eqx") -> pathlib.Path | None:
    """A run's ``checkpoint`` argument, refused before the run if it cannot be used: a path
    that cannot be written (`check_output_path`), ``resume`` without a path, or an existing
    file without ``resume`` (a new run never overwrites one)."""
    if resume and path is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from.")
    if path is None:
        return None
    path = check_output_path(path, "checkpoint", example)
    if path.exists() and not resume:
        raise FileExistsError(
            f"checkpoint {path} exists: pass resume=True to continue that run, "
            "or delete the file to start afresh."
        )
    return path


class Checkpoint(NamedTuple):
    """A run's checkpoint file: where, of which ``kind`` (the header names it), the run's
    ``fingerprint`` (JSON: a resumed run must match every entry), how often it is written
    (``every`` steps) and what to do when it is from another run (``fix``)."""

    path: pathlib.Path
    kind: str
    fingerprint: dict
    every: int
    fix: str

    def save(self, tree, step: int) -> None:
        """Write ``tree`` at ``step``; see `write_file`."""
        write_file(self.path, self.kind, {"step": int(step), "run": self.fingerprint}, tree)

    def load(self, like_at, steps: int):
        """Read the file, refusing one from a different run or beyond ``steps``.

        Every entry of this run's fingerprint must equal the saved one, else a
        `CheckpointError` names each difference and says ``fix``. ``like_at(step)`` gives
        the structure of the saved tree at the saved step. Returns ``(tree, step)``.
        """
        header, payload = read_header(self.path, self.kind)
        saved, step = header.get("run"), header.get("step")
        if not isinstance(saved, dict) or not isinstance(step, int) or step < 0:
            raise CheckpointError(
                f"{self.path}: its header lacks the run and step: the file is corrupted."
            )
        differences = [_difference(k, saved.get(k), v) for k, v in self.fingerprint.items()]
        differences = [d for d in differences if d]
        if differences:
            raise CheckpointError(
                f"checkpoint {self.path} was written by a different run: "
                f"{'; '.join(differences)}. {self.fix}"
            )
        tree = read_tree(self.path, payload, like_at(step))
        if step > steps:
            raise ValueError(
                f"checkpoint {self.path} is at step {step}, beyond steps={steps}: "
                f"pass steps ≥ {step} to continue it."
            )
        return tree, step


def _difference(name: str, saved, now) -> str:
    if saved == now:
        return ""
    if name in ("simulator", "optimizer", "data", "theta0", "bounds"):
        return f"the {name} differs"
    return f"{name} differs (saved {saved!r}, now {now!r})"


# -- the run loop ------------------------------------------------------------------------


class Progress(NamedTuple):
    """What a run's progress bar shows: ``label``, then ``field`` followed by ``text(out)``
    of the last output; ``show=False`` hides the bar."""

    label: str
    field: str
    text: Callable[[Any], str]
    show: bool = True


def run(
    advance: Callable[[Any, int, int], tuple[Any, Any]],
    state,
    *,
    steps: int,
    progress: Progress,
    done: int = 0,
    chunk: int = 1,
    callback: Callable[[int, Any], None] | None = None,
    checkpoint: Checkpoint | None = None,
    saved: Callable[[Any], Any] | None = None,
    check: Callable[[Any], None] | None = None,
):
    """The resumable run loop of `sg.optimize` and every fit: steps ``done`` to ``steps``.

    ``advance(state, done, n) -> (state, out)`` takes ``n ≤ chunk`` steps from step
    ``done``. After each call the loop updates the progress bar, calls
    ``callback(step, out)`` (with a callback, steps run one at a time) and writes
    ``checkpoint`` every ``checkpoint.every`` steps. On Ctrl-C (``KeyboardInterrupt``) it
    writes the checkpoint, then re-raises. At the end ``check(out)`` may refuse the last
    output by raising, before the final write. A checkpoint holds ``saved(state)``
    (default: the state itself; None: nothing to save yet). With ``chunk > 1`` and the bar
    shown, calls are sized to redraw it about ten times a second.

    Returns the final state and the last output (None if no step ran).

    >>> count = lambda total, done, n: (total + n, total + n)
    >>> run(count, 0, steps=5, chunk=2, progress=Progress("counting", "total", str, False))
    (5, 5)
    """

    def save():
        if checkpoint is not None:
            tree = state if saved is None else saved(state)
            if tree is not None:
                checkpoint.save(tree, done)

    bar = progress_bar(progress.label, progress.field, progress.show, steps, done)
    out, per_step, calls = None, None, 0  # per_step: seconds a step takes once compiled
    shown = -math.inf  # when the bar was last updated: at most ten times a second
    try:
        with bar:
            while done < steps:
                n = min(steps - done, chunk)
                if checkpoint is not None:
                    n = min(n, checkpoint.every - done % checkpoint.every)
                if callback is not None:
                    n = 1
                elif progress.show:  # redraw about ten times a second
                    n = 1 if per_step is None else max(1, min(n, int(0.1 / per_step)))
                start = time.perf_counter()
                (state, out), done = advance(state, done, n), done + n
                if calls:  # not the first call, which may have compiled
                    per_step = (time.perf_counter() - start) / n
                calls += 1
                if bar.tasks and (time.monotonic() - shown > 0.1 or done == steps):
                    text = {progress.field: progress.text(out)}
                    bar.update(bar.tasks[0].id, completed=done, **text)
                    shown = time.monotonic()
                if callback is not None:
                    callback(done - 1, out)
                if checkpoint is not None and done % checkpoint.every == 0:
                    save()
    except KeyboardInterrupt:
        save()
        raise
    if check is not None and out is not None:
        check(out)
    save()
    return state, out
