r"""The score-function estimator (likelihood ratio, REINFORCE), with baselines.

Shared machinery for every estimator that scores draws lives in `AbstractScoreEstimator`;
`ScoreFunction` scores every draw, `sg.Hybrid` (hybrid.py) only the discrete ones.
"""

import abc
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._src.program import (
    Distribution,
    LogProb,
    draw_sites,
    evaluate,
    output_depends_on,
    site_distribution,
    trace,
)
from .base import AbstractEstimator, Samples, all_finite

Baseline = Literal["mean", "loo", "ema", "cv"] | None
BASELINES = (None, "mean", "loo", "ema", "cv")


class AbstractScoreEstimator(AbstractEstimator):
    r"""Per sample: $\nabla_\theta f|_{\text{path}} + (f - b)\,\nabla_\theta \log p(x; \theta)$.

    ``x`` are the *scored* draws (held fixed, their log-probabilities summed over all
    sites, inside loops and branches too); the pathwise term is the derivative of the
    output with the scored draws held fixed (θ reaching the output directly, or through
    unscored reparameterised draws). ``b`` is the baseline; see `ScoreFunction`.
    Subclasses choose which draws are scored (`scores`).
    """

    baseline: eqx.AbstractVar[Baseline]
    ema_decay: eqx.AbstractVar[float]
    rao_blackwell: eqx.AbstractVar[bool]
    mode: eqx.AbstractVar[Literal["auto", "reverse", "forward"]]

    # Capability: True if the estimator is meaningless without `simgrad.random` draws (it
    # then refuses such simulators at trace time); contract tests use it to pick simulators.
    needs_draw_sites: eqx.AbstractClassVar[bool]
    sees_draws: ClassVar[bool] = True

    @property
    def couples_samples(self) -> bool:  # a baseline mixes the samples of a chunk
        return self.baseline is not None

    @abc.abstractmethod
    def scores(self, distribution: Distribution) -> bool:
        """Is a draw of this distribution scored (True) or differentiated pathwise (False)?"""

    def _check_options(self) -> None:
        cls = type(self).__name__
        if self.baseline not in BASELINES:
            raise ValueError(
                f"{cls}(baseline={self.baseline!r}): baseline must be one of {BASELINES}."
            )
        decay = self.ema_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ValueError(f"{cls}(ema_decay={decay!r}): ema_decay must be in (0, 1), e.g. 0.9.")
        if not isinstance(self.rao_blackwell, bool):
            raise TypeError(f"{cls}(rao_blackwell={self.rao_blackwell!r}): must be True or False.")
        if self.mode not in ("auto", "reverse", "forward"):
            raise ValueError(
                f"{cls}(mode={self.mode!r}): mode must be 'auto', 'reverse' or 'forward'."
            )

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 1 if self.mode == "forward" else n_outputs

    def sample_batch(self, f, x, keys):
        program = trace(f, x, keys[0])
        dtype = program.out_avals[0].dtype
        interpretation = LogProb(self.scores, dtype, self.rao_blackwell)

        def run(x, key):
            (y,), state = evaluate(
                program, [x, key], interpretation, interpretation.initial_state()
            )
            return y, state

        self._check_program(program, run, x, keys[0])
        mode = self.mode
        if mode == "auto":  # reverse mode cannot differentiate through lax.while_loop
            in_while = any("while" in context for _, context in draw_sites(program))
            mode = "forward" if in_while else "reverse"

        def one(key):
            def fn(x):
                y, (log_prob, _) = run(x, key)
                return (y, log_prob), y

            jacobian = jax.jacrev if mode == "reverse" else jax.jacfwd
            (direct, score), y = jacobian(fn, has_aux=True)(x)
            return y, direct, score

        y, direct, score = jax.vmap(one)(keys)  # (B, m), (B, m, N), (B, N)
        grad_ok = all_finite(direct) & all_finite(score)  # raw, before the baseline mixes
        return Samples(y, self._combine(y, direct, score), all_finite(y), grad_ok)

    def _check_program(self, program, run, theta, key) -> None:
        """Trace-time errors (tier 1): what the score function cannot do for this program."""
        cls = type(self).__name__
        sites = draw_sites(program)
        if self.needs_draw_sites and not sites:
            raise ValueError(
                f"{cls}: the simulator has no random draws that simgrad can see, so there is "
                "no log-probability to differentiate. Draw through simgrad.random (e.g. "
                "sg.random.normal(key, loc, scale) instead of jax.random.normal), or, if the "
                "sample path is continuous in theta, use sg.Pathwise()."
            )
        f_dep, log_prob_dep, support_dep = output_depends_on(
            lambda th: (lambda f, s: (f, *s))(*run(th, key)), (theta,)
        )
        if support_dep:
            raise ValueError(
                f"{cls}: a draw has bounds that depend on theta (uniform's or "
                "truncated_normal's); its support moves with theta, which the score function "
                "cannot account for (it would be biased). Use sg.Pathwise() or sg.Hybrid(), "
                "which differentiate these draws pathwise, or draw with fixed bounds and "
                "transform the draw yourself."
            )
        scored = [eqn.params.get("name") for eqn, _ in sites if self.scores(site_distribution(eqn))]
        if self.needs_draw_sites and f_dep and not log_prob_dep:
            raise ValueError(
                f"{cls}: none of the {len(scored)} scored draw(s) has parameters that depend "
                "on theta, while the output does: theta reaches the output only directly "
                "(not through a distribution), so the score term is zero and this is just the "
                "pathwise gradient with extra work. Use sg.Pathwise(); or pass theta into a "
                "draw's parameters if that is what you meant."
            )

    def _combine(self, y: Array, direct: Array, score: Array) -> Array:
        """Per-sample estimates ``direct + (y - b) * score`` under the chosen baseline, one
        baseline per output: ``y`` (B, m), ``direct`` (B, m, N), ``score`` (B, N)."""
        score = jnp.broadcast_to(score[:, None, :], direct.shape)
        if self.baseline == "cv":
            return _loo_control_variate(direct + y[..., None] * score, score)
        return direct + (y - self._baseline(y))[..., None] * score

    def _baseline(self, y: Array) -> Array:
        n = y.shape[0]
        if self.baseline is None or (self.baseline == "loo" and n == 1):
            return jnp.zeros_like(y)  # no other sample: b = 0 keeps the estimate unbiased
        if self.baseline == "mean":
            return jnp.broadcast_to(jnp.mean(y, axis=0), y.shape)
        if self.baseline == "loo":
            return (jnp.sum(y, axis=0) - y) / (n - 1)
        return _ema_of_previous(y, self.ema_decay)


