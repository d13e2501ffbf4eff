"""The lowest versions pyproject.toml allows do work: a fresh virtual environment with every
dependency of the core and of `plots` at its lower bound (the others at their newest) installs
simgrad and passes a cross-section of the suite: the CLI, plots, estimators, an ODE adjoint
and the optimiser.

It downloads JAX and the rest (minutes), so it runs only with SIMGRAD_TESTS_LOWEST=1:
`SIMGRAD_TESTS_LOWEST=1 .venv/bin/python -m pytest -n 0 tests/test_lowest_versions.py`.
"""

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SUITE = [
    "tests/test_cli.py",
    "tests/test_plots.py",
    "tests/test_results.py",
    "tests/test_estimate.py",
    "tests/test_optimize.py",
    "tests/adjoint/test_ode.py",
    "tests/surrogate/test_flow.py",
]

pytestmark = pytest.mark.skipif(
    os.environ.get("SIMGRAD_TESTS_LOWEST") != "1",
    reason="downloads the lowest allowed versions; set SIMGRAD_TESTS_LOWEST=1 to run it",
)


def lower_bounds(extras: tuple[str, ...] = ("plots",)) -> list[str]:
    """``name==version`` for every ``>=`` bound of the core dependencies and of ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        line for extra in extras for line in project["optional-dependencies"][extra]
    ]
    requirements = [Requirement(line) for line in lines]
    return [
        f"{r.name}=={s.version}" for r in requirements for s in r.specifier if s.operator == ">="
    ]


def test_lower_bounds_cover_every_dependency():
    names = {pin.split("==")[0] for pin in lower_bounds()}
    assert {"jax", "numpy", "scipy", "typer", "matplotlib", "flowjax"} <= names


def test_lowest_versions_pass(tmp_path):
    constraints = tmp_path / "lowest.txt"
    constraints.write_text("\n".join(lower_bounds()) + "\n")
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    install = [python, "-m", "pip", "install", "-q", "-c", str(constraints)]
    subprocess.run([*install, f"{ROOT}[plots]", "pytest", "pytest-xdist", "hypothesis"], check=True)
    versions = subprocess.run(
        [python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True
    ).stdout
    print(versions, file=sys.stderr)  # what was tested, for the record
    # src/ is not on that venv's path: the simgrad tested is the one pip built and installed.
    subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *SUITE],
        cwd=ROOT,
        check=True,
    )
