"""The `simgrad` command: help, version, the demo's table and JSON, `check` from the user's
folder, one-line errors, progress when piped, start-up without JAX, the compilation cache.

Tests that matter to a user at the shell run the installed command in a subprocess."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simgrad.cli import app

runner = CliRunner()
SIMGRAD = Path(sys.executable).with_name("simgrad")
needs_command = pytest.mark.skipif(
    not SIMGRAD.exists(), reason=f"the installed command {SIMGRAD} is missing (pip install -e .)"
)


def shell(*args, cwd=None, env=None, timeout=300):
    """Run the installed `simgrad` as a user would: stdout and stderr piped."""
    env = {**os.environ, "COLUMNS": "120", **(env or {})}
    env.pop("PYTHONPATH", None)  # the command must find user modules by itself
    return subprocess.run(
        [str(SIMGRAD), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


USER_MODULE = """
import jax.numpy as jnp


def sim(theta, key):  # a kink at 1
    return jnp.abs(theta - 1.0) + theta**2


def vector(theta, key):
    return jnp.stack([theta, 2 * theta])


not_a_function = 3.0


def first(theta, key):  # indexes theta: needs an array
    return theta[0] ** 2


def priced(theta, key):  # a dict θ, as the README's example simulator
    return theta["mu"] ** 2 + jnp.abs(theta["sigma"] - 0.5)


def with_numpy(theta, key):
    import numpy as np

    return np.sin(theta)


def three(theta, key, extra):
    return theta
