"""Docs are tests: every code block of README.md and docs/ runs and prints what the page shows.

One test per code block, named ``PAGE:LINE``. Each page runs once, in a fresh process (so
in float32 unless the page turns on x64; the suite's conftest does not reach it), in an
empty temporary folder; two pages run at a time. The conventions are in
tests/docs_harness.py and docs/install.md ("Docs are tests"). Run one page with
``pytest tests/test_docs.py -k relax``.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docs_harness import ROOT, Tolerance, blocks, compare, pages

HARNESS = Path(__file__).with_name("docs_harness.py")
PAGE_TIMEOUT_S = 600


def _items():
    for page in pages():
        for block in blocks(page):
            name = f"{page.relative_to(ROOT)}:{block.line}"
            yield pytest.param(page, block.line, id=name)


def _run(page: Path) -> dict[int, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_ENABLE_X64")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="simgrad-docs-") as cwd:
        out = Path(cwd) / "results.json"
        runner = subprocess.Popen(
            [sys.executable, str(HARNESS), str(page), str(out)],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _RUNNING.add(runner)
        try:
            _, stderr = runner.communicate(timeout=PAGE_TIMEOUT_S)
        finally:
            runner.kill()
            _RUNNING.discard(runner)
        if runner.returncode != 0 or not out.exists():
            raise RuntimeError(f"{page}: the page runner failed:\n{stderr[-4000:]}")
        return {r["line"]: r for r in json.loads(out.read_text(encoding="utf-8"))}


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)
_FUTURES: dict[Path, concurrent.futures.Future] = {}
_RUNNING: set[subprocess.Popen] = set()


@pytest.fixture(scope="session")
def page_results(request):
    """Results per page, computed once; the pages selected run two at a time, in order.
    Pages still queued or running when the session ends (``-x``, Ctrl-C) are dropped."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # under xdist, each worker runs its own
        wanted = [i.callspec.params["page"] for i in request.session.items if _is_block(i)]
        for page in dict.fromkeys(wanted):
            _submit(page)

    def get(page: Path) -> dict[int, dict]:
        return _submit(page).result()

    yield get
    _POOL.shutdown(wait=False, cancel_futures=True)
    for runner in list(_RUNNING):
        runner.kill()


def _submit(page: Path) -> concurrent.futures.Future:
    if page not in _FUTURES:
        _FUTURES[page] = _POOL.submit(_run, page)
    return _FUTURES[page]


def _is_block(item) -> bool:
    return getattr(item, "originalname", None) == "test_block" and hasattr(item, "callspec")


@pytest.mark.parametrize("page, line", list(_items()))
def test_block(page, line, page_results):
    result = page_results(page)[line]
    where = f"{page.relative_to(ROOT)}:{line}"
    if result["status"] == "skipped":
        pytest.skip(f"{where}: {result['message']}")
    if result["status"] == "failed":
        pytest.fail(f"{where} ({result['language']} block):\n{result['message']}", pytrace=False)


# The comparison itself: each rule can fail.


def test_numbers_without_a_tolerance_match_exactly():
    assert compare("grad -0.7425607", "grad -0.7425607") is None
    assert compare("grad -0.7425607", "grad -0.74256071") is not None  # fewer digits shown
    assert compare("grad -0.74256071", "grad -0.7425607") is not None
    assert compare("0.50", "0.5") is not None  # same value, other text
    assert compare("1e-05", "1e-5") is not None
    assert compare("n = 1 2", "n = 12") is not None  # one number is not two


def test_numbers_with_a_tolerance_match_to_the_digits_shown():
    digits = Tolerance.parse("rtol=0")
    assert compare("grad -0.7425607", "grad -0.74256071", digits) is None
    assert compare("delta 0.01902", "delta 0.019021", digits) is None
    assert compare("delta 0.01902", "delta 0.01851", digits) is not None  # relax.md's old claim
    assert compare("15.09", "15.170", digits) is not None
    assert compare("-0.4", "-0.4000001", digits) is None
    assert compare("0.50", "0.5", digits) is None


def test_text_and_ellipsis():
    assert compare("a  b\nc", "a b c") is None
    assert compare("Estimate(...)\n value", "Estimate(Pathwise(), n=3)\n value") is None
    assert compare("wrote .../theta.json", "wrote /tmp/simgrad-docs-x1/theta.json") is None
    assert compare("wrote .../theta.json", "wrote /tmp/x/theta.csv") is not None
    assert compare("grad", "value") == "the text differs (numbers aside)"
    assert compare("float32 x64", "float32 x64") is None


def test_monte_carlo_tolerance_uses_the_error_bar():
    mc = Tolerance.parse("sigma=4")
    assert compare("15.09 ± 0.05", "15.170 ± 0.051", mc) is None
    assert compare("15.09 ± 0.05", "15.170 ± 0.051") is not None
    assert compare("15.09 ± 0.05", "15.40 ± 0.05", mc) is not None  # 6 sigma
    assert compare("15.09 ± 0.05", "15.09 ± 0.09", mc) is not None  # the error bar itself
    assert compare("best 0.01", "best 0.03", Tolerance.parse("rtol=2")) is None
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance.parse("sigmas=4")
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance.parse("")


def test_a_marker_reaches_its_block_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- tolerance: sigma=4 -->\n```python\nprint(1)\n```\n\n```python\nprint(2)\n```\n",
        encoding="utf-8",
    )
    marked, plain = blocks(page)
    assert marked.tolerance == Tolerance(sigma=4)
    assert plain.tolerance is None
