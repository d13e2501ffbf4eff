"""Adjoint consistency: do the discrete and continuous gradients converge, and together?"""

import itertools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np

from .._result import AbstractResult
from ._pde import AbstractPDEProblem


class ConsistencyReport(AbstractResult):
    r"""Both gradients of a PDE problem over a sequence of grid refinements.

    Attributes:
        names: the parameter names, the columns of the gradient arrays.
        resolutions: the numbers of grid cells $n$ (grid spacing $1/n$).
        discrete, continuous: the gradients, one row per resolution.
        reference: the gradient they are measured against (exact, or given), or ``None``.
        difference: $\|g_{\text{disc}} - g_{\text{cont}}\| / \|g_{\text{ref}}\|$ per
            resolution ($\|g_{\text{cont}}\|$ at the finest one without a reference).
        discrete_error, continuous_error: $\|g - g_{\text{ref}}\| / \|g_{\text{ref}}\|$,
            or ``None`` without a reference.
        difference_order, discrete_order, continuous_order: the observed orders, the
            least-squares slope of $-\log(\text{error})$ against $\log n$ (``None``
            without a reference; ``inf`` when they agree to rounding).
        expected_orders: the theoretical orders (discrete, continuous), ``None`` if unknown.
        consistent: the two gradients converge to each other (difference order at least
            ``min_order``, or agreement to rounding).
        verdict: one sentence saying so, and which gradient is at fault when they do not.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    resolutions: tuple[int, ...] = eqx.field(static=True)
    discrete: np.ndarray
    continuous: np.ndarray
    reference: np.ndarray | None
    difference: tuple[float, ...]
    discrete_error: tuple[float, ...] | None
    continuous_error: tuple[float, ...] | None
    difference_order: float
    discrete_order: float | None
    continuous_order: float | None
    expected_orders: tuple[float | None, float | None] = eqx.field(static=True)
    consistent: bool = eqx.field(static=True)
    verdict: str = eqx.field(static=True)

    def table(self) -> str:
        """The report as a plain-text table, one row per resolution."""
        disc_error, cont_error = self.discrete_error, self.continuous_error
        head = f"{'n':>6} {'|disc - cont|':>14}"
        if disc_error is not None:
            head += f" {'disc error':>12} {'cont error':>12}"
        rows = [head]
        for i, n in enumerate(self.resolutions):
            row = f"{n:>6} {self.difference[i]:>14.3e}"
            if disc_error is not None and cont_error is not None:  # both, with a reference
                row += f" {disc_error[i]:>12.3e} {cont_error[i]:>12.3e}"
            rows.append(row)
        orders = f"observed orders: difference {self.difference_order:.2f}"
        if self.discrete_order is not None:
            orders += (
                f", discrete {self.discrete_order:.2f}, continuous {self.continuous_order:.2f}"
            )
        orders += (
            f" (theory: discrete {self.expected_orders[0]}, continuous {self.expected_orders[1]})"
        )
        return "\n".join([*rows, orders, self.verdict])

    def summary(self) -> str:
        return self.table()

    def plot(self, ax=None, *, path=None, title: str | None = None):
        """Plot both gradients' errors (and their difference) against resolution, log-log:
        into ``ax`` (a matplotlib Axes) or a new figure; saved to ``path`` if given."""
        from .._src.plots import finish, panels

        (ax,) = axes = panels(ax, path, 1, figsize=(4.2, 3.2))
        n = np.asarray(self.resolutions, dtype=float)
        if self.discrete_error is not None:
            ax.loglog(n, self.discrete_error, "o-", label="discrete (AD) − exact")
            ax.loglog(n, self.continuous_error, "s-", label="continuous adjoint − exact")
        ax.loglog(n, self.difference, "k^--", label="discrete − continuous")
        for p, style in zip(
            sorted({q for q in self.expected_orders if q}), (":", "-."), strict=False
        ):
            first = (
                max(self.difference[0], 1e-300)
                if self.discrete_error is None
                else max(self.discrete_error[0], 1e-300)
            )
            ax.loglog(n, first * (n / n[0]) ** -p, "k" + style, lw=0.8, label=f"order {p:g}")
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(n, [str(int(v)) for v in n])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("grid cells n")
        ax.set_ylabel("relative gradient error")
        ax.set_title(title or ("consistent" if self.consistent else "inconsistent"), fontsize=9)
        ax.legend(fontsize=7)
        return finish(axes, path, laid_out=ax is None)


def _order(resolutions, errors) -> float:
    n, e = np.asarray(resolutions, dtype=float), np.asarray(errors, dtype=float)
    if np.all(e <= _ROUNDING):
        return math.inf
    e = np.maximum(e, _ROUNDING)
    slope = np.polyfit(np.log(n), np.log(e), 1)[0]
    return float(-slope)


_ROUNDING = 1e-11  # relative differences below this are rounding (float64 time stepping)


def consistency(
    problem: AbstractPDEProblem,
    theta: dict,
    resolutions: Sequence[int],
    *,
    reference: dict | None = None,
    min_order: float = 0.5,
) -> ConsistencyReport:
    r"""Compare the discrete and the continuous-adjoint gradients under grid refinement.

    At each resolution $n$ it computes the discretise-then-differentiate gradient (AD
    through the scheme) and the differentiate-then-discretise one (the hand-derived adjoint
    PDE, discretised separately); reports their relative difference, each one's error
    against a reference, and the observed orders of convergence (least-squares slopes in
    $\log n$). The verdict is *consistent* when the difference shrinks at least like
    $n^{-\text{min\_order}}$.

    Arguments:
        problem: a PDE problem, e.g. ``sg.adjoint.HeatProblem()``.
        theta: its parameters, e.g. ``problem.default_theta()``.
        resolutions: at least 3 increasing grid sizes, e.g. ``(16, 32, 64, 128)``; choose
            them in the asymptotic range, where the orders are meaningful.
        reference: the gradient to measure errors against; ``None`` uses
            ``problem.exact_gradient(theta)`` (errors are then omitted if it is ``None``).
        min_order: the slowest convergence of the difference still called consistent.

    Examples:
        >>> import simgrad as sg
        >>> problem = sg.adjoint.HeatProblem()
        >>> report = sg.adjoint.consistency(problem, problem.default_theta(), (8, 16, 32))
        >>> report.consistent, round(report.discrete_order, 1), round(report.continuous_order, 1)
        (True, 2.0, 2.0)
    """
    if not isinstance(problem, AbstractPDEProblem):
        raise TypeError(
            f"problem must be a PDE problem such as sg.adjoint.HeatProblem(), got "
            f"{type(problem).__name__}."
        )
    resolutions = _check_resolutions(resolutions)
    if not (isinstance(min_order, (int, float)) and min_order > 0):
        raise ValueError(f"min_order={min_order!r}: a positive number, e.g. 0.5.")
    theta = problem.check(theta, resolutions[0])
    names = tuple(sorted(theta))
    as_row = lambda g: np.array([float(g[k]) for k in names])  # noqa: E731
    if reference is None:
        reference = problem.exact_gradient(theta)
    elif not isinstance(reference, dict) or set(reference) != set(names):
        raise ValueError(f"reference must be a dict with keys {list(names)}, like theta.")

    discrete = np.stack([as_row(problem.discrete_gradient(theta, n)) for n in resolutions])
    continuous = np.stack([as_row(problem.continuous_gradient(theta, n)) for n in resolutions])
    ref = None if reference is None else as_row(jax.tree.map(float, reference))
    scale = np.linalg.norm(ref if ref is not None else continuous[-1]) or 1.0
    difference = tuple(float(x) for x in np.linalg.norm(discrete - continuous, axis=1) / scale)
    difference_order = _order(resolutions, difference)
    errors: tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None] = (None, None)
    orders: tuple[float, float] | tuple[None, None] = (None, None)
    if ref is not None:
        disc_error, cont_error = (
            tuple(float(x) for x in np.linalg.norm(g - ref, axis=1) / scale)
            for g in (discrete, continuous)
        )
        errors = (disc_error, cont_error)
        orders = (_order(resolutions, disc_error), _order(resolutions, cont_error))

    consistent = difference_order >= min_order
    verdict = _verdict(difference_order, min_order, orders if ref is not None else None)
    return ConsistencyReport(
        names=names,
        resolutions=resolutions,
        discrete=discrete,
        continuous=continuous,
        reference=ref,
        difference=difference,
        discrete_error=errors[0],
        continuous_error=errors[1],
        difference_order=difference_order,
        discrete_order=orders[0],
        continuous_order=orders[1],
        expected_orders=problem.expected_orders,
        consistent=consistent,
        verdict=verdict,
    )


def _check_resolutions(resolutions) -> tuple[int, ...]:
    """At least 3 strictly increasing ints, as a tuple."""
    if isinstance(resolutions, (str, bytes)) or not isinstance(resolutions, Sequence):
        raise TypeError(f"resolutions must be a sequence of ints, got {resolutions!r}.")
    resolutions = tuple(resolutions)
    if len(resolutions) < 3 or any(
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in resolutions
    ):
        raise ValueError(
            f"resolutions={resolutions!r}: give at least 3 ints (grid cells), e.g. (16, 32, 64); "
            "an order needs three points to be trusted."
        )
    if any(b <= a for a, b in itertools.pairwise(resolutions)):
        raise ValueError(f"resolutions={resolutions!r} must be strictly increasing.")
    return resolutions


def _verdict(difference_order: float, min_order: float, orders) -> str:
    """One sentence: consistent or not, and (with the orders against a reference) which
    gradient is at fault."""
    if math.isinf(difference_order):
        verdict = "consistent: the two gradients agree to rounding at every resolution."
    elif difference_order >= min_order:
        verdict = (
            f"consistent: the gradients converge together (their difference shrinks at "
            f"order {difference_order:.2f} >= {min_order})."
        )
    else:
        verdict = (
            f"inconsistent: the difference between the gradients does not shrink (observed "
            f"order {difference_order:.2f} < {min_order})."
        )
        if orders is not None:
            bad = [
                w for w, p in zip(("discrete", "continuous"), orders, strict=True) if p < min_order
            ]
            good = [
                w for w, p in zip(("discrete", "continuous"), orders, strict=True) if p >= min_order
            ]
            if bad:
                verdict += f" Not converging to the reference: the {' and the '.join(bad)} gradient"
                verdict += f"; the {good[0]} one does." if good else "."
    return verdict
