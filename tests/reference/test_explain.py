"""`simgrad explain`: the printed worked example, checked symbolically and in numbers."""

import math
import re

import pytest
from typer.testing import CliRunner

from simgrad.cli import app

runner = CliRunner()
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
CASES = [(0.5, 2.0, 0.1), (2.0, 3.0, 0.01), (-1.25, 0.75, 0.2), (0.003, -4.5, 1.5), (1.0, 0.0, 1.0)]

# The four steps, exactly as the textbook writes them, and what each means in numbers.
STEPS = [
    ("(y0,0)·(y0,0) = (y0², 0)", lambda p, y0, h: [y0, 0, y0, 0, y0**2, 0]),
    ("(p,1)·(y0²,0) = (p·y0², y0²)", lambda p, y0, h: [p, 1, y0**2, 0, p * y0**2, y0**2]),
    (
        "(h,0)·(-p·y0², -y0²) = (-h·p·y0², -h·y0²)",
        lambda p, y0, h: [h, 0, -p * y0**2, -(y0**2), -h * p * y0**2, -h * y0**2],
    ),
    (
        "(y0,0) + (-h·p·y0², -h·y0²) = (y0 - h·p·y0², -h·y0²)",
        lambda p, y0, h: [y0, 0, -h * p * y0**2, -h * y0**2, y0 - h * p * y0**2, -h * y0**2],
    ),
]


def invoke(*args):
    result = runner.invoke(app, ["explain", *args], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.output


def numbers(text):
    return [float(x) for x in NUMBER.findall(text)]


def assert_numbers(text, expected):
    got = numbers(text)
    assert len(got) == len(expected), (text, expected)
    for g, e in zip(got, expected, strict=True):
        assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-12), (text, expected)


def cell(line):
    """The last non-empty cell of a table row."""
    return [c.strip() for c in line.split("│") if c.strip()][-1]


@pytest.mark.parametrize(("p", "y0", "h"), CASES)
def test_forward_prints_the_four_steps_exactly(p, y0, h):
    lines = invoke("forward", "--p", str(p), "--y0", str(y0), "--h", str(h)).splitlines()
    rows = [i for i, line in enumerate(lines) if "│" in line]
    for k, (symbolic, meaning) in enumerate(STEPS, start=1):
        (at,) = [i for i in rows if f"({k})" in lines[i]]
        assert cell(lines[at]) == symbolic
        assert_numbers(cell(lines[at + 1]), meaning(p, y0, h))
    seeds = {cell_row[0]: cell_row for cell_row in (
        [c.strip() for c in lines[i].split("│") if c.strip()] for i in rows
    ) if cell_row and cell_row[0] in ("p", "y0", "h")}  # fmt: skip
    assert seeds["p"][1] == "(p, 1)" and seeds["y0"][1] == "(y0, 0)" and seeds["h"][1] == "(h, 0)"
    assert_numbers(seeds["p"][2], [p, 1])
    assert_numbers(seeds["y0"][2], [y0, 0])
    (final,) = [line for line in lines if line.startswith("∂y1/∂p = -h·y0² = ")]
    assert_numbers(final.removeprefix("∂y1/∂p = -h·y0² = "), [-h * y0**2])


@pytest.mark.parametrize(("p", "y0", "h"), CASES)
def test_reverse_prints_the_tape_and_all_three_derivatives(p, y0, h):
    out = invoke("reverse", "--p", str(p), "--y0", str(y0), "--h", str(h))
    for entry in ["v1 = y0 · y0", "v2 = p · v1", "v3 = -v2", "v4 = h · v3", "y1 = y0 + v4"]:
        assert entry in out
    assert "p\u0304 += ∂v2/∂p · v\u03042" in out  # p̄ += ∂v2/∂p · v̄2
    assert "y\u03040 += ∂v1/∂y0 · v\u03041" in out
    expected = {
        "∂y1/∂p = -h·y0² = ": -h * y0**2,
        "∂y1/∂y0 = 1 - 2·h·p·y0 = ": 1 - 2 * h * p * y0,
        "∂y1/∂h = -p·y0² = ": -p * y0**2,
    }
    lines = out.splitlines()
    for prefix, value in expected.items():
        (line,) = [x for x in lines if x.startswith(prefix)]
        assert_numbers(line.removeprefix(prefix), [value])
    assert "One backward pass gave all 3 derivatives" in out


def test_defaults_are_the_textbook_numbers():
    assert "(2, 0) + (-0.2, -0.4) = (1.8, -0.4)" in invoke("forward")
    assert "∂y1/∂y0 = 1 - 2·h·p·y0 = 0.8" in invoke("reverse")


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_non_finite_numbers_are_refused(mode):
    result = runner.invoke(app, ["explain", mode, "--p", "nan"], env={"COLUMNS": "160"})
    assert result.exit_code != 0
    assert "--p must be a finite number" in result.output


def test_forward_fits_an_80_column_terminal():
    out = runner.invoke(app, ["explain", "forward"], env={"COLUMNS": "80"}).output
    for symbolic, _ in STEPS:
        assert symbolic in out
