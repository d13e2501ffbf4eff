"""`smooth_sweep`: the bias–variance trade of `smooth`, measured against an unbiased
estimator (kept apart from `smooth`, which the estimators build on)."""

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np

from .._estimate import gradient
from .._result import AbstractResult, Estimate
from .._src.plots import finish, panels
from .._types import Key, Simulator, Theta
from ..estimators import AbstractEstimator, Pathwise, ScoreFunction
from ._smooth import smooth


class SweepResult(AbstractResult):
    """`smooth_sweep`'s report: per temperature, the smoothed gradient and its bias.

    Attributes:
        taus: the temperatures, shape ``(m,)``.
        estimates: the `Estimate` of the smoothed simulator at each tau.
        reference: the unbiased gradient (an `Estimate`), or None when ``exact`` was given.
        grad, grad_stderr: per tau, θ's structure with a leading axis ``m``.
        bias, bias_stderr: ``grad - reference`` and its standard error.
        rmse: per tau, ``sqrt(max(bias² - bias_stderr², 0) + grad_stderr²)`` per leaf: the
            estimated root-mean-square error of one run at that tau.
        best: the index of the tau with the smallest total ``rmse`` (summed over leaves).
    """

    taus: np.ndarray
    estimates: list
    reference: Estimate | None
    grad: Theta
    grad_stderr: Theta
    bias: Theta
    bias_stderr: Theta
    rmse: Theta
    best: int = eqx.field(static=True)

    def summary(self) -> str:
        against = "exact" if self.reference is None else f"{self.reference.method} (unbiased)"
        lines = [
            f"SweepResult({len(self.taus)} tau, {self.estimates[0].method}, bias "
            f"against {against}; best tau {self.taus[self.best]:g}, the smallest RMSE)"
        ]
        columns = zip(
            *(_components(t) for t in (self.grad, self.grad_stderr, self.bias, self.bias_stderr)),
            _components(self.rmse),
            strict=True,
        )
        columns = list(columns)
        for (name, g), (_, gs), (_, b), (_, bs), (_, r) in columns[:6]:
            lines.append(f"  grad{name}:")
            for i, tau in enumerate(self.taus):
                mark = "  ← best" if i == self.best else ""
                grad, bias = f"{g[i]:.6g} ± {gs[i]:.2g}", f"{b[i]:.3g} ± {bs[i]:.2g}"
                lines.append(f"    tau {tau:<8g} {grad:<22} bias {bias:<18} rmse {r[i]:.2g}{mark}")
        if len(columns) > 6:
            lines.append(f"  … {len(columns) - 6} more entries of θ")
        return "\n".join(lines)

    def plot(self, ax=None, *, path=None, title: str = ""):
        """Bias and standard error against tau (log–log), one panel per leaf of θ (its
        first entry), the best tau marked.

        Arguments:
            ax: the matplotlib ``Axes`` to draw into, one per leaf of θ (an Axes, or a
                sequence of them); None draws on a new figure.
            path: save the figure there (a new figure is then matplotlib's bare ``Figure``,
                outside pyplot).
            title: the figure's title.

        Returns:
            The ``Axes`` (θ with one leaf), else the list of them.
        """
        names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(self.grad)]
        axes = panels(ax, path, len(names), figsize=(4.2 * len(names), 3.4))
        leaves = zip(
            jax.tree.leaves(self.bias),
            jax.tree.leaves(self.bias_stderr),
            jax.tree.leaves(self.grad_stderr),
            jax.tree.leaves(self.rmse),
            strict=True,
        )
        first = lambda a: np.asarray(a).reshape(len(self.taus), -1)[:, 0]  # noqa: E731
        for panel, name, (b, bs, s, r) in zip(axes, names, leaves, strict=True):
            panel.errorbar(self.taus, np.abs(first(b)), yerr=first(bs), fmt="o-",
                           label="|bias| ± s.e.", capsize=2)  # fmt: skip
            panel.plot(self.taus, first(s), "s--", label="standard error")
            panel.plot(self.taus, first(r), "k:", label="RMSE")
            panel.axvline(self.taus[self.best], color="grey", lw=0.8)
            panel.set(xscale="log", yscale="log", xlabel="tau", title=f"grad{name}")
        axes[0].legend(fontsize=8)
        if title:
            axes[0].figure.suptitle(title)
        return finish(axes, path, laid_out=ax is None)


