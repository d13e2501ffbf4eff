r"""Measure-valued derivatives (weak derivatives; Pflug 1989, Heidergott & Vázquez-Abad 2000,
Mohamed, Rosca, Figurnov & Mnih 2020, section 6): unbiased for any $f$, discontinuous
included, by differencing the program between two coupled distributions of one draw."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from .._scan import scan
from .._src.program import Interpretation, evaluate, trace
from .._src.program.triples import Triple, Triples, resolve
from .base import JUMPS, AbstractEstimator, Samples, all_finite


class MeasureValued(AbstractEstimator):
    r"""Measure-valued derivatives: each draw's weak derivative, common random numbers.

    A family whose density moves with $\theta$ splits its derivative into two
    distributions, $\partial_\theta p_\theta = c_\theta\,(p^+_\theta - p^-_\theta)$, so

    $$\partial_\theta\,\mathbb{E}_{p_\theta}[f(x)] = c_\theta\big(\mathbb{E}_{p^+}[f]
      - \mathbb{E}_{p^-}[f]\big)$$

    for *every* integrable $f$: no derivative of $f$ is taken. The per-sample estimate
    runs the program on the positive and the negative side of one draw, with the rest of
    the randomness shared: $c\,(f(x^+) - f(x^-))$, $x^\pm$ coupled (Mohamed et al. 2020,
    table 2):

    | draw | parameter | $c$ | $x^+$ | $x^-$ |
    | --- | --- | --- | --- | --- |
    | normal | loc $\mu$ | $1/(\sigma\sqrt{2\pi})$ | $\mu + \sigma W$ | $\mu - \sigma W$ |
    | normal | scale $\sigma$ | $1/\sigma$ | $\mu + \sigma M$ | $\mu + \sigma U M$ |
    | exponential | rate $\lambda$ | $1/\lambda$ | $x$ | $x + E/\lambda$ |
    | gamma | rate $\beta$ | $a/\beta$ | $x$ | $x + E/\beta$ |
    | poisson | rate $\lambda$ | $1$ | $x + 1$ | $x$ |
    | bernoulli | $p$ | $1$ | $1$ | $0$ |
    | binomial | $p$ | $n$ | $y + 1$ | $y$ ($x$ less a random trial) |
    | categorical | $\pi$ | $\sum_k (\dot\pi_k)_+$ | $\propto(\dot\pi)_+$ | $\propto(-\dot\pi)_+$ |

    ($W$ Weibull of scale $\sqrt2$ and shape 2, $M$ double-sided Maxwell, $U$ uniform,
    $E$ exponential; a negative $c\,\dot\theta$ swaps the sides.) The decompositions are
    data: each family's ``weak_derivative`` in its `Distribution` record. Other discrete
    families (geometric, negative binomial in ``p``, multinomial) use their
    stochastic-triples ``proposal``, a jump $x \to x'$ at rate $w$, which is the weak
    derivative $w(\delta_{x'} - \delta_x)$.

    Several draws: the program runs on stochastic triples (`sg.StochasticTriples`'
    machinery) twice, once proposing the positive sides and once the negative ones, with
    the same pruning: each run keeps one draw's side, the same in both, with probability
    $\propto c$, and their difference is the estimate — draws inside `lax.scan`,
    `while_loop` and `cond`, vector and pytree θ. Parameters a family has no weak
    derivative for (the gamma's shape, a beta's) and θ outside any draw are
    differentiated pathwise (forward mode).

    Examples:
        >>> import jax, simgrad as sg
        >>> def sim(theta, key):                     # P(N(theta, 1) > 1) = Φ(theta - 1)
        ...     return (sg.random.normal(key, theta, 1.0) > 1.0).astype(float)
        >>> est = sg.gradient(sim, 0.3, jax.random.key(0), method=sg.MeasureValued(),
        ...                   n_samples=10_000)
        >>> abs(float(est.grad) - 0.3123) < 4 * float(est.grad_stderr)   # φ(0.7)
        True

    Cost: about four runs of the simulator per parameter direction (two sides, each with
    its main path), all directions batched. Per-sample variance: on one Gaussian draw
    often far below the score function's, close to pathwise on smooth $f$ (measured in
    `benchmarks/bench_measure_valued.py`).

    Refuses (at trace time, saying what to use): θ in a discrete draw's parameter with
    neither a weak derivative nor a proposal (negative binomial's ``n``), and θ that
    reaches a jump other than through a covered draw's parameters (``θ + Z > 0``, a
    pathwise-differentiated draw before a threshold): forward mode would miss the jump.
    Put θ in the draw's distribution (``normal(key, θ, 1) > 0``) or use
    `sg.ScoreFunction`.

    References: S. Mohamed, M. Rosca, M. Figurnov, A. Mnih, "Monte Carlo gradient
    estimation in machine learning", JMLR 21 (2020); G. Pflug, "Sampling derivatives of
    probabilities", Computing 42 (1989).
    """

    sees_draws: ClassVar[bool] = True
    couples_samples: ClassVar[bool] = False
    gradient_nan_hint: ClassVar[str] = (
        "a weak derivative divides by a scale or rate: check that none is 0 at theta"
    )

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 4 * n_params

    def sample_batch(self, f, x, keys):
        program = trace(f, x, keys[0])
        _refuse_missed(program, x)
        dtype = program.out_avals[0].dtype
        directions = jnp.eye(x.size, dtype=x.dtype)
        lanes = jnp.asarray([1, -1], jnp.int32)

        def one(key) -> tuple[jax.Array, jax.Array]:  # value, Jacobian
            def along(direction, lane):
                interp = Triples(jax.random.fold_in(key, 0x3EA5), dtype, lane=lane)
                state = interp.initial_state()
                args = [Triple(x, direction, None, state.tag), Triple(key, None, None, state.tag)]
                (out,), state = evaluate(program, args, interp, state)
                jump = state.weight * (resolve(out, state) - out.primal)
                return out.primal, out.tangent, jump.astype(out.tangent.dtype)

            sides = jax.vmap(along, in_axes=(None, 0))  # lanes: positive, negative
            value, tangent, jump = jax.vmap(sides, in_axes=(0, None), out_axes=2)(directions, lanes)
            return value[0, :, 0], tangent[0] + jump[0] - jump[1]

        value, grad = jax.vmap(one)(keys)  # (B, m), (B, m, N)
        return Samples(value, grad, all_finite(value), all_finite(grad))


class _Covered(Interpretation):
    """The program with the weak-derivative parameters of every draw cut from θ
    (`stop_gradient`): what the forward-mode part of `MeasureValued` differentiates."""

    def initial_state(self):
        return ()

    def draw(self, site, state):
        weak = site.distribution.weak()
        names = () if weak is None else weak[1]
        params = [
            jax.lax.stop_gradient(v) if p.name in names else v
            for p, v in zip(site.distribution.params, site.params, strict=True)
        ]
        return dataclasses.replace(site, params=tuple(params)).sample(), state


def _refuse_missed(program, x) -> None:
    """Refuse what the weak derivatives and forward mode together would miss: θ in a
    discrete draw's parameter that no weak derivative covers, or θ that reaches a jump
    after randomness other than through covered parameters."""
    key = jax.ShapeDtypeStruct(program.in_avals[1].shape, program.in_avals[1].dtype)
    cut = trace(lambda x, key: evaluate(program, [x, key], _Covered())[0], x, key)
    for finding in scan(cut, 1).findings:
        if finding.kind == "discrete_draw":
            raise ValueError(
                f"MeasureValued: theta reaches a parameter of the {finding.primitive} draw at "
                f"{finding.where} that its family has no weak derivative for (nor a "
                "stochastic-triples proposal). Use sg.ScoreFunction() or sg.Hybrid(), which "
                "differentiate it through the log-probability."
            )
        if finding.kind in JUMPS and finding.random:
            raise ValueError(
                f"MeasureValued: theta reaches a {finding.kind} ({finding.primitive} at "
                f"{finding.where}) downstream of randomness other than through the "
                "parameters of a draw with a weak derivative (theta + Z, or a draw "
                "differentiated pathwise), so the jump would be missed. Put theta in the "
                "draw's distribution (sg.random.normal(key, theta, 1.0) instead of theta + "
                "sg.random.normal(key)), or use sg.ScoreFunction()."
            )
