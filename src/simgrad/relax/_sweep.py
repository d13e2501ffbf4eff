"""`smooth_sweep`: the bias–variance trade of `smooth`, measured against an unbiased
estimator (kept apart from `smooth`, which the estimators build on)."""

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np

from .._estimate import gradient
from .._result import Estimate
from .._types import Key, Simulator, Theta
from ..estimators import AbstractEstimator, Pathwise, ScoreFunction
from ._smooth import smooth


class SweepResult(eqx.Module):
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

    def plot(self, path=None, *, title: str = ""):
        """Bias and standard error against tau (log–log), one panel per scalar of θ."""
        from .._src.plots import figure

        names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(self.grad)]
        leaves = zip(
            jax.tree.leaves(self.bias),
            jax.tree.leaves(self.bias_stderr),
            jax.tree.leaves(self.grad_stderr),
            jax.tree.leaves(self.rmse),
            strict=True,
        )
        fig = figure(path is not None, figsize=(4.2 * len(names), 3.4))
        axes = fig.subplots(1, len(names), squeeze=False)
        for ax, name, (b, bs, s, r) in zip(axes[0], names, leaves, strict=True):
            b, bs = np.abs(np.asarray(b)).reshape(len(self.taus), -1)[:, 0], np.asarray(bs)
            ax.errorbar(
                self.taus,
                b,
                yerr=bs.reshape(len(self.taus), -1)[:, 0],
                fmt="o-",
                label="|bias| ± s.e.",
                capsize=2,
            )
            ax.plot(
                self.taus,
                np.asarray(s).reshape(len(self.taus), -1)[:, 0],
                "s--",
                label="standard error",
            )
            ax.plot(self.taus, np.asarray(r).reshape(len(self.taus), -1)[:, 0], "k:", label="RMSE")
            ax.axvline(self.taus[self.best], color="grey", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="tau", title=f"grad{name}")
        axes[0][0].legend(fontsize=8)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=90)
        return fig


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
