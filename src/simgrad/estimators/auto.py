"""`sg.Auto`: read the program with the checker's static scan, choose the estimator, say why."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._scan import scan
from .._src.program import draw_distribution, draw_sites, find, trace
from .base import AbstractEstimator, refusal_of
from .hybrid import Hybrid
from .pathwise import Pathwise
from .score_function import ScoreFunction
from .stochastic_triples import StochasticTriples, unperturbable

# Kinds of findings where the output *jumps* with θ (rather than bending, as at a kink).
JUMPS = ("threshold", "rounding", "discrete_choice", "while_loop")

# CPU time of `sg.StochasticTriples` over the best score-function baseline's, per number of
# parameters N, at 1024 samples: `benchmarks/bench_cost_vs_parameters.py` (a Reed–Frost
# epidemic with a binomial draw per group, one transmission rate per group), shared 2-core
# CPU, float64. Triples run about two paths per parameter direction: the ratio grows ≈ N.
TRIPLES_OVER_SCORE_TIME = {1: 2.7, 2: 5.7, 4: 5.9, 8: 10.9, 16: 15.6, 32: 33.6}
# Triples' per-sample variance advantage over the best score baseline on a one-parameter
# program where they shine: the StochasticAD.jl random walk, n = 100
# (`benchmarks/bench_stochastic_triples.py`: standard deviations 6.52 against 20.9, so
# (20.9 / 6.52)² ≈ 10.3).
TRIPLES_VARIANCE_ADVANTAGE = 10.3
# The largest N at which triples' extra time stays below that advantage. (Their advantage
# depends on the program and can grow with N: on the epidemic, 0.5× at N = 1, 25× at 32;
# there the score function wins on variance × time at every N measured.)
FEW = max(n for n, r in TRIPLES_OVER_SCORE_TIME.items() if r <= TRIPLES_VARIANCE_ADVANTAGE)


class Auto(AbstractEstimator):
    r"""Choose the estimator from the program, and record the choice and the reason.

    The simulator is traced once and read by the checker's static scan (`sg.check`'s first
    pass: which values depend on θ, which are random, and which non-smooth primitives they
    reach). With $N$ parameters and $m$ outputs:

    1. θ reaches a jump (a threshold, a rounding, a discrete choice, a while loop's trip
       count) downstream of *continuous* randomness → `sg.ScoreFunction` (``"loo"``
       baseline): the jump is averaged over by the randomness, so $\nabla\mathbb{E}$ exists,
       but every path's derivative misses it; only the score function accounts for it.
    2. θ reaches the distribution of a discrete `simgrad.random` draw →
       `sg.StochasticTriples` when $N \le$ ``few`` (each parameter direction costs about two
       runs, and the variance stays low), else `sg.Hybrid` (one reverse pass, its cost
       flat in $N$ relative to a run).
    3. Otherwise the sample path is differentiable almost surely → `sg.Pathwise`, forward
       mode when $N \le$ ``few`` or $N \le m$ (or reverse mode cannot run: a
       `lax.while_loop`), reverse mode otherwise. Kinks are fine almost surely.

    A jump with no randomness between θ and it (``jnp.where(theta > 1, a, b)``) makes
    $\mathbb{E}[\mathrm{sim}]$ itself jump: no estimator is unbiased for that, and the
    derivative away from the jump is the branch's. `Auto` says so in ``Estimate.notes``
    and points to `sg.smooth`. The choice is ``Estimate.method`` (``"Auto() →
    Pathwise(mode='forward')"``), the reason the first of ``Estimate.notes``.

    Arguments:
        few: "few parameters" means at most this many (default 4, ``FEW``). Measured
            (`benchmarks/bench_cost_vs_parameters.py`): triples take 2.7× the score
            function's time at $N = 1$, 5.9× at 4, 10.9× at 8, 34× at 32; on the
            StochasticAD.jl walk their variance is ≈ 10.3× lower. ``few`` is the largest
            $N$ whose extra time stays below that (the variance side depends on the
            program: on the epidemic measured, the score function wins on variance × time
            at every $N$). Forward-mode pathwise uses the same bound (its cost also grows
            with $N$).

    Examples:
        >>> import jax, simgrad as sg
        >>> def sim(theta, key):                     # P(N(theta, 1) > 0) = Φ(theta)
        ...     return (sg.random.normal(key, theta) > 0).astype(float)
        >>> est = sg.gradient(sim, 0.0, jax.random.key(0), method=sg.Auto(),
        ...                   n_samples=10_000)
        >>> est.method
        'Auto() → ScoreFunction()'
        >>> abs(float(est.grad) - 0.3989) < 4 * float(est.grad_stderr)   # φ(0)
        True

    θ that transforms the noise (``S0·exp(σZ)``, ``-log(U)/λ``) is in a draw's
    distribution after a change of variables, which the score function makes. When rule 1
    applies but the score function cannot run (θ meets the noise in a way no change of
    variables covers, ``θ·z²``), `Auto` falls back to rule 3: the estimate's claim is then
    ``"biased"``, with a `sg.BiasWarning` and a note on how to make an unbiased estimator
    possible (θ in a draw's distribution) or to smooth the jump (`sg.smooth`).
    """

    few: int = eqx.field(default=FEW, static=True)

    sees_draws: ClassVar[bool] = False
    couples_samples: ClassVar[bool] = False

    def __check_init__(self):
        if isinstance(self.few, bool) or not isinstance(self.few, int) or self.few < 0:
            raise ValueError(f"Auto(few={self.few!r}): few must be a non-negative int, e.g. 4.")

    def choose(self, f, x, key):
        program = trace(f, x, key)
        findings = scan(program, 1).findings
        n, m = x.size, program.out_avals[0].size
        notes = _fixed_jumps(findings)
        jumps = [fi for fi in findings if fi.kind in JUMPS and fi.continuous]
        if jumps:
            why = (
                f"θ reaches a {_at(jumps[0])} downstream of continuous randomness: every "
                "path's derivative misses the jump, the score function accounts for it"
            )
            refusal = refusal_of(ScoreFunction(baseline="loo"), f, x, key)
            if not refusal:
                return ScoreFunction(baseline="loo"), (why, *notes)
            # the chosen estimator's claim is then "biased": the engine warns (BiasWarning)
            notes = (*notes, _unscorable(jumps[0], refusal, bool(draw_sites(program))))
        draws = [draw_distribution(eqn) for eqn, _ in draw_sites(program)]
        discrete = [fi for fi in findings if fi.kind == "discrete_draw"]
        if discrete:
            discrete_draws = [d for d in draws if d.discrete]
            names = sorted({d.name for d in discrete_draws})
            what = f"θ reaches the distribution of a discrete draw ({', '.join(names)})"
            blocked = unperturbable(program)
            if n <= self.few and not blocked:
                why = f"{what}; {n} parameter(s) ≤ few={self.few}: stochastic triples"
                return StochasticTriples(), (why, *notes)
            reason = (f"{n} parameters > few={self.few}" if n > self.few
                      else f"stochastic triples have no proposal for {blocked[0][0].name}'s "
                           f"{blocked[0][1]}")  # fmt: skip
            return Hybrid(), (f"{what}; {reason}: hybrid (score function for it)", *notes)
        forward = n <= self.few or n <= m or not _reverse_runs(f, x, key, program)
        mode = "forward" if forward else "reverse"
        kinks = any(fi.kind == "kink" for fi in findings)
        kinks = " (kinks: fine almost surely)" if kinks else ""
        what = "the score function cannot run (next note)" if jumps else (
            f"no jump after a random draw{kinks}"
        )  # fmt: skip
        why = f"{what}: pathwise, {mode} mode for {n} parameter(s)"
        return Pathwise(mode=mode), (why, *notes)

    def sample_batch(self, f, x, keys):
        return self.choose(f, x, keys[0])[0].sample_batch(f, x, keys)

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        raise TypeError(
            "sg.Auto's cost depends on the estimator it chooses for the program: read "
            "Estimate.n_evals, or the chosen estimator's evals_per_sample."
        )


def _at(finding) -> str:
    return f"{finding.kind} ({finding.primitive} at {finding.where})"


def _fixed_jumps(findings) -> tuple[str, ...]:
    """Notes for jumps in θ itself, with no randomness in between (tier 3)."""
    fixed = [fi for fi in findings if fi.kind in JUMPS and not fi.random]
    if not fixed:
        return ()
    return (
        f"θ reaches a {_at(fixed[0])} with no randomness in between: E[sim] itself jumps "
        "there, which no estimator can differentiate (the gradient is the branch's, exact "
        "away from the jump, blind to it). To optimise across it, smooth it: "
        "sg.smooth(sim, tau)",
    )


def _reverse_runs(f, x, key, program) -> bool:
    """Reverse mode can differentiate the program (it cannot through a `lax.while_loop`)."""
    if not find(program, lambda eqn: eqn.primitive.name == "while"):
        return True
    try:
        jax.eval_shape(jax.grad(lambda x: jnp.sum(f(x, key))), x)
    except (TypeError, ValueError):
        return False
    return True


def _unscorable(jump, refusal: str, visible: bool) -> str:
    """The note when the score function cannot run on a jump after continuous randomness."""
    fix = (
        "put θ in a draw's distribution" if visible
        else "draw the randomness through simgrad.random with θ in its distribution"
    )  # fmt: skip
    return (
        f"θ reaches a {_at(jump)} downstream of continuous randomness, and the score "
        f"function cannot run here ({refusal}): pathwise chosen. It is right if the "
        "branches agree where the comparison flips (a safeguard, a kink written with "
        "where); if the output jumps there, pathwise misses the jump and no estimator in "
        f"simgrad is unbiased as the program stands: {fix} (the score function then "
        "runs), or smooth the jump with sg.smooth(sim, tau)"
    )
