"""Run the code blocks of a Markdown page in order and compare what they print with the page.

The conventions (also in docs/install.md, "Docs are tests"):

* A ```` ```python ```` block runs; all blocks of one page share one namespace, in page
  order, in a fresh process, in JAX's default float32 unless the page itself turns on
  ``jax_enable_x64``. The working directory is an empty temporary folder.
* A block that holds ``>>>`` prompts is a doctest (same namespace).
* The output a block prints is compared with a fence without a language (or ``text``)
  that follows it, with nothing but blank lines between. A block that prints while the
  page shows no output fails: the page must show what it prints.
* Comparison: text with runs of whitespace collapsed; ``...`` matches anything. Numbers
  are text too: without a tolerance marker, the page shows each number exactly as printed,
  every digit. A tolerance marker, written just before the block, makes numbers compare by
  value instead, each to the digits shown (one unit of the last digit shown, or 1e-5
  relative) at least: ``<!-- tolerance: sigma=4 -->`` for output that is Monte Carlo lets a
  number shown as ``a ± s`` move by 4 s, and its ``s`` by ``stderr_rtol`` (25 %);
  ``rtol=`` and ``atol=`` loosen every number (``rtol=0.05, sigma=4`` combine).
* ``<!-- skip: next "why" -->`` (sybil's directive) skips the next block, and the test
  report shows why; ``skip: start`` / ``skip: end`` skip a stretch.
* A ```` ```console ```` block whose commands are ``$ simgrad ...`` runs them and
  compares their output; other shell blocks are skipped (the CLI tests cover them).

This module needs no JAX: ``tests/test_docs.py`` parses pages in the test process and runs
each page here in a subprocess, ``python tests/docs_harness.py PAGE RESULTS.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path
from unittest import SkipTest

from sybil import Document, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer
from sybil.parsers.markdown.skip import SkipParser

ROOT = Path(__file__).resolve().parents[1]

_INFO = re.compile(r"(?P<language>[\w+-]*)[ \t]*$\n", re.MULTILINE)
_OUTPUT_LANGUAGES = {"", "text", "output"}
_SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}


# --- comparing output ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far printed numbers may move: see the module docstring."""

    rtol: float = 0.0
    atol: float = 0.0
    sigma: float = 0.0
    stderr_rtol: float = 0.25

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        fields = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in ("rtol", "atol", "sigma", "stderr_rtol") or not value:
                raise ValueError(
                    f"tolerance: {part!r} is not one of rtol=, atol=, sigma=, stderr_rtol="
                )
            fields[name] = float(value)
        if not fields:
            raise ValueError("tolerance: name at least one of rtol=, atol=, sigma=, stderr_rtol=")
        return cls(**fields)


