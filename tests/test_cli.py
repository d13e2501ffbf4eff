"""The `simgrad` command: help, the demo's table and JSON, and its errors."""

import json

from typer.testing import CliRunner

from simgrad.cli import app

runner = CliRunner()


def test_help_explains_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--model" in result.output


def test_demo_json_rows_agree_with_exact_answers():
    result = runner.invoke(app, ["demo", "--json", "-m", "euler", "-m", "european"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"euler", "european"}
    for row in rows:
        if row["model"] == "euler":
            assert row["abs_error"] < 1e-6
        else:
            assert row["z_score"] < 4
        assert row["n_evals"] > 0 and row["ms"] >= 0


def test_demo_table_lists_every_model():
    result = runner.invoke(app, ["demo", "--scale", "0.01"])
    assert result.exit_code == 0, result.output
    for name in ("euler", "kink", "european", "asian", "pathwise-reverse", "fd-central-crn"):
        assert name in result.output


def test_unknown_model_is_a_clear_error():
    result = runner.invoke(app, ["demo", "-m", "nope"])
    assert result.exit_code != 0
    assert "unknown model" in result.output