def _ema_of_previous(f: Array, decay: float) -> Array:
    """``b_i``: the bias-corrected moving average of ``f_1 … f_{i-1}`` (``b_1 = 0``), per
    column of ``f`` (one per output)."""
    decay = jnp.asarray(decay, f.dtype)

    def step(carry, fi):
        m, w = carry  # running weighted sum and its total weight
        b = jnp.where(w > 0, m / jnp.where(w > 0, w, 1), 0)
        return (decay * m + fi, decay * w + 1), b

    zero = jnp.zeros(f.shape[1:], f.dtype)
    _, b = jax.lax.scan(step, (zero, zero), f)
    return b


def _loo_control_variate(a: Array, s: Array) -> Array:
    r"""``a_i - c_{-i} s_i`` with ``c_{-i} = Cov(a, s) / Var(s)`` fitted without sample ``i``.

    The score ``s`` has mean zero, so any coefficient independent of sample ``i`` keeps
    each term unbiased; leaving sample ``i`` out of its own coefficient makes it so.
    Coefficients are per gradient component.
    """
    n = a.shape[0]
    if n == 1:
        return a  # no other sample to fit c on: c = 0
    g = a
    a = a - jnp.mean(a, axis=0)  # centring changes no covariance, and helps rounding
    s_mean = jnp.mean(s, axis=0)
    sc = s - s_mean
    sum_a, sum_s = jnp.sum(a, axis=0), jnp.sum(sc, axis=0)
    sum_as, sum_ss = jnp.sum(a * sc, axis=0), jnp.sum(sc * sc, axis=0)
    m = n - 1
    la, ls = sum_a - a, sum_s - sc
    cov = (sum_as - a * sc) - la * ls / m
    var = (sum_ss - sc * sc) - ls * ls / m
    c = jnp.where(var > 0, cov / jnp.where(var > 0, var, 1), 0)
    return g - c * s


