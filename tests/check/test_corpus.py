"""sg.check and sg.one_sided on the corpus of outside-style programs (tests/check/corpus.py):
every marked culprit found at its line, nothing on smooth programs or unmarked lines, no
crash, and one-sided slopes equal to hand-derived ones."""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simgrad as sg
from simgrad import fd_hazards

from . import corpus

KEY = jax.random.key(0)


def _marks(name) -> dict[int, set]:
    """{line: kinds} of the ``# CULPRIT: kind, kind`` comments of a program and its helpers."""
    marks: dict[int, set] = {}
    for fn in (corpus.PROGRAMS[name], *corpus.HELPERS.get(name, [])):
        lines, start = inspect.getsourcelines(getattr(fn, "__wrapped__", fn))
        for offset, text in enumerate(lines):
            m = re.search(r"# CULPRIT: ([\w, ]+)", text)
            if m:
                marks[start + offset] = {k.strip() for k in m.group(1).split(",")}
    return marks


def test_the_corpus_is_large_and_half_smooth():
    marked = [name for name in corpus.PROGRAMS if _marks(name)]
    assert len(corpus.PROGRAMS) >= 40
    assert 15 <= len(marked) <= len(corpus.PROGRAMS) - 15


@pytest.mark.parametrize("name", list(corpus.PROGRAMS))
def test_every_culprit_is_found_at_its_line_and_nothing_else(name):
    report = sg.check(corpus.PROGRAMS[name], corpus.POINTS[name], KEY)
    found: dict[int, set] = {}
    for f in report.findings:
        # Every finding points into the user's file, never into a library (diffrax, optax).
        assert f.file is not None and f.file.endswith("corpus.py"), (name, str(report))
        assert f.ad_returns and f.remedy
        found.setdefault(f.line, set()).add(f.kind)
    marks = _marks(name)
    for line, kinds in marks.items():
        assert kinds <= found.get(line, set()), (name, line, kinds, str(report))
    assert set(found) <= set(marks), (name, str(report))
    assert report.clean == (not marks)


@pytest.mark.parametrize("name", list(corpus.ONE_SIDED))
def test_one_sided_equals_hand_derived_slopes(name):
    f, theta, h, left, right = corpus.ONE_SIDED[name]
    d = sg.one_sided(f, theta, h)
    np.testing.assert_allclose([float(d.left), float(d.right)], [left, right], atol=1e-9)
    assert d.kink == (left != right)


def test_fd_hazards_name_rejection_samplers_and_discrete_draws():
    def gamma_shape(t, key):
        return jnp.mean(jax.random.gamma(key, t, (4,)))

    (line,) = fd_hazards(gamma_shape, 2.0, KEY)
    assert line.startswith("jax.random.gamma at ") and "test_corpus.py" in line
    assert "rejection" in line
    for name in ("categorical_choice", "bernoulli_coin"):
        (line,) = fd_hazards(corpus.PROGRAMS[name], corpus.POINTS[name], KEY)
        assert "0 ± 0" in line and "corpus.py" in line
    # Reparameterised noise and a gamma whose shape does not depend on θ are safe.
    assert fd_hazards(corpus.reparameterised_noise, corpus.POINTS["reparameterised_noise"]) == []
    assert fd_hazards(lambda t, k: t * jax.random.gamma(k, 2.0), 1.0, KEY) == []