def _components(tree) -> list[tuple[str, np.ndarray]]:
    """Each scalar of θ in a tree whose leaves have a leading axis (one entry per tau):
    ``(name, values per tau)``, the name a key path (``['S0']``, ``['x'][1]``)."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = np.asarray(leaf, dtype=float)
        flat = leaf.reshape(leaf.shape[0], -1)
        for j, index in enumerate(np.ndindex(leaf.shape[1:])):
            name = jax.tree_util.keystr(path) + "".join(f"[{i}]" for i in index)
            out.append((name, flat[:, j]))
    return out


def smooth_sweep(
    sim: Simulator,
    theta: Theta,
    key: Key,
    taus: Sequence[float],
    *,
    n_samples: int,
    method: AbstractEstimator | None = None,
    reference: AbstractEstimator | None = None,
    exact: Theta | None = None,
) -> SweepResult:
    r"""The bias–variance trade of `smooth`: per tau, the gradient, its error, its bias.

    For each ``tau`` the smoothed simulator's gradient is estimated with ``method``
    (default `Pathwise`) from ``n_samples`` replicates, all taus with the *same* key
    (common random numbers, so the curve is smooth in tau). Its bias is measured against
    ``exact`` when given, else against an unbiased estimator of the original simulator
    (``reference``, default `ScoreFunction`, run with an independent key), and
    ``bias_stderr`` includes both standard errors.

    Examples:
        >>> import jax, simgrad as sg
        >>> m = sg.models.DigitalCall()
        >>> r = sg.smooth_sweep(m, m.default_theta(), jax.random.key(0), [0.3, 0.03],
        ...                     n_samples=4096)
        >>> bias = abs(r.bias["S0"])
        >>> bool(bias[1] < bias[0])
        True
    """
    method = Pathwise() if method is None else method
    taus_arr = np.asarray(taus, dtype=float)
    if taus_arr.ndim != 1 or taus_arr.size == 0 or not np.all((taus_arr > 0) & (taus_arr < np.inf)):
        raise ValueError(
            f"taus={taus!r}: must be a non-empty list of positive finite temperatures."
        )
    k_sweep, k_ref = jax.random.split(key)
    estimates = [
        gradient(smooth(sim, float(t)), theta, k_sweep, method=method, n_samples=n_samples)
        for t in taus_arr
    ]
    stack = lambda *xs: np.stack([np.asarray(x) for x in xs])  # noqa: E731
    grad = jax.tree.map(stack, *[e.grad for e in estimates])
    grad_se = jax.tree.map(stack, *[e.grad_stderr for e in estimates])
    if exact is not None:
        ref = None
        ref_grad = jax.tree.map(np.asarray, exact)
        ref_se = jax.tree.map(lambda x: np.zeros_like(np.asarray(x, float)), exact)
    else:
        reference = ScoreFunction() if reference is None else reference
        ref = gradient(sim, theta, k_ref, method=reference, n_samples=n_samples)
        ref_grad = jax.tree.map(np.asarray, ref.grad)
        ref_se = jax.tree.map(np.asarray, ref.grad_stderr)
    bias = jax.tree.map(lambda g, r: g - r, grad, ref_grad)
    bias_se = jax.tree.map(lambda s, r: np.sqrt(s**2 + r**2), grad_se, ref_se)
    rmse = jax.tree.map(
        lambda b, bs, s: np.sqrt(np.maximum(b**2 - bs**2, 0) + s**2), bias, bias_se, grad_se
    )
    total = sum(r.reshape(len(taus_arr), -1).sum(axis=1) for r in jax.tree.leaves(rmse))
    return SweepResult(
        taus_arr, estimates, ref, grad, grad_se, bias, bias_se, rmse, int(np.argmin(total))
    )
