"""Compiled programs kept on disk, for callers whose programs simgrad's own code fixes.

JAX's persistent cache skips XLA's compilation but not tracing and lowering, which are
most of a second `simgrad demo` (its 120 programs). Inside `kept_in(folder)`, a `Kept`
function loads its program for its arguments' shapes from ``folder`` (exported with
`jax.export`: StableHLO) and compiles it (from JAX's cache, when on): no trace of the
Python and no lowering. Warnings issued while tracing are not issued again. A program
is keyed by what determines it: the caller's description of the static parts
(``name``), the arguments' structure, shapes and dtypes, and `fingerprint()` — simgrad's
own source files, the versions of Python, JAX and jaxlib, the XLA flags, the x64 setting
and the device (a subfolder per fingerprint). Only a caller whose ``name`` determines the
program may use it (the demo: gallery models, whose code is simgrad's source), since a
user's simulator can change without its name changing.

>>> import jax, jax.numpy as jnp, tempfile
>>> twice = Kept(jax.jit(lambda x: 2 * x), "twice")
>>> with tempfile.TemporaryDirectory() as folder, kept_in(folder):
...     first = twice(jnp.arange(3.0))      # compiled, then written to the folder
...     again = Kept(jax.jit(lambda x: 2 * x), "twice")(jnp.arange(3.0))  # read back
>>> print(again)
[0. 2. 4.]
"""

import contextlib
import contextvars
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import jax

_FOLDER: contextvars.ContextVar[Path | None] = contextvars.ContextVar("folder", default=None)


@contextlib.contextmanager
def kept_in(folder: str | os.PathLike) -> Iterator[None]:
    """`Kept` functions called inside load and store their programs in ``folder``, in a
    subfolder for this `fingerprint`; the subfolders of other fingerprints (an earlier
    simgrad, other flags) are deleted, so the folder holds one version's programs."""
    path = Path(folder) / fingerprint()[:24]
    path.mkdir(parents=True, exist_ok=True)
    for other in path.parent.iterdir():
        if other != path and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    token = _FOLDER.set(path)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def keeping() -> bool:
    """Whether a `kept_in` folder is active (functions made now should be `Kept`)."""
    return _FOLDER.get() is not None


@functools.cache
def fingerprint() -> str:
    """What every kept program depends on besides its own description: simgrad's source
    (every ``.py`` file of the package, and where it is), Python, JAX and jaxlib, XLA's
    flags, x64, the device kind."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    device = jax.devices()[0]
    facts = (
        str(package),  # the estimates' notes name source lines by their paths
        sys.version,
        jax.__version__,
        importlib.metadata.version("jaxlib"),
        os.environ.get("XLA_FLAGS", ""),
        jax.config.jax_enable_x64,  # pyright: ignore[reportAttributeAccessIssue]
        jax.config.jax_numpy_dtype_promotion,  # pyright: ignore[reportAttributeAccessIssue]
        device.platform,
        device.device_kind,
    )
    digest.update(repr(facts).encode())
    return digest.hexdigest()


def remembered(name: str, compute: Callable[[], list]) -> list:
    """``compute()``, a list of plain JSON data fixed by simgrad's code and ``name``; inside
    `kept_in`, read from the folder when it was computed before (and written otherwise)."""
    folder = _FOLDER.get()
    if folder is None:
        return compute()
    path = folder / (hashlib.sha256(name.encode()).hexdigest() + ".json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    value = compute()
    _write(path, json.dumps(value).encode())
    return value


class Kept:
    """A jitted function whose programs, inside `kept_in`, are kept on disk (`jax.export`)."""

    def __init__(self, jitted, name: "str | Callable[[], str]"):
        self.jitted, self._name = jitted, name
        self._loaded: dict[str, Callable | None] = {}

    @functools.cached_property
    def name(self) -> str:
        """The description of the program's static parts (made on first use: a repr of a
        model walks it)."""
        return self._name if isinstance(self._name, str) else self._name()

    def __call__(self, *args):
        folder = _FOLDER.get()
        if folder is None:
            return self.jitted(*args)
        leaves, structure = jax.tree.flatten(args)
        shapes = [(jax.typeof(leaf).str_short(), jax.typeof(leaf).weak_type) for leaf in leaves]
        what = repr((self.name, str(structure), shapes)).encode()
        key = hashlib.sha256(what).hexdigest()
        if key not in self._loaded:
            path = folder / key
            self._loaded[key] = _load(path) or _export(self.jitted, structure, leaves, path)
        call = self._loaded[key]
        return self.jitted(*args) if call is None else call(*leaves)


def _callable(exported, out_tree) -> Callable:
    """The exported program as a function of the arguments' leaves, its result restored."""
    run = jax.jit(exported.call)
    return lambda *leaves: jax.tree.unflatten(out_tree, run(*leaves))


def _export(jitted, structure, leaves, path: Path) -> Callable | None:
    """The program exported, written to ``path``, and callable; None when it cannot be
    kept (a host callback, or a result structure that does not come back equal from the
    file): then it runs as without `kept_in`."""
    out_trees = []

    def flat(*leaves):
        out, out_tree = jax.tree.flatten(jitted(*jax.tree.unflatten(structure, leaves)))
        out_trees.append(out_tree)
        return out

    try:
        exported = jax.export.export(jax.jit(flat))(*leaves)
        with io.BytesIO() as file:
            _Pickler(file).dump((bytes(exported.serialize()), out_trees[0]))
            data = file.getvalue()
        if pickle.loads(data)[1] != out_trees[0]:
            return None
    except Exception:  # noqa: BLE001  (not exportable: kept as an ordinary jit)
        return None
    _write(path, data)
    return _callable(exported, out_trees[0])


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader sees the whole file or none. Not written if the folder went
    (another simgrad's `kept_in` deleted it) or the disk is full: the run goes on."""
    with (
        contextlib.suppress(OSError),
        tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as out,
    ):
        out.write(data)
        out.close()
        os.replace(out.name, path)


@functools.cache
def _equinox_missing():
    """Equinox's marker for a module field not set: its flattened modules hold it, and
    they unflatten correctly only with that very object (it is compared by identity)."""
    from equinox._module._flatten import MISSING  # pyright: ignore[reportPrivateImportUsage]

    return MISSING


class _Pickler(pickle.Pickler):
    """Pickles equinox's marker as a reference to it, so that it loads as the same object."""

    def reducer_override(self, obj):
        if obj is _equinox_missing():
            return _equinox_missing, ()
        return NotImplemented


def _load(path: Path) -> Callable | None:
    try:
        payload, out_tree = pickle.loads(path.read_bytes())
        return _callable(jax.export.deserialize(bytearray(payload)), out_tree)
    except Exception:  # noqa: BLE001  (none yet, or torn: exported again, overwritten)
        return None