_NUMBER = re.compile(r"[-+−]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PLUS_MINUS = re.compile(r"\s*±\s*$")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into ("text", ...) and ("number", ...) tokens; whitespace runs become one space."""
    text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    out, pos = [], 0
    for m in _NUMBER.finditer(text):
        # A digit glued to a name (x64, float32, theta2) is text, not a number.
        if m.start() > 0 and (text[m.start() - 1].isalpha() or text[m.start() - 1] == "_"):
            continue
        out.append(("text", text[pos : m.start()]))
        out.append(("number", m.group()))
        pos = m.end()
    out.append(("text", text[pos:]))
    return [(kind, re.sub(r"\s+", " ", t) if kind == "text" else t) for kind, t in out]


def _value(token: str) -> float:
    return float(token.replace("−", "-"))


def _last_digit(token: str) -> float:
    """The unit of the last digit shown: 0.0190 -> 1e-4, 15.09 -> 1e-2, 3e-5 -> 1e-5."""
    mantissa, _, exponent = token.lower().replace("−", "-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _number_ok(expected: str, got: str, allowed: float) -> bool:
    e, g = _value(expected), _value(got)
    if math.isnan(e) or math.isnan(g):
        return math.isnan(e) and math.isnan(g)
    return abs(g - e) <= allowed or e == g


def compare(expected: str, got: str, tol: Tolerance | None = None) -> str | None:
    """None if ``got`` matches ``expected`` (see the module docstring), else why not.

    ``tol`` None (no tolerance marker): every number as the page shows it, digit for digit.
    """
    pattern, numbers = [], []
    exp_tokens = _tokens(expected)
    for i, (kind, text) in enumerate(exp_tokens):
        if kind == "text":
            pieces = text.split("...")
            pattern.append(".*?".join(re.escape(p).replace(r"\ ", r"\s*") for p in pieces))
        else:
            # Whole numbers only: "12" is not "1" and "2" with the whitespace between dropped.
            pattern.append(f"({_NUMBER.pattern})(?![0-9])")
            previous = exp_tokens[i - 1][1] if i > 0 else ""
            following = exp_tokens[i + 1][1] if i + 1 < len(exp_tokens) else ""
            role = "stderr" if _PLUS_MINUS.search(previous) else "plain"
            if role == "plain" and following.strip().startswith("±") and i + 2 < len(exp_tokens):
                role = ("value", exp_tokens[i + 2][1])
            numbers.append((text, role))
    got_text = "\n".join(line.rstrip() for line in got.strip("\n").splitlines())
    match = re.fullmatch(r"\s*" + "".join(pattern) + r"\s*", got_text, re.DOTALL)
    if match is None:
        return "the text differs (numbers aside)"
    bad = []
    for (exp, role), g in zip(numbers, match.groups(), strict=True):
        if tol is None:
            if g != exp:
                bad.append(f"{g} where the page says {exp} (no tolerance marker: digit for digit)")
            continue
        slack = max(1.0001 * _last_digit(exp), 1e-5 * abs(_value(exp)))
        allowed = max(slack, tol.rtol * abs(_value(exp)), tol.atol)
        if tol.sigma and isinstance(role, tuple):
            allowed = max(allowed, tol.sigma * abs(_value(role[1])))
        if tol.sigma and role == "stderr":
            allowed = max(allowed, tol.stderr_rtol * abs(_value(exp)))
        if not _number_ok(exp, g, allowed):
            bad.append(f"{g} where the page says {exp} (allowed ±{allowed:.3g})")
    return "; ".join(bad) or None


# --- parsing a page --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """One code block: its language, source, shown output (or None) and tolerance."""

    language: str
    source: str
    line: int  # 1-based line of the opening fence
    source_line: int  # 1-based line of the first source line
    output: str | None
    tolerance: Tolerance | None  # None: no marker, numbers exactly as shown


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def parse_blocks(document: Document) -> list[Region]:
    """Regions for the code blocks of a Markdown document, output blocks folded in."""
    text = document.text
    fences = list(RawFencedCodeBlockLexer(info_pattern=_INFO, mapping=None)(document))
    # sybil's lexed directive ends before the comment's "-->": the marker's end is after it.
    tolerances = {
        text.index("-->", lexed.end) + 3: lexed.lexemes["arguments"]
        for lexed in DirectiveInHTMLCommentLexer("tolerance", arguments=".*?")(document)
    }
    regions, consumed = [], set()
    for i, region in enumerate(fences):
        if i in consumed:
            continue
        language = region.lexemes["language"].lower()
        if language in _OUTPUT_LANGUAGES:
            continue  # a listing of text, not code
        tolerance = None
        for end, arguments in tolerances.items():
            if end <= region.start and not text[end : region.start].strip():
                tolerance = Tolerance.parse(arguments)
        output = None
        if i + 1 < len(fences):
            nxt = fences[i + 1]
            if (
                nxt.lexemes["language"].lower() in _OUTPUT_LANGUAGES
                and not text[region.end : nxt.start].strip()
            ):
                output = str(nxt.lexemes["source"])
                consumed.add(i + 1)
        source = region.lexemes["source"]
        block = Block(
            language=language,
            source=str(source),
            line=_line(text, region.start),
            source_line=_line(text, region.start) + 1,
            output=output,
            tolerance=tolerance,
        )
        regions.append(Region(region.start, region.end, block, evaluate_block))
    return regions


def load(path: Path) -> Document:
    """The page as a sybil Document: its code blocks and its skip directives."""
    document = Document(path.read_text(encoding="utf-8"), str(path))
    for parser in (parse_blocks, SkipParser()):
        for region in parser(document):
            document.add(region)
    return document


# --- running a page (in the subprocess) ------------------------------------------------


class _Checker(doctest.OutputChecker):
    """Doctest's checker with the same number rules as the output blocks."""

    tolerance: Tolerance | None = None

    def check_output(self, want, got, optionflags):
        return compare(want, got, self.tolerance) is None


def _run_python(block: Block, namespace: dict, page: str) -> str:
    """Execute a block; returns what it printed."""
    code = compile("\n" * (block.source_line - 1) + block.source, page, "exec")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(code, namespace)
    return buffer.getvalue()


def _run_doctest(block: Block, namespace: dict, page: str) -> str | None:
    test = doctest.DocTestParser().get_doctest(
        block.source, namespace, page, page, block.source_line - 1
    )
    checker = _Checker()
    checker.tolerance = block.tolerance
    runner = doctest.DocTestRunner(
        checker=checker, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report = io.StringIO()
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)
    return report.getvalue() if runner.failures else None


def _run_console(block: Block) -> str:
    commands = [line[2:] for line in block.source.splitlines() if line.startswith("$ ")]
    if not commands or not all(c.startswith("simgrad ") for c in commands):
        raise SkipTest("a shell command other than simgrad: not run by the docs tests")
    expected = [line for line in block.source.splitlines()]
    out = []
    simgrad = Path(sys.executable).with_name("simgrad")
    for command in commands:
        argv = [str(simgrad), *shlex.split(command)[1:]]
        env = dict(os.environ, COLUMNS="80", NO_COLOR="1", TERM="dumb")
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        out.append(f"$ {command}\n{done.stdout}")
    return compare("\n".join(expected), "".join(out), block.tolerance)


def evaluate_block(example) -> str | None:
    """sybil evaluator: raise SkipTest, or return a failure message, or None."""
    block: Block = example.parsed
    page = example.path
    if block.language in _SHELL_LANGUAGES:
        if block.language == "console":
            return _run_console(block)
        raise SkipTest("shell commands: not run here (tests/test_cli.py runs the simgrad commands)")
    if block.language not in ("python", "py", "pycon"):
        raise SkipTest(f"a {block.language!r} block is not run")
    if ">>>" in block.source:
        return _run_doctest(block, example.namespace, page)
    printed = _run_python(block, example.namespace, page)
    if block.output is None:
        if printed.strip():
            return "the block printed output but the page shows none:\n" + printed
        return None
    why = compare(block.output, printed, block.tolerance)
    if why is None:
        return None
    return f"{why}\n--- the page shows ---\n{block.output.rstrip()}\n--- it printed ---\n{printed}"


def _traceback(error: BaseException) -> str:
    """The traceback from the page's code on: the harness's and sybil's frames left out."""
    report = traceback.TracebackException.from_exception(error)
    here = (str(Path(__file__)), os.sep + "sybil" + os.sep)
    report.stack = traceback.StackSummary.from_list(
        [f for f in report.stack if not any(h in f.filename for h in here)][-10:]
    )
    return "".join(report.format())


def run_page(path: Path) -> list[dict]:
    """Evaluate every block of a page in order; one result per block."""
    document = load(path)
    document.namespace["__name__"] = "__main__"
    results = []
    for example in document:
        if not isinstance(example.parsed, Block):
            example.evaluate()  # a skip directive: installs or removes the skip
            continue
        block = example.parsed
        result = {"line": block.line, "language": block.language, "status": "passed"}
        start = time.perf_counter()
        try:
            example.evaluate()
        except SkipTest as e:
            result.update(status="skipped", message=str(e))
        except Exception as e:  # noqa: BLE001 - reported per block
            message = getattr(e, "result", None) or _traceback(e)
            result.update(status="failed", message=message)
        result["seconds"] = round(time.perf_counter() - start, 2)
        results.append(result)
    return results


def blocks(path: Path) -> list[Block]:
    """The code blocks of a page (parsing only: nothing runs)."""
    return [ex.parsed for ex in load(path) if isinstance(ex.parsed, Block)]


def pages() -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


if __name__ == "__main__":  # python tests/docs_harness.py PAGE RESULTS.json
    page, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    out.write_text(json.dumps(run_page(page)), encoding="utf-8")
