"""The HTML report of `sg.check`: findings and plots in one self-contained file.

Plots are matplotlib PNGs embedded as base64; no script, no stylesheet, no font is fetched,
so the file opens offline.
"""

import base64
import html
import io
import linecache
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._scan import KINDS
from .._src.plots import figure, require_matplotlib
from ._subject import black_box_fn, simulator_of
from ._taylor import taylor_test

_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f0f0f0; }
.clean { color: #1a7f37; font-weight: bold; }
.fail { color: #b42318; font-weight: bold; }
.kind { font-family: monospace; }
.unverified { color: #9a6700; font-weight: bold; }
.claim-unbiased { color: #1a7f37; } .claim-biased { color: #b42318; font-weight: bold; }
.claim-approximate, .claim-unverified { color: #9a6700; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code.source { display: inline-block; margin-top: 0.3em; white-space: pre; background: #f6f8fa; }
figcaption { max-width: 800px; }
"""


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _direction_label(report, direction) -> str:
    """``h`` in words, by the parameters' names: "h = the unit step in S0"."""
    from .._src.names import named_components

    h = np.ravel(np.asarray(direction, dtype=float))
    names = list(named_components(report.theta))
    if len(names) != h.size:
        names = [f"θ[{i}]" for i in range(h.size)]
    terms = [(n, v) for n, v in zip(names, h, strict=True) if v != 0]
    if len(terms) == 1 and terms[0][1] == 1.0:
        return f"h = the unit step in {terms[0][0]}"
    return "h = " + " + ".join(f"{v:g}·{n}" for n, v in terms)


def mean_derivative(ts, values, span: int = 4):
    """The derivative of the mean along the line, by central differences of each draw's
    values ``span`` grid points either side (common random numbers), with its standard
    error over draws.

    ``values`` has shape ``(n_points, n_draws)``; returns ``(t, mean, stderr)`` at the grid
    points ``span`` away from the ends. Unlike AD's per-path derivative this sees jumps:
    where the two disagree, AD is biased."""
    ts, values = np.asarray(ts), np.asarray(values)
    slopes = (values[2 * span :] - values[: -2 * span]) / (ts[2 * span :] - ts[: -2 * span])[
        :, None
    ]
    n = slopes.shape[1]
    stderr = slopes.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(slopes))
    return ts[span:-span], slopes.mean(1), stderr


def _batched(f, xs):
    """``f`` over the leading axis of ``xs``: `jax.vmap`, or `jax.lax.map` for a program
    that cannot be batched (a ``pure_callback`` without a ``vmap_method``, an ordered
    ``io_callback``)."""
    try:
        return jax.vmap(f)(xs)
    except Exception:  # noqa: BLE001 - anything vmap refuses: one at a time
        return jax.lax.map(f, xs)


def _half_width(x, h) -> float:
    """How far the line θ + t·h runs each way: half of θ's component along h (a parameter
    ± 50 %, so that a positive scale stays positive), or 0.5 where that component is 0."""
    along = abs(float(jnp.vdot(h, x))) / max(float(jnp.vdot(h, h)), 1e-300)
    return 0.5 * along if along > 0 else 0.5


def line_data(report, direction, n_samples: int, n_points: int = 161):
    """Value and AD derivative of the mean simulator along ``theta + t * direction``,
    and each draw's values (``(n_points, n_draws)``, for `mean_derivative`). Where AD
    cannot differentiate the program (``report.grad`` is None: a host callback), the
    derivative is NaN and only the values are computed."""

    sim = simulator_of(report.sim)
    x, unravel = ravel_pytree(report.theta)
    h = jnp.asarray(direction, x.dtype)
    ts = jnp.linspace(-1.0, 1.0, n_points, dtype=x.dtype) * _half_width(x, h)
    keys = jax.random.split(report.key, n_samples) if report.stochastic else report.key[None]

    def one(t, key, forward):
        g = lambda s: sim(unravel(x + s * h), key)  # noqa: E731
        if forward is None:
            value = g(t)
            return value, jnp.full_like(value, jnp.nan)
        if forward:
            return jax.jvp(g, (t,), (jnp.ones_like(t),))
        return jax.value_and_grad(g)(t)  # a jax.custom_vjp (diffrax): reverse mode only

    def run(forward):
        return _batched(lambda t: _batched(lambda k: one(t, k, forward), keys), ts)

    if report.grad is None:
        values, slopes = run(forward=None)
    else:
        try:
            values, slopes = run(forward=True)
        except TypeError:
            values, slopes = run(forward=False)
    values = np.asarray(values)
    return np.asarray(ts), values.mean(1), np.asarray(slopes.mean(1)), values


def fd_variance(report, direction, n_samples: int, eps):
    """Variance of central differences over keys, with and without common random numbers."""

    sim = simulator_of(report.sim)
    x, unravel = ravel_pytree(report.theta)
    h = jnp.asarray(direction, x.dtype)
    k1, k2 = jax.random.split(report.key)
    keys1, keys2 = jax.random.split(k1, n_samples), jax.random.split(k2, n_samples)

    def f(s, keys):
        return _batched(lambda k: sim(unravel(x + s * h), k), keys)

    crn, independent = [], []
    for e in eps:
        up = f(jnp.asarray(e, x.dtype), keys1)
        crn.append(float(jnp.var((up - f(jnp.asarray(-e, x.dtype), keys1)) / (2 * e))))
        independent.append(float(jnp.var((up - f(jnp.asarray(-e, x.dtype), keys2)) / (2 * e))))
    return np.asarray(crn), np.asarray(independent)


# Line plots drawn when no direction is asked for: one per parameter, up to this many.
MAX_LINE_PLOTS = 6


def write_html(report, path, *, direction=None, n_samples: int = 256) -> str:
    require_matplotlib()  # before the draws, not after them
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples={n_samples!r} must be an int >= 2.")
    x, _ = ravel_pytree(report.theta)
    if direction is None:  # along each parameter, the first few
        directions = [jnp.zeros_like(x).at[i].set(1.0) for i in range(min(x.size, MAX_LINE_PLOTS))]
    else:
        direction, _ = ravel_pytree(direction)
        if direction.shape != x.shape:
            raise ValueError(f"direction needs {x.size} entries (one per parameter).")
        directions = [direction]
    images = [_line_plot(report, d, n_samples, _direction_label(report, d)) for d in directions]
    # Stochastic: finite-difference variance against ε; deterministic: the Taylor test.
    fig = figure(True, figsize=(8, 4))
    ax = fig.subplots()
    verdict = ""  # why the Taylor test did not pass, if it did not
    if report.stochastic:
        along = _direction_label(report, directions[0])
        caption = _fd_variance_panel(ax, report, directions[0], n_samples, along)
    else:
        caption, verdict = _taylor_panel(ax, report)
    ax.set_xlabel("ε")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    images.append((caption, _png(fig)))
    left = x.size - len(directions) if direction is None else 0
    out = pathlib.Path(path)
    out.write_text(_page(report, images, verdict, left), encoding="utf-8")
    return str(out)


def _line_plot(report, direction, n_samples: int, along: str) -> tuple[str, str]:
    """The function and its derivatives along θ + t·h: ``(caption, png)``."""
    ts, values, slopes, per_draw = line_data(report, direction, n_samples)
    mid, mean_slope, mean_slope_se = mean_derivative(ts, per_draw)
    fig = figure(True, figsize=(8, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(ts, values, color="C0")
    top.set_ylabel("f" if not report.stochastic else f"mean f ({n_samples} draws)")
    if report.grad is not None:
        bottom.plot(ts, slopes, color="C3", label="AD's derivative (mean over draws)")
    bottom.plot(mid, mean_slope, color="C2", lw=1, label="derivative of the mean ± 2 s.e.")
    bottom.fill_between(
        mid, mean_slope - 2 * mean_slope_se, mean_slope + 2 * mean_slope_se,
        color="C2", alpha=0.25, lw=0,
    )  # fmt: skip
    bottom.set_ylabel("derivative along h")
    bottom.set_xlabel(f"t  (θ + t·h; {along})")
    bottom.legend(fontsize=8)
    for ax in (top, bottom):
        ax.axvline(0.0, color="0.5", ls=":")
        ax.grid(alpha=0.3)
    top.set_title(f"the function and its derivatives along a line through θ ({along})")
    caption = (
        f"Along the line θ + t·h, {along}: kinks and jumps show here. Where AD's "
        "derivative (red) leaves the band of the derivative of the mean (green: central "
        "differences of each draw's values over 8 grid steps), AD is biased."
    )
    if report.grad is None:
        caption = (
            f"Along the line θ + t·h, {along}: kinks and jumps show here. AD cannot "
            "differentiate this program, so only the derivative of the mean is drawn "
            "(green: central differences of each draw's values over 8 grid steps); a spike "
            "in it is a jump."
        )
    return caption, _png(fig)


def _fd_variance_panel(ax, report, direction, n_samples: int, along: str) -> str:
    """Draw the variance of central differences against ε, with and without common random
    numbers, on ``ax``; returns the caption."""
    x, _ = ravel_pytree(report.theta)
    scale = max(1.0, float(jnp.max(jnp.abs(x))))
    eps = scale * np.logspace(-5, -0.5, 10)
    crn, independent = fd_variance(report, direction, n_samples, eps)
    # A variance of exactly 0 (no path crossed a jump) cannot be drawn on a log scale.
    positive = lambda v: np.where(v > 0, v, np.nan)  # noqa: E731
    ax.loglog(eps, positive(crn), "o-", color="C0", label="common random numbers")
    ax.loglog(eps, positive(independent), "s-", color="C1", label="independent")
    ax.set_ylabel("variance of central differences")
    ax.set_title("finite-difference variance against ε")
    return (
        f"Finite-difference variance against ε along {along}, with and without common "
        "random numbers. Where a curve jumps, the difference θ ± ε·h has begun to straddle "
        "a kink or a jump of the simulator: below that ε the quotient sees one smooth piece, "
        "above it mixes both sides. With common random numbers the variance stays bounded "
        "on a smooth path; a path that jumps adds (jump/2ε)² with probability ∝ ε, so the "
        "variance grows like 1/ε — without them, like 1/ε²."
    )


def _taylor_panel(ax, report) -> tuple[str, str]:
    """Draw the Taylor test of AD's gradient on ``ax``; returns ``(caption, verdict)``, the
    verdict saying why the test did not pass (empty when it did)."""
    if report.grad is None:
        verdict = "Taylor test not run: AD cannot differentiate this program (see the notes)."
        ax.text(0.5, 0.5, verdict, ha="center", va="center", transform=ax.transAxes, wrap=True)
        return "Taylor test: not run", verdict
    result = taylor_test(lambda t: report.sim(t, report.key), report.theta, report.grad)
    verdict = "" if result.passed else f"Taylor test failed: {result.reason}."
    if all(np.isfinite(result.remainders)):
        ax.loglog(result.eps, np.maximum(result.remainders, 1e-300), "o-", color="C0",
                  label=f"|f(θ+εh) − f(θ) − ε∇f·h|, rate {result.rate:.2f}")  # fmt: skip
        ref = np.asarray(result.eps) ** 2 * result.remainders[0] / result.eps[0] ** 2
        ax.loglog(result.eps, ref, "--", color="0.5", label="ε² (a correct gradient)")
    else:  # nothing to draw: say why in the panel itself
        ax.text(0.5, 0.5, verdict, ha="center", va="center", transform=ax.transAxes,
                wrap=True, color="C3")  # fmt: skip
    ax.set_ylabel("Taylor remainder")
    ax.set_title("Taylor test of AD's gradient" + ("" if result.passed else ": FAILED"))
    return "Taylor test: the remainder must fall like ε²", verdict


def _source(finding) -> str:
    """The finding's source line as code under its location, or nothing if unreadable."""
    if finding.file is None or finding.line is None:
        return ""
    text = linecache.getline(finding.file, finding.line).strip()
    return f"<br><code class='source'>{html.escape(text)}</code>" if text else ""


_WHY = {
    "unbiased": "its condition holds on this program",
    "approximate": "biased by design (its step or smoothing), whatever the program",
}


def _widths(*percents: int) -> str:
    """Column widths of a fixed-layout table (long words wrap instead of widening it)."""
    return "<colgroup>" + "".join(f"<col style='width:{p}%'>" for p in percents) + "</colgroup>"


def _findings_table(report) -> list[str]:
    """The findings, those that break the most estimators' claims first."""
    esc = html.escape
    parts = [
        f"<h2>{len(report.findings)} finding(s)</h2>",
        "<table>" + _widths(3, 12, 15, 18, 16, 16, 20) + "<tr><th>#</th><th>kind</th>"
        "<th>where</th><th>what</th><th>breaks the claim of</th><th>AD returns</th>"
        "<th>remedy</th></tr>",
    ]
    broken = [report.breaks(f) for f in report.findings]
    order = sorted(range(len(broken)), key=lambda i: -len(broken[i]))
    for n, i in enumerate(order, 1):
        f = report.findings[i]
        what = KINDS[f.kind]
        if f.random:
            what += "; downstream of a random draw"
        if f.context:
            what += f"; inside {' > '.join(f.context)}"
        if f.detail:
            what += f". At θ: {f.detail}"
        breaks = ", ".join(f"sg.{name}" for name in broken[i]) or "no estimator's"
        parts.append(
            f"<tr><td>{n}</td><td class='kind'>{esc(f.kind)} ({esc(f.primitive)})</td>"
            f"<td>{esc(f.where)}{_source(f)}</td><td>{esc(what)}</td><td>{esc(breaks)}</td>"
            f"<td>{esc(f.ad_returns)}</td><td>{esc(f.remedy)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _claims_table(report) -> list[str]:
    """The verdict: what each estimator's estimate would claim for this program."""
    esc = html.escape
    parts = [
        "<h2>What each estimator promises here</h2>",
        "<p>The claim each estimate would carry (<code>est.claim</code>), from the findings "
        "below. <code>sg.Auto()</code> picks an estimator whose claim holds.</p>",
        "<table>" + _widths(20, 10, 70) + "<tr><th>estimator</th><th>claim</th><th>why</th></tr>",
    ]
    for name, (claim, reason) in report.claims().items():
        why = reason or _WHY[claim]
        parts.append(
            f"<tr><td class='kind'>sg.{esc(name)}</td><td class='claim-{claim}'>{claim}</td>"
            f"<td>{esc(why)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _page(report, images, verdict: str = "", left: int = 0) -> str:
    esc = html.escape

    fn = black_box_fn(report.sim)
    name = getattr(report.sim, "__qualname__", type(report.sim).__name__)
    if fn is not None:
        name = f"sg.BlackBox({getattr(fn, '__qualname__', type(fn).__name__)})"
    theta = ", ".join(f"{v:.6g}" for v in np.ravel(ravel_pytree(report.theta)[0]))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>simgrad check: {esc(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>simgrad check: <code>{esc(name)}</code></h1>",
        f"<p>θ = [{esc(theta)}]; {'stochastic' if report.stochastic else 'deterministic'}.</p>",
    ]
    if report.clean and not verdict:
        parts.append('<p class="clean">Clean: no non-differentiable dependence on θ found.</p>')
    elif report.clean:
        parts.append("<p>No non-differentiable dependence on θ found.</p>")
    if not report.verified:
        parts.append(
            '<p class="unverified">Unverified: θ reaches code the scan cannot see into '
            "(the opaque findings below). A jump, kink or NaN there would go unreported, "
            "so this program is not clean.</p>"
        )
    if verdict:
        parts.append(f'<p class="fail">{esc(verdict)}</p>')
    parts.extend(_claims_table(report))
    if not report.clean:
        parts.extend(_findings_table(report))
    for note in report.notes:
        parts.append(f"<p>Note: {esc(note)}</p>")
    parts.append("<h2>Plots</h2>")
    if left:
        parts.append(
            f"<p>Lines through θ along the first {MAX_LINE_PLOTS} parameters; {left} more "
            "are not drawn (report.to_html(path, direction=...) draws any direction).</p>"
        )
    for i, (caption, png) in enumerate(images):
        parts.append(
            f"<figure><img id='plot-{i}' alt='{esc(caption)}' "
            f"src='data:image/png;base64,{png}'><figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
