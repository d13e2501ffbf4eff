"""The reference site: it builds with warnings as errors, its API pages give every public
name its entry and signature, and in headless Chromium its search finds `sg.gradient`,
served or opened from disk (offline: links name files, formulas are MathML, nothing comes
from the network). Also what the wheel ships."""

import ast
import functools
import http.server
import importlib.metadata
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def _mkdocs_missing() -> bool:
    try:
        importlib.metadata.version("mkdocs-material")
        importlib.metadata.version("mkdocstrings-python")
        importlib.metadata.version("latex2mathml")
    except importlib.metadata.PackageNotFoundError:
        return True
    return False


needs_mkdocs = pytest.mark.skipif(
    _mkdocs_missing(), reason='mkdocs is not installed: pip install -e ".[docs]"'
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install -y chromium)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`mkdocs build --strict` into a temporary folder (≈ 10 s): a warning fails it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def _public(module):
    """(path, object) for each name in ``module.__all__``, and in its public subpackages'."""
    for name in module.__all__:
        obj = getattr(module, name)
        yield f"{module.__name__}.{name}", obj
        if inspect.ismodule(obj):
            yield from _public(obj)


def _entries(site: Path) -> dict[str, bool]:
    """The API reference's entries: heading id -> whether a signature follows it."""
    entries = {}
    for page in (site / "api").rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        _, *parts = re.split(r'<h\d id="([^"]+)" class="doc doc-heading"', html)
        for heading, body in zip(parts[::2], parts[1::2], strict=True):
            entries[heading] = "doc-signature" in body
    return entries


@needs_mkdocs
def test_api_reference_gives_every_public_name_an_entry_with_its_signature(site):
    """Each name in ``simgrad.__all__`` and in each public subpackage's ``__all__`` has an
    entry in docs/api/ (a subpackage's name re-exported at the top level may have its entry
    there), and every function and class but an exception shows its signature."""
    import simgrad

    entries = _entries(site)
    missing, unsigned = [], []
    for path, obj in _public(simgrad):
        name = path.rsplit(".", 1)[1]
        where = path if path in entries else f"simgrad.{name}"  # or re-exported at the top
        if where not in entries or (where != path and getattr(simgrad, name, None) is not obj):
            missing.append(path)
        elif callable(obj) and not entries[where]:
            if not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                unsigned.append(path)
    assert not missing, f"add '::: PATH' to the page of its subpackage in docs/api/: {missing}"
    assert not unsigned, f"these entries show no signature: {unsigned}"


