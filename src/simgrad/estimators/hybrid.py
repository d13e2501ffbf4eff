"""The hybrid estimator: pathwise through continuous draws, score function for discrete ones."""

from typing import ClassVar, Literal

import equinox as eqx

from .._src.program import Distribution
from .score_function import BASELINES, AbstractScoreEstimator, Baseline


class Hybrid(AbstractScoreEstimator):
    r"""Pathwise through reparameterisable draws, score function for discrete draws: one estimate.

    Per sample $\nabla_\theta f|_{b} + (f - \beta)\,\nabla_\theta \log p(b;\theta)$, where
    $b$ are the discrete `simgrad.random` draws (Bernoulli, Poisson, categorical, …) held
    fixed and scored, and every continuous draw keeps its pathwise derivative. Each kind
    of randomness gets the estimator that suits it: low-variance AD where the path is
    continuous, the unbiased score where a draw jumps. With no discrete draws it *is*
    `sg.Pathwise`, so it is safe as a default.

    Arguments:
        baseline: for the score term, as in `sg.ScoreFunction` (default ``"loo"``).
        ema_decay, rao_blackwell, mode: as in `sg.ScoreFunction`.

    Examples:
        >>> import jax, simgrad as sg
        >>> def sim(theta, key):        # E = p·mu, gradient (mu, p) at p=0.3, mu=2
        ...     k1, k2 = jax.random.split(key)
        ...     return sg.random.bernoulli(k1, theta["p"]) * sg.random.normal(k2, theta["mu"])
        >>> est = sg.gradient(sim, {"p": 0.3, "mu": 2.0}, jax.random.key(0),
        ...                   method=sg.Hybrid(), n_samples=20_000)
        >>> abs(float(est.grad["p"]) - 2.0) < 4 * float(est.grad_stderr["p"])
        True

    Not for: discontinuities in the *continuous* randomness (a digital option's threshold
    on a normal draw): there the pathwise part is zero and wrong; use `sg.ScoreFunction`,
    which scores every draw. `jax.random`'s listed samplers are draws like
    `simgrad.random`'s; an unlisted discrete one is refused.
    """

    baseline: Baseline = eqx.field(default="loo", static=True)
    ema_decay: float = eqx.field(default=0.9, static=True)
    rao_blackwell: bool = eqx.field(default=True, static=True)
    mode: Literal["auto", "reverse", "forward"] = eqx.field(default="auto", static=True)
    tau: None = eqx.field(default=None, static=True, init=False)

    needs_draw_sites: ClassVar[bool] = False
    breaks: ClassVar[tuple[str, ...]] = ("jump_after_continuous_draw",)
    baselines: ClassVar[tuple] = BASELINES

    def __check_init__(self):
        self._check_options()

    def scores(self, distribution: Distribution) -> bool:
        return not distribution.reparameterised
