r"""Exact enumeration of the θ-dependent discrete draws with a small finite support, and
another estimator for the rest of the randomness."""

import functools
import itertools
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._scan import scan
from .._src.program import (
    Interpretation,
    depends_on,
    draw_distribution,
    draw_sites,
    evaluate,
    trace,
)
from .._src.program._jax_compat import bind
from .._src.program.core import _sub_jaxprs
from .base import JUMPS, AbstractEstimator
from .pathwise import Pathwise

_LOOPS = ("scan", "while", "cond")


class Enumerate(AbstractEstimator):
    r"""Sum exactly over the θ-dependent discrete draws with a small support; ``rest``
    estimates the gradient of what remains.

    With $v$ the values of the enumerated draws (Bernoulli, categorical, binomial with a
    fixed $n$) and $\xi$ the rest of the randomness,

    $$\mathbb{E}[f] = \mathbb{E}_\xi\Big[\sum_v p_\theta(v)\, f(\theta, v, \xi)\Big],$$

    and the inner sum is an ordinary program of $\theta$ and $\xi$ — each value forced in
    turn (batched, `jax.vmap`), weighted by the product of its probabilities (gradient-safe
    log-probabilities) — whose gradient ``rest`` estimates (default `sg.Pathwise`: the
    sum is smooth in θ). Where the enumerated draws are all the randomness the output sees,
    every sample is the exact gradient and the standard error is 0.

    Enumerated: every θ-dependent draw of those families outside `lax.scan`,
    `lax.while_loop` and `lax.cond` (there the count of outcomes multiplies with the trip
    count); a draw of shape ``s`` counts as ``k^prod(s)`` outcomes. Left to ``rest``:
    θ-independent draws, draws with unbounded support (Poisson), and draws inside loops
    and branches — where ``rest`` is biased for what remains (`sg.Pathwise` with a
    θ-dependent Bernoulli left in a loop), `Enumerate` refuses and says which ``rest``
    would do (`sg.StochasticTriples`, `sg.ScoreFunction`).

    Arguments:
        max_support: the most joint outcomes to sum over; more is refused (the cost is
            that many runs of the simulator per sample).
        rest: the estimator for the remaining randomness (not `sg.Auto`: name one).

    Examples:
        >>> import jax, jax.numpy as jnp, simgrad as sg
        >>> def sim(p, key):                  # E = 3p(1 - p) + p², gradient 3 - 4p
        ...     b = sg.random.bernoulli(key, p, shape=(2,))
        ...     return jnp.where(b[0] != b[1], 1.5, b[0])
        >>> est = sg.gradient(sim, 0.25, jax.random.key(0), method=sg.Enumerate(),
        ...                   n_samples=100)
        >>> float(est.grad), float(est.grad_stderr)
        (2.0, 0.0)

    Cost: the joint outcomes times ``rest``'s cost, per sample (``evals_per_sample``
    reports ``max_support`` times ``rest``'s: an upper bound).

    References: Pyro's and numpyro's enumeration of discrete sites; ADEV's ``flip_enum``
    (Lew, Huot, Staton & Mansinghka, POPL 2023).
    """

    max_support: int = eqx.field(default=64, static=True)
    rest: AbstractEstimator = eqx.field(default_factory=Pathwise)

    sees_draws: ClassVar[bool] = True
    couples_samples: ClassVar[bool] = False
    rest_without_discrete_draws: ClassVar[bool] = True

    def __check_init__(self):
        if isinstance(self.max_support, bool) or not isinstance(self.max_support, int):
            raise TypeError(f"Enumerate(max_support={self.max_support!r}): an int, e.g. 64.")
        if self.max_support < 2:
            raise ValueError(f"Enumerate(max_support={self.max_support}): at least 2.")
        if not isinstance(self.rest, AbstractEstimator):
            raise TypeError(
                f"Enumerate(rest={self.rest!r}): rest must be an estimator, e.g. sg.Pathwise() "
                "or sg.ScoreFunction()."
            )
        try:  # an estimator that chooses another (sg.Auto) has no cost of its own
            self.rest.evals_per_sample(1, 1)
        except TypeError:
            raise TypeError(
                f"Enumerate(rest={self.rest!r}): rest must not choose another estimator "
                "(sg.Auto): name the one to run, e.g. sg.Pathwise() or sg.ScoreFunction()."
            ) from None

    def claim(self, findings, opaque):
        """``rest``'s claim for the findings that discrete randomness does not explain:
        those it does are enumerated, or `sample_batch` refuses the program (it checks
        ``rest``'s claim on the program with the enumeration made)."""
        continuous = [fi for fi in findings if not _discrete(fi)]
        return self.rest.claim(continuous, opaque)

    def broken_by(self, finding) -> str:
        return "" if _discrete(finding) else self.rest.broken_by(finding)

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return self.max_support * self.rest.evals_per_sample(n_params, n_outputs)

    def sample_batch(self, f, x, keys):
        program = trace(f, x, keys[0])
        plan = _plan(program, self.max_support)
        if plan:
            f = functools.partial(_summed, program, plan)
        _refuse_biased_rest(self.rest, f, x, keys[0], plan)
        return self.rest.sample_batch(f, x, keys)


