"""docs/reference-ad.md: its examples run, and it shows the real `simgrad explain` output."""

import doctest
import pathlib

import pytest
from typer.testing import CliRunner

from simgrad.cli import app

DOC = pathlib.Path(__file__).parents[2] / "docs" / "reference-ad.md"


def test_doc_examples_run():
    result = doctest.testfile(str(DOC), module_relative=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_doc_shows_the_real_cli_output(mode):
    out = CliRunner().invoke(app, ["explain", mode], env={"COLUMNS": "80"}).output
    text = DOC.read_text()
    missing = [line.rstrip() for line in out.splitlines() if line.rstrip() not in text]
    assert not missing, f"docs/reference-ad.md is out of date with `simgrad explain {mode}`"