class ScoreFunction(AbstractScoreEstimator):
    r"""The score-function (likelihood-ratio, REINFORCE) estimator, with a baseline.

    $\nabla_\theta \mathbb{E}[f] = \mathbb{E}[\nabla_\theta f|_x + f(x)\,\nabla_\theta
    \log p(x;\theta)]$: every `simgrad.random` draw $x$ is held fixed and its log-density
    differentiated instead of the path. It needs no derivative of $f$ in $x$, so it is
    unbiased for thresholds, discrete draws and any other discontinuity — where the
    pathwise estimator is zero or wrong. The price is variance, which a baseline $b$
    reduces: per sample $\nabla_\theta f|_x + (f - b)\,\nabla_\theta\log p$.

    Arguments:
        baseline: what $b$ is; each costs $O(n)$ on top of the samples.

            * ``None``: $b = 0$, vanilla. Unbiased.
            * ``"mean"``: the batch mean of $f$. Biased by the factor $(n-1)/n$ (it
              includes the sample itself); use ``"loo"`` instead unless $n$ is large.
            * ``"loo"``: the mean of the *other* $n-1$ samples. Unbiased. The default.
            * ``"ema"``: a bias-corrected exponential moving average of the *previous*
              samples' $f$ (decay ``ema_decay``), in sample order within this call; the
              first sample has $b = 0$. Unbiased (it uses only earlier, independent
              samples); the state does not persist across calls.
            * ``"cv"``: the score itself as control variate, with the variance-optimal
              coefficient $c_j = \mathrm{Cov}(g_j, s_j)/\mathrm{Var}(s_j)$ fitted per
              gradient component on the other $n-1$ samples. Unbiased; the best constant
              baseline per component.

            Baselines couple samples: the reported standard error treats the per-sample
            estimates as independent, which they are up to $O(1/n)$. With
            ``batch_size=`` they couple the samples of one chunk only (each chunk's
            estimate is unbiased; ``Estimate.notes`` says so).
        ema_decay: the moving average's decay, in (0, 1).
        rao_blackwell: drop the score of draws that cannot reach the output (dead code).
        mode: differentiate in ``"reverse"`` mode (one backward pass) or ``"forward"``
            mode (one tangent per parameter, batched; works through `lax.while_loop`,
            which reverse mode cannot differentiate). ``"auto"`` (default): forward when a
            draw sits inside a while loop, else reverse.

    Examples:
        >>> import jax, simgrad as sg
        >>> def sim(rate, key):                     # E = rate² + rate, gradient 2 rate + 1
        ...     return sg.random.poisson(key, rate) ** 2
        >>> est = sg.gradient(sim, 3.0, jax.random.key(0), method=sg.ScoreFunction(),
        ...                   n_samples=20_000)
        >>> abs(float(est.grad) - 7.0) < 4 * float(est.grad_stderr)
        True

    Not for: continuous sample paths with reparameterisable draws — `sg.Pathwise` is
    unbiased there with far lower variance (for $x \sim N(\mu, 1)$, $f = x^2$ at $\mu = 1$:
    per-sample variance 4 pathwise, 30 score function). Draws must go through
    `simgrad.random`.

    References: Williams (1992), REINFORCE; Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo
    gradient estimation in machine learning", JMLR 21 (2020), section 4.
    """

    baseline: Baseline = eqx.field(default="loo", static=True)
    ema_decay: float = eqx.field(default=0.9, static=True)
    rao_blackwell: bool = eqx.field(default=True, static=True)
    mode: Literal["auto", "reverse", "forward"] = eqx.field(default="auto", static=True)

    needs_draw_sites: ClassVar[bool] = True

    def __check_init__(self):
        self._check_options()

    def scores(self, distribution: Distribution) -> bool:
        return True