def _discrete(finding) -> bool:
    """A finding explained by discrete randomness: a discrete draw's θ-dependent
    parameter, or a jump downstream of discrete draws only."""
    if finding.kind == "discrete_draw":
        return True
    return finding.kind in JUMPS and finding.random and not finding.continuous


def _aval(var) -> Any:
    """A jaxpr variable's abstract value (its shape and dtype)."""
    return var.aval


def _static(program, var):
    """The concrete value of ``var`` where it is computed from literals and constants alone
    (folded, equation by equation), or None where it depends on an input."""
    producers = {id(o): e for e in program.jaxpr.eqns for o in e.outvars}
    consts = {id(v): c for v, c in zip(program.jaxpr.constvars, program.consts, strict=True)}

    def value(var, depth=0):
        if hasattr(var, "val"):
            return np.asarray(var.val)
        if id(var) in consts:
            return np.asarray(consts[id(var)])
        eqn = producers.get(id(var))
        if eqn is None or eqn.effects or _sub_jaxprs(eqn) or depth > 16:
            return None
        ins = [value(v, depth + 1) for v in eqn.invars]
        if any(v is None for v in ins):
            return None
        with jax.ensure_compile_time_eval():
            outs = bind(eqn, ins)
        return np.asarray(outs[eqn.outvars.index(var)])

    return value(var)


def _support(program, eqn) -> int | None:
    """How many values one element of the draw takes (its family's ``finite_support``,
    a count read from the program where it fixes it), or None."""
    d = draw_distribution(eqn)
    if d.finite_support is None:
        return None
    params = [
        _static(program, v) if p.count else _aval(v)
        for p, v in zip(d.params, eqn.invars[1:], strict=True)
    ]
    return d.finite_support(params)


def _plan(program, max_support: int) -> dict:
    """``{id(eqn): values}``, per enumerated draw its values in every joint outcome
    (``(V,) + shape``); refuses more than ``max_support`` joint outcomes."""
    theta = depends_on(program, [True] * (len(program.jaxpr.invars) - 1) + [False])
    chosen = []
    for eqn, context in draw_sites(program):
        d = draw_distribution(eqn)
        moved = any(
            v in theta for p, v in zip(d.params, eqn.invars[1:], strict=True) if not p.count
        )
        k = _support(program, eqn) if moved and not set(context) & set(_LOOPS) else None
        if k is not None:
            chosen.append((eqn, k, math.prod(_aval(eqn.outvars[0]).shape)))
    total = math.prod(k**n for _, k, n in chosen)
    if total > max_support:
        parts = " × ".join(f"{draw_distribution(e).name} {k}^{n}" for e, k, n in chosen)
        raise ValueError(
            f"Enumerate: the θ-dependent discrete draws have {total} joint outcomes ({parts}),"
            f" more than max_support={max_support}. Raise max_support if {total} runs per "
            "sample are affordable, or use sg.StochasticTriples() or sg.ScoreFunction()."
        )
    if not chosen:
        return {}
    digits = np.array(list(itertools.product(*[range(k) for _, k, n in chosen for _ in range(n)])))
    plan, start = {}, 0
    for eqn, _, n in chosen:
        shape = _aval(eqn.outvars[0]).shape
        plan[id(eqn)] = digits[:, start : start + n].reshape((-1, *shape))
        start += n
    return plan


class _Forced(Interpretation):
    """Each enumerated draw takes its value in one outcome; the state adds up their
    log-probabilities."""

    def __init__(self, values: dict, dtype):
        self.values = values
        self.dtype = dtype

    def initial_state(self):
        return jnp.zeros((), self.dtype)

    def draw(self, site, state):
        value = self.values.get(id(site.eqn))
        if value is None:
            return site.sample(), state
        value = value.astype(_aval(site.eqn.outvars[0]).dtype)
        log_prob = jnp.sum(site.distribution.log_prob(value, *site.params))
        return value, state + log_prob.astype(self.dtype)


def _summed(program, plan, x, key):
    """``Σ_v p_θ(v) f(θ, v, ξ)`` over the joint outcomes ``v`` of the enumerated draws."""
    dtype = program.out_avals[0].dtype

    def outcome(values):
        (out,), log_prob = evaluate(program, [x, key], _Forced(values, dtype))
        return out, log_prob

    values = {i: jnp.asarray(v) for i, v in plan.items()}
    outs, log_probs = jax.vmap(outcome)(values)
    weights = jnp.exp(log_probs)[:, None]
    return jnp.sum(jnp.where(weights > 0, weights * outs, 0), 0)


def _refuse_biased_rest(rest, f, x, key, plan) -> None:
    """Refuse when ``rest`` is biased, for the program with the enumeration made, by what
    discrete randomness left there explains (the rest is its claim's: `Enumerate.claim`)."""
    findings = [fi for fi in scan(trace(f, x, key), 1).findings if _discrete(fi)]
    claim, reasons = rest.claim(findings, False)
    if claim == "biased":
        raise ValueError(
            f"Enumerate: after summing over {len(plan)} draw(s), rest={rest!r} is biased for "
            f"what remains ({reasons[0]}). Discrete draws "
            "inside lax.scan, while_loop or cond, or with unbounded support, are not "
            "enumerated: give rest=sg.StochasticTriples() or sg.ScoreFunction() for them."
        )
