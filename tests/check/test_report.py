"""The HTML report: self-contained, opens in headless Chromium with its plots; the command."""

import pathlib
import re
import shutil
import subprocess
import tempfile

import jax
import jax.flatten_util
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

import simgrad as sg
from simgrad.cli import app

CHROMIUM = "/usr/bin/chromium"


def _report(tmp_path, name="report.html"):
    model = sg.models.DigitalCall()
    report = sg.check(model, model.default_theta(), jax.random.key(0))
    return pathlib.Path(report.to_html(tmp_path / name, n_samples=64))


def test_html_is_self_contained_with_a_line_per_parameter_and_the_epsilon_plot(tmp_path):
    page = _report(tmp_path).read_text(encoding="utf-8")
    n_params = jax.flatten_util.ravel_pytree(sg.models.DigitalCall().default_theta())[0].size
    assert page.count("src='data:image/png;base64,") == n_params + 1
    # Nothing is fetched: no external URL, script or stylesheet link.
    assert not re.search(r"(src|href)=['\"](https?:|//)", page)
    assert "<script" not in page and "<link" not in page
    assert "digital.py:51" in page and "score function" in page


@pytest.mark.skipif(
    not pathlib.Path(CHROMIUM).exists(),
    reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install -y chromium)",
)
def test_report_opens_in_headless_chromium_and_shows_the_plots(tmp_path):
    path = _report(tmp_path)
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", f"--user-data-dir={profile}"]  # fmt: skip
    done = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,3600", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # The DOM as Chromium built it: both images decoded (naturalWidth > 0 needs a script;
    # instead check the screenshot's pixels below) and no error page.
    dom = subprocess.run([*common, "--dump-dom", path.as_uri()], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert dom.returncode == 0 and "plot-0" in dom.stdout and "plot-1" in dom.stdout
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3600, 1200)

    def count(rgb):  # pixels of a matplotlib colour: only a rendered plot has them
        return int(np.sum(np.all(np.abs(pixels - np.array(rgb) / 255) < 0.06, axis=-1)))

    assert count((31, 119, 180)) > 200  # C0: the function and the CRN variance
    assert count((214, 39, 40)) > 200  # C3: the AD derivative
    assert count((255, 127, 14)) > 50  # C1: the independent-draws variance
    shutil.rmtree(profile, ignore_errors=True)


def test_check_command_prints_findings_and_writes_the_report(tmp_path):
    runner = CliRunner()
    out = tmp_path / "kink.html"
    result = runner.invoke(
        app, ["check", "tests.check.defects:kinks", "--theta", "1.0", "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "[kink] abs" in result.output and "kink_at_theta" in result.output
    # |θ - 1| + relu(θ - 2) + clip(θ, 0, 3) at θ = 1: slopes -1 + 0 + 1 and 1 + 0 + 1.
    assert "slope 0 from the left, 2 from the right" in result.output
    assert out.exists() and "data:image/png;base64," in out.read_text(encoding="utf-8")


def test_check_command_takes_a_vector_theta_and_reports_clean(tmp_path):
    out = tmp_path / "bs.html"
    result = CliRunner().invoke(
        app,
        ["check", "tests.check.defects:black_scholes", "--theta", "100.0,0.2", "--html", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "clean" in result.output and out.exists()


def test_check_command_explains_bad_input():
    runner = CliRunner()
    result = runner.invoke(app, ["check", "nomodule", "--theta", "1.0"])
    assert result.exit_code != 0 and "module:function" in result.output
    result = runner.invoke(app, ["check", "tests.check.defects:kinks", "--theta", "a,b"])
    assert result.exit_code != 0 and "give numbers" in result.output


def test_lines_through_the_first_parameters_and_a_note_for_the_rest(tmp_path):
    theta = jnp.linspace(0.5, 1.2, 8)  # 8 parameters: 6 lines, 2 left for direction=
    report = sg.check(lambda t, key: jnp.sum(jnp.abs(t - 1.0)), theta)
    page = pathlib.Path(report.to_html(tmp_path / "r.html", n_samples=2)).read_text("utf-8")
    assert page.count("src='data:image/png;base64,") == 6 + 1
    assert "2 more are not drawn" in page
    for i in range(6):
        assert f"the unit step in θ[{i}]" in page
    assert "the unit step in θ[6]" not in page
