"""Automatic smoothing: relax every θ-dependent hard operation of a simulator."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._estimate import gradient
from .._result import Estimate
from .._src.program import Interpretation, depends_on, descend, evaluate, trace
from .._src.program._jax_compat import CALL_PRIMITIVES, Var
from .._src.program.rules import RULES
from .._types import Key, Simulator, Theta
from ..estimators import AbstractEstimator, Pathwise, ScoreFunction


def _is_soft(value, var) -> bool:
    """A boolean of the original program that smoothing turned into a probability."""
    return var.aval.dtype == jnp.bool_ and jnp.issubdtype(jnp.result_type(value), jnp.floating)


def _harden(value, var):
    return value > 0.5 if _is_soft(value, var) else value


class Smooth(Interpretation):
    """Replace θ-dependent non-smooth operations by their relaxations at temperature
    ``tau``, as the rule table (`simgrad._src.program.rules`) gives them: comparisons,
    selects, logic, floor/ceil/round, sign, min/max (also reductions), abs and clamp.

    A comparison becomes a probability (a float in [0, 1], `simgrad.relax.step` of its
    margin) where the original program had a boolean; ``select_n``, logic and conversion
    to a float type consume it softly. Anything else that receives such a probability (an
    integer conversion, a ``cond`` index, a loop carry) gets it hardened back
    (``p > 1/2``): correct, but not smoothed.
    """

    def __init__(self, tau: float, tainted: frozenset):
        self.tau = tau
        self.tainted = tainted

    def initial_state(self):
        return ()

    def wants(self, eqn) -> bool:
        tainted = [isinstance(v, Var) and v in self.tainted for v in eqn.invars]
        if not any(tainted):
            return False
        rule = RULES.get(eqn.primitive.name)
        bool_in = any(
            t and v.aval.dtype == jnp.bool_ for t, v in zip(tainted, eqn.invars, strict=True)
        )
        return (rule is not None and rule.relax is not None) or bool_in

    def apply(self, eqn, invals, state):
        if eqn.primitive.name in CALL_PRIMITIVES:  # inline: relaxed booleans flow inside
            return descend(eqn, invals, self, state)
        soft = [_is_soft(x, v) for x, v in zip(invals, eqn.invars, strict=True)]
        rule = RULES.get(eqn.primitive.name)
        if rule is not None and rule.relax is not None:
            out = rule.relax(eqn, invals, soft, self.tau)
            if out is not None:
                return out, state
        # Anything else (an integer conversion, a loop or branch receiving a relaxed
        # boolean): harden the booleans, then evaluate as usual — inside loops too.
        invals = [_harden(x, v) for x, v in zip(invals, eqn.invars, strict=True)]
        return descend(eqn, invals, self, state)


def relaxed(sim: Simulator, theta: Theta, key: Key, tau, random_only: bool = False) -> object:
    """``smooth(sim, tau)(theta, key)`` with ``tau`` an argument: a traced scalar too (one
    trace serves every temperature, e.g. under ``vmap`` over temperatures). With
    ``random_only``, only operations that depend on θ *and* on the key are relaxed: jumps
    after random draws; comparisons of θ alone (a draw's parameter check) stay exact."""
    leaves = jax.tree.leaves(theta)
    program = trace(sim, theta, key)
    n_key = len(program.jaxpr.invars) - len(leaves)
    tainted = depends_on(program, [True] * len(leaves) + [False] * n_key)
    if random_only:
        tainted = tainted & depends_on(program, [False] * len(leaves) + [True] * n_key)
    args = [*leaves, *jax.tree.leaves(key)]
    outs, _ = evaluate(program, args, Smooth(tau, tainted))
    outs = [_harden(x, v) for x, v in zip(outs, program.jaxpr.outvars, strict=True)]
    treedef = jax.tree.structure(jax.eval_shape(sim, theta, key))
    return jax.tree.unflatten(treedef, outs)


class _Smoothed(eqx.Module):
    sim: Callable
    tau: float = eqx.field(static=True)

    def __call__(self, theta, key):
        return relaxed(self.sim, theta, key, self.tau)


def smooth(sim: Simulator, tau: float) -> Simulator:
    r"""A smoothed copy of ``sim``: every θ-dependent hard operation relaxed at ``tau``.

    The simulator is traced through the program core; a forward taint from θ
    (`depends_on`) finds the comparisons ``>, ≥, <, ≤``, selects (``jnp.where``), logic on
    their results, ``floor``/``ceil``/``round``, ``min``/``max`` (also reductions),
    ``abs``, ``sign`` and ``clip`` that θ can reach, and replaces each by its relaxation
    from `simgrad.relax` at temperature ``tau``. Random draws are untouched, so any
    estimator runs on the result. Operations that do not depend on θ stay exact.

    The smoothed simulator is *biased* for ``tau > 0``: measure the bias with
    `smooth_sweep`. A ``lax.cond``/``switch`` on a θ-dependent predicate is not relaxed
    (write ``jnp.where`` to have it smoothed); neither is equality.

    Examples:
        >>> import jax, simgrad as sg
        >>> soft = sg.smooth(lambda t, k: jax.numpy.where(t > 1.0, 1.0, 0.0), tau=0.1)
        >>> round(float(jax.grad(soft)(1.0, jax.random.key(0))), 3)   # σ'(0) / τ
        2.5
    """
    if not callable(sim):
        raise TypeError(f"sim must be a function sim(theta, key), got {type(sim)}.")
    t = np.asarray(tau)
    if t.ndim != 0 or not np.issubdtype(t.dtype, np.number) or not 0 < float(t) < np.inf:
        raise ValueError(f"tau={tau!r}: must be a positive finite number (the temperature).")
    return _Smoothed(sim, float(t))


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
