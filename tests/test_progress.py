"""Long runs keep a visible progress line when stderr is piped: plain text, no escapes."""

import subprocess
import sys
import textwrap


def test_optimize_prints_plain_progress_lines_when_piped():
    code = textwrap.dedent("""
        import jax, simgrad as sg
        sim = lambda t, k: (t + jax.random.normal(k) - 2.0) ** 2
        sg.optimize(sim, 0.0, jax.random.key(0), steps=3, n_samples=4)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "optimising: 3/3 objective" in done.stderr
    assert "\x1b[" not in done.stderr
