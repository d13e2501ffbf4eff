"""sg.check through smooth library functions with guarded singular points inside
(`jax.scipy.linalg.expm`'s scaling by the log of its norm): nothing reported where AD is
finite, while the user's own thresholds and NaN traps beside them still are."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import expm

import simgrad as sg

A = jnp.array([[1.0, 2.0], [0.5, -1.0]])
GENERATOR = jnp.array([[-1.0, 1.0, 0.0], [0.5, -1.5, 1.0], [0.0, 2.0, -2.0]])


def _line_of(fn, text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def trace_of_expm(t, key):
    return jnp.trace(expm(t * A))


def entry_of_expm(t, key):
    return expm(t * A)[0, 1]


def masked_expm(t, key):
    return jnp.sum(jnp.where(jnp.eye(2, dtype=bool), expm(t * A), 0.0))


def markov_chain(t, key):
    """P(state 2 at time 1 | state 0) for a continuous-time chain with rates scaled by θ."""
    return expm(t[0] * GENERATOR + t[1] * jnp.eye(3))[0, 2]


def threshold_beside_expm(t, key):
    m = jnp.trace(expm(t * A))
    return jnp.where(t > 2.0, m, 0.0)


def singular_input_to_expm(t, key):
    m = jnp.trace(expm(jnp.sqrt(t) * A))
    return jnp.where(t > 0.0, m, 0.0)


@pytest.mark.parametrize(
    "sim, theta",
    [(trace_of_expm, 3.0), (trace_of_expm, 0.0), (entry_of_expm, 3.0), (masked_expm, 3.0),
     (markov_chain, jnp.array([2.0, 0.5]))],
    ids=["trace", "trace at 0", "entry", "masked", "markov"],
)  # fmt: skip
def test_expm_is_clean_where_ad_is_finite(sim, theta):
    grad = jax.grad(lambda t: sim(t, None))(jnp.asarray(theta))
    assert np.all(np.isfinite(grad))  # the premise: AD is fine here
    report = sg.check(sim, theta)
    assert report.clean, str(report)


def test_a_threshold_beside_expm_is_still_reported():
    report = sg.check(threshold_beside_expm, 3.0)
    assert report.kinds() == ["threshold"], str(report)
    (finding,) = report.findings
    assert finding.line == _line_of(threshold_beside_expm, "jnp.where")


def test_a_singular_input_into_expm_is_still_a_nan_trap():
    """d/dt sqrt(t) is infinite at 0: where(t > 0, ·, 0) turns it into NaN in reverse mode."""
    grad = jax.grad(lambda t: singular_input_to_expm(t, None))(0.0)
    assert np.isnan(grad)  # the truth the finding states
    report = sg.check(singular_input_to_expm, 1.0)
    assert "nan_where" in report.kinds(), str(report)
    (finding,) = report.of_kind("nan_where")
    # at the first `where` downstream of the sqrt: jnp.trace's mask, or the user's own
    wheres = (_line_of(singular_input_to_expm, "jnp.trace"),
              _line_of(singular_input_to_expm, "jnp.where"))  # fmt: skip
    assert finding.line in wheres
