"""Numerics for the whole suite: float64 available, strict dtype promotion, a fixed key."""

import contextlib
import os
import subprocess
import sys
from importlib.metadata import version

_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS")

# The suite's time is mostly XLA compiling small programs: skip LLVM's expensive
# optimisations (measured: a compile-bound test 32 -> 22 s of CPU, the ODE and relax docs
# pages 55 -> 47 s) and XLA:CPU's new fusion emitters, whose MLIR pipeline costs more to
# compile small programs than the loop emitters it replaced (12 gallery programs: 8.0 ->
# 4.4 s of CPU). Results stay within every test's tolerance and every page's digits;
# subprocesses (docs pages, the CLI) inherit it. Set before JAX starts its backend. (Not
# --xla_cpu_parallel_codegen_split_count=1: 8 % less CPU, but other rounding, and the
# stiff Robertson solve then runs out of steps.)
_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if version("jaxlib").split(".")[:2] == ["0", "10"]:  # jaxlib 0.11 (Python >= 3.12) has
    _FAST_COMPILE += " --xla_cpu_use_fusion_emitters=false"  # no other emitters: unknown
# One thread per XLA program: xdist already keeps every core busy, and a runtime's thread
# pool on top of it only contends (the tuned-mass-damper run: 26 s of CPU alone, 85 s
# beside another worker).
_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
# A test marked `optimised_xla` is bound by run time, not compilation: it runs in a fresh
# process with XLA's optimisations (SIMGRAD_TESTS_XLA=optimised), see pytest_pyfunc_call.
_OPTIMISED = os.environ.get("SIMGRAD_TESTS_XLA") == "optimised"
if not _OPTIMISED:
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE} {_ONE_THREAD}".strip()
    )

# JAX's persistent compilation cache, shared through the environment by the workers, the
# docs pages and the command-line runs: a second `make test` reads most programs back
# instead of compiling them (a compile-bound file: 28 -> 18 s of CPU). JAX's own size limit
# rescans the folder on every write (quadratic: a cold run 8 -> 12 min), so the folder is
# pruned here instead, once per run (`_prune_test_cache`). A half-written entry read by
# another process fails to decompress, and JAX then compiles (a warning, never a wrong
# program). SIMGRAD_TESTS_CACHE=0 turns it off.
_TEST_CACHE = None
if os.environ.get("SIMGRAD_TESTS_CACHE", "1") != "0":
    _cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    _TEST_CACHE = os.environ.setdefault(
        "JAX_COMPILATION_CACHE_DIR", os.path.join(_cache_home, "simgrad", "tests-jax")
    )
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

# The `simgrad` commands run in-process here keep no persistent compilation cache (it is
# tested in a subprocess, with its own cache folder, in tests/test_cli.py).
os.environ.setdefault("SIMGRAD_NO_CACHE", "1")

# Scripts that tests/test_devices.py runs in fresh processes (they set XLA_FLAGS before JAX
# starts, or join a jax.distributed run): never imported here, not even for doctests.
collect_ignore = ["devices_check.py", "multihost_check.py"]

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261126)


def pytest_xdist_make_scheduler(config, log):
    """``pytest -n N --dist loadfile`` (``make test``) sends one test file at a time to a
    worker, so that its module-level simulators compile once, but each docs page of
    tests/test_docs.py (a subprocess of its own per page) goes on its own: the pages spread
    over the workers instead of making one file the long pole."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False  # collection order: the longest files first

    class _PagesApart(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path, _, rest = nodeid.partition("::")
            if path.endswith("test_docs.py") and rest.startswith("test_block["):
                return f"{path}::{rest[len('test_block[') :].rpartition(':')[0]}"
            return super()._split_scope(nodeid)

    return _PagesApart(config, log)


# The files that take longest (`make test`'s --durations: the tuned-mass-damper design alone
# is 57 s): collected, hence started, first, so that no worker is left running one of them
# alone at the end while the other has finished (xdist otherwise orders files by their
# number of tests).
_LONGEST_FIRST = (
    "tests/models/test_applications.py",
    "tests/test_docs.py",
    "tests/test_distributions.py",
    "tests/adjoint/test_ode.py",
    "tests/relax/test_physics.py",
    "tests/test_devices.py",
    "tests/test_cli.py",
    "tests/estimators/test_claims.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return _LONGEST_FIRST.index(path) if path in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order is kept


def _prune_test_cache(limit: int = 2**30, keep: int = 2**29) -> None:
    """Past ``limit`` bytes, delete the entries written longest ago down to ``keep`` (every
    change of code or flags adds entries: ≈ 70 MB a full cold run)."""
    with os.scandir(_TEST_CACHE) as found:
        entries = sorted(
            (e.stat().st_mtime, e.stat().st_size, e.path) for e in found if e.is_file()
        )
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in entries:  # the oldest first
        if total <= keep:
            break
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        total -= size


def pytest_configure(config):
    if _TEST_CACHE and os.path.isdir(_TEST_CACHE) and not hasattr(config, "workerinput"):
        _prune_test_cache()
    config.addinivalue_line(
        "markers",
        "optimised_xla: bound by run time, not compilation (the tuned-mass-damper design: "
        "70 s of CPU unoptimised, 26 s optimised); runs in a fresh process with XLA's "
        "optimisations",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if _OPTIMISED or pyfuncitem.get_closest_marker("optimised_xla") is None:
        return None
    env = dict(os.environ, SIMGRAD_TESTS_XLA="optimised")
    env["XLA_FLAGS"] = f"{_USER_XLA_FLAGS or ''} {_ONE_THREAD}".strip()
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    done = subprocess.run(
        [sys.executable, *args, pyfuncitem.nodeid],
        cwd=pyfuncitem.config.rootpath, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return True