"""


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    (folder / "mymodule.py").write_text(USER_MODULE)
    (folder / "broken.py").write_text("def sim(theta, key)\n    return theta\n")
    (folder / "raises.py").write_text("raise RuntimeError('no licence server')\n")
    return folder


def test_help_explains_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output and "--version" in result.output
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--model" in result.output


def test_help_names_the_arguments():
    """typer 0.27 and later print `{MODULE:FUNCTION}` for the argument and `<bool>` beside
    --help (hence the cap in pyproject.toml)."""
    result = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "[OPTIONS] MODULE:FUNCTION" in result.output
    assert "{" not in result.output.split("Usage:")[1].splitlines()[0]
    assert "<bool>" not in result.output


def test_version():
    import simgrad

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"simgrad {simgrad.__version__}"


def test_optimize_help_lists_the_applications():
    from simgrad.models.applications import APPLICATIONS

    result = runner.invoke(app, ["optimize", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in APPLICATIONS:
        assert name in result.output


def test_start_up_imports_no_numerics():
    """`simgrad --help` and `import simgrad` load neither JAX nor diffrax, scipy, matplotlib."""
    code = textwrap.dedent("""
        import sys
        import simgrad, simgrad.cli
        heavy = ("jax", "diffrax", "scipy", "matplotlib", "equinox", "optax")
        print(sorted(m for m in heavy if m in sys.modules))
        simgrad.gradient, simgrad.check  # the lazy names resolve
        print("jax" in sys.modules, callable(simgrad.check), sorted(simgrad.__all__) == sorted(
            n for n in simgrad.__all__ if hasattr(simgrad, n)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True True True"]


def test_check_function_survives_importing_the_subpackage():
    code = "import simgrad as sg, simgrad._check._report; print(callable(sg.check))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def test_demo_json_rows_agree_with_exact_answers():
    result = runner.invoke(app, ["demo", "--json", "-m", "euler", "-m", "european"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"euler", "european"}
    for row in rows:
        if row["model"] == "euler":
            assert row["abs_error"] < 1e-6
            assert all(v["kind"] == "exact" for v in row["verdict"].values())
        else:
            assert row["z_score"] < 4
        assert row["n_evals"] > 0 and row["ms"] >= 0


def test_demo_json_carries_the_tables_verdict():
    """Pathwise AD through the digital call's jump: 'biased' in the table and in the JSON."""
    args = ["demo", "-m", "digital", "-e", "pathwise-reverse", "-e", "score-loo"]
    table = runner.invoke(app, [*args, "--scale", "0.05"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    rows = json.loads(runner.invoke(app, [*args, "--scale", "0.05", "--json"]).stdout)
    verdicts = {r["estimator"]: {v["kind"] for v in r["verdict"].values()} for r in rows}
    assert verdicts == {"pathwise-reverse": {"biased"}, "score-loo": {"sigma"}}
    lines = [line for line in table.output.splitlines() if re.search(r"(?<!un)biased", line)]
    assert lines and all("score-loo" not in line for line in lines)
    assert any("pathwise-reverse" in line for line in lines)


def test_demo_table_shows_each_model_and_estimator():
    """The table on two models (the whole gallery is the demo's job, and the gallery tests')."""
    result = runner.invoke(app, ["demo", "--scale", "0.01", "-m", "euler", "-m", "kink"])
    assert result.exit_code == 0, result.output
    for name in ("euler", "kink", "pathwise-reverse", "fd-central-crn", "score-loo"):
        assert (name in result.output) == (name != "score-loo")  # no draws: no score rows


def test_unknown_estimator_is_a_clear_error():
    result = runner.invoke(app, ["demo", "-e", "magic"])
    assert result.exit_code == 2 and "unknown estimator" in result.output


def test_unknown_model_is_a_clear_error():
    result = runner.invoke(app, ["demo", "-m", "nope"])
    assert result.exit_code != 0
    assert "unknown model" in result.output


@needs_command
def test_check_finds_the_module_in_the_current_folder_and_shows_progress(user_folder):
    done = shell("check", "mymodule:sim", "--theta", "1.0", "--samples", "8", cwd=user_folder)
    assert done.returncode == 0, done.stderr
    assert "kink_at_theta" in done.stdout and (user_folder / "sim.html").exists()
    # stderr is a pipe: the progress is plain lines, not a live bar.
    assert "simgrad check: 0/2 reading the program" in done.stderr
    assert "simgrad check: 2/2" in done.stderr and "\x1b[" not in done.stderr


@needs_command
def test_check_takes_theta_as_json_and_in_the_api_dtype(user_folder):
    """A dict θ, an array of one (for a simulator that indexes θ), float32 by default."""
    for target, theta, kind in [
        ("mymodule:priced", '{"mu": 1.0, "sigma": 0.5}', "kink_at_theta"),
        ("mymodule:first", "[2.0]", None),
    ]:
        done = shell("check", target, "--theta", theta, "--samples", "4", cwd=user_folder)
        assert done.returncode == 0, done.stderr
        assert (kind in done.stdout) if kind else "clean" in done.stdout
    page = (user_folder / "priced.html").read_text(encoding="utf-8")
    assert "What each estimator promises here" in page
    assert "θ = [1, 0.5]" in page


BAD_INPUTS = [  # (arguments, what the one-line message must say)
    (["nomodule:sim", "--theta", "1"], "No module named 'nomodule'"),
    (["nomodule", "--theta", "1"], "write module:function"),
    (["broken:sim", "--theta", "1"], "syntax error (broken.py, line 1)"),
    (["raises:sim", "--theta", "1"], "RuntimeError: no licence server"),
    (["mymodule:nothing", "--theta", "1"], "has no 'nothing'"),
    (["mymodule:not_a_function", "--theta", "1"], "not a function"),
    (["mymodule:vector", "--theta", "1"], "scalar"),
    (["mymodule:sim", "--theta", "nan"], "must be finite"),
    (["mymodule:sim", "--theta", "1,inf"], "must be finite"),
    (["mymodule:sim", "--theta", "1e999"], "must be finite"),
    (["mymodule:sim", "--theta", "a,b"], "give numbers"),
    (["mymodule:sim", "--theta", "1", "--html", "nofolder/r.html"], "'nofolder' does not exist"),
    (["mymodule.py:sim", "--theta", "1"], "name the module, not its file: mymodule:sim"),
    (["mymodule:first", "--theta", "2.0"], "pass an array: --theta '[2.0]'"),
    (["mymodule:with_numpy", "--theta", "1"], "Use jax.numpy instead"),
    (["mymodule:three", "--theta", "1"], "Write def sim(theta, key)"),
    (["mymodule:priced", "--theta", '{"mu": 1.0, "sigma": null}'], "None: θ must be finite"),
]


@needs_command
@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_check_bad_input_is_a_one_line_usage_error(user_folder, args, message):
    done = shell("check", *args, cwd=user_folder)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    text = " ".join(done.stderr.replace("│", " ").split())  # rich wraps it inside its box
    assert message in text, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 12, done.stderr  # one boxed message


@needs_command
def test_compilation_cache_fills_and_can_be_turned_off(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "on"), "SIMGRAD_NO_CACHE": ""}
    runs = [shell("demo", "-m", "euler", "-e", "pathwise-reverse", "--json", env=env)
            for _ in range(2)]  # fmt: skip
    assert all(done.returncode == 0 for done in runs), runs[-1].stderr
    assert any((tmp_path / "on" / "simgrad" / "jax").iterdir())
    # the demo's program and plan, kept whole: the second run reads them back, same rows
    kept = [p for p in (tmp_path / "on" / "simgrad" / "jax-programs").rglob("*") if p.is_file()]
    assert len(kept) == 2 and sum(p.suffix == ".json" for p in kept) == 1
    rows = [[{k: v for k, v in row.items() if k not in ("ms", "compile_ms")}
             for row in json.loads(done.stdout)] for done in runs]  # fmt: skip
    assert rows[0] == rows[1] and rows[0][0]["claim"] == "unbiased"
    env = {"XDG_CACHE_HOME": str(tmp_path / "off"), "SIMGRAD_NO_CACHE": ""}
    done = shell("--no-cache", "demo", "-m", "euler", "-e", "pathwise-reverse", "--json", env=env)
    assert done.returncode == 0 and not (tmp_path / "off").exists()


def test_optimize_refuses_an_unwritable_checkpoint_before_the_run(tmp_path):
    for where, message in [(tmp_path / "no" / "r.eqx", "create the folder first"),
                           (tmp_path, "is a folder")]:  # fmt: skip
        result = runner.invoke(app, ["optimize", "any", "--checkpoint", str(where)])
        text = " ".join(result.output.replace("│", " ").split())  # rich wraps it in a box
        assert result.exit_code == 2 and message in text, result.output