def test_type_checking_imports_match_the_lazy_exports():
    """simgrad/__init__.py lists each public name twice (lazy table, TYPE_CHECKING imports):
    type checkers, IDEs and the API reference read the second, so they must agree."""
    import simgrad

    tree = ast.parse((ROOT / "src" / "simgrad" / "__init__.py").read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    names = {a.asname or a.name for n in block.body for a in n.names}
    assert names == set(simgrad.__all__)


@needs_mkdocs
def test_site_builds_strict_with_the_api_reference(site):
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="simgrad.gradient"' in api and "n_samples" in api
    assert "max_directions" in api  # sg.check's entry is the function's
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any(doc["location"].endswith("#simgrad.gradient") for doc in index["docs"])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _cdp_evaluate(url: str, expression: str, until, timeout: float = 60.0):
    """Open ``url`` in headless Chromium and poll a JavaScript expression until ``until``
    holds for its value (or time runs out); returns the last value.

    Chrome's DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4,
    messages ending in NUL): no driver, no websocket library."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="chromium-")
    # bash puts the protocol's pipes on fds 3 and 4 (no preexec_fn: JAX's threads and a
    # Python-level fork do not mix).
    wire = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
    browser = subprocess.Popen(
        ["bash", "-c", wire, str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe", url],
        pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(to_child_r)
    os.close(from_child_w)
    buffer, counter = b"", iter(range(1, 1 << 30))

    def call(method, session=None, **params):
        nonlocal buffer
        i = next(counter)
        message = {"id": i, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(to_child_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in buffer:
                chunk = os.read(from_child_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                buffer += chunk
            raw, _, buffer = buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == i:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    try:
        targets = call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        session = call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = call(
                "Runtime.evaluate", session["sessionId"], expression=expression,
                returnByValue=True,
            )["result"].get("value")  # fmt: skip
            if until(value):
                break
            time.sleep(0.25)
        return value
    finally:
        browser.kill()
        browser.wait()
        os.close(to_child_w)
        os.close(from_child_r)


@needs_mkdocs
@needs_chromium
def test_search_finds_sg_gradient_in_headless_chromium(site):
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/?q=sg.gradient"
        links = _cdp_evaluate(
            url,
            "Array.from(document.querySelectorAll('.md-search-result__item a'))"
            ".map(a => a.pathname + a.hash)",
            until=lambda links: links and "/api/index.html#simgrad.gradient" in links,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert links, "the search showed no result for 'sg.gradient'"
    assert "/api/index.html#simgrad.gradient" in links, links


# From disk the search index loads when the search opens: open it, as a reader would.
_SEARCH_RESULTS = """(() => {
    const toggle = document.querySelector("[data-md-toggle=search]");
    if (toggle && !toggle.checked) toggle.click();
    return Array.from(document.querySelectorAll(".md-search-result__item a"))
        .map(a => new URL(a.href).pathname + new URL(a.href).hash);
})()"""


@needs_mkdocs
@needs_chromium
def test_search_works_opened_from_disk(site):
    """site/index.html opened as a file, no server: the search worker starts (the shim in
    docs/assets/javascripts/ runs it in an iframe) and finds `sg.gradient`."""
    target = (site / "api" / "index.html").as_uri().removeprefix("file://") + "#simgrad.gradient"
    links = _cdp_evaluate(
        (site / "index.html").as_uri() + "?q=sg.gradient",
        _SEARCH_RESULTS,
        until=lambda links: links and target in links,
        timeout=30,
    )
    assert links, "opened from disk, the search showed no result for 'sg.gradient'"
    assert target in links, links


@needs_mkdocs
@needs_chromium
def test_a_subpackage_page_opened_from_disk_shows_the_signature(site):
    """api/adjoint.html, opened as a file, shows `simgrad.adjoint.ode_gradient` with its
    signature."""
    shown = _cdp_evaluate(
        (site / "api" / "adjoint.html").as_uri(),
        """(() => {
            const heading = document.getElementById("simgrad.adjoint.ode_gradient");
            const signature = heading && heading.parentElement.querySelector(".doc-signature");
            return signature && signature.innerText;
        })()""",
        until=bool,
        timeout=30,
    )
    assert shown, "api/adjoint.html shows no entry with a signature for ode_gradient"
    assert re.match(r"ode_gradient\(\s*problem", shown), shown


_URL = re.compile(r'<(a|link|script|img)\b[^>]*?\b(?:href|src)="([^"]*)"')


@needs_mkdocs
def test_the_site_opened_from_disk_is_offline(site):
    """Every internal link names a file that exists (from disk a folder is no page); no page
    loads a script or a style from the network; formulas are MathML, not LaTeX."""
    broken, remote = [], []
    for page in set(site.rglob("*.html")) - {site / "404.html"}:  # 404: a server's page
        name = page.relative_to(site)
        for tag, url in _URL.findall(page.read_text(encoding="utf-8")):
            if url.startswith(("http://", "https://")):
                if tag != "a":
                    remote.append(f"{name}: {url}")
            elif not url.startswith(("#", "mailto:")):
                path = url.split("#")[0].split("?")[0]
                if not (page.parent / path).is_file():
                    broken.append(f"{name}: {url}")
    assert not broken, f"links that name no file: {broken[:10]}"
    assert not remote, f"loaded from the network: {remote[:10]}"
    page = (site / "reference-ad.html").read_text(encoding="utf-8")
    assert page.count("<math") > 10 and "\\frac" not in page


def test_docstring_examples_use_the_section_the_api_reference_renders():
    """Google style's section is "Examples:"; "Example:" renders as an admonition whose
    doctest lines run together into one paragraph."""
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in (ROOT / "src" / "simgrad").rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip() == "Example:"
    ]
    assert not offenders, f"write 'Examples:' in {offenders}"


def test_every_imported_package_is_declared():
    """Each third-party import under src/ is a declared dependency of simgrad, or of its
    ``cluster`` extra (Dask and SimPy, imported only by the code that runs black boxes) or
    ``plots`` extra (matplotlib, imported only by plots and the report, which say how to
    install it when it is missing)."""
    declared = {
        re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")
        for req in importlib.metadata.requires("simgrad") or []
        if "extra ==" not in req or re.search(r"extra == .(cluster|plots).", req)
    }
    distributions = importlib.metadata.packages_distributions()
    imported = set()
    for path in (ROOT / "src" / "simgrad").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "simgrad"}
    undeclared = {
        m: distributions.get(m, [m])
        for m in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(m, [m])} & declared
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_wheel_ships_py_typed(tmp_path):
    pytest.importorskip("hatchling", reason="hatchling builds the wheel (the test extra has it)")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    import zipfile

    (wheel,) = tmp_path.glob("simgrad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "simgrad/py.typed" in names and "simgrad/cli.py" in names
