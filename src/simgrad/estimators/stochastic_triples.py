r"""Stochastic triples (Arya, Schauer, Schäfer & Rackauckas, 2022): unbiased derivatives of
programs with discrete randomness, by propagating one weighted alternative path."""

from typing import ClassVar

import jax
import jax.numpy as jnp

from .._src.program import draw_sites, evaluate, site_distribution, trace
from .._src.program.triples import Triple, Triples, resolve
from .base import AbstractEstimator, Samples, all_finite

# --- proposals: for a draw x ~ D(params), the neighbouring values and their weights ---------
# Each rule returns (alts, weights) with a trailing candidate axis. Weights are ≥ 0 and
# E[Σ_c weights_c (f(alts_c) − f(x))] = d/dθ E[f(x)] for every f (the direction of the jump
# follows the sign of the parameter's derivative).


def _safe_div(a, b):
    return jnp.where(b != 0, a / jnp.where(b != 0, b, 1), 0)


def _bernoulli(x, params, dparams):
    (p,), (dp,) = params, dparams
    up = jnp.where(x == 0, _safe_div(dp, 1 - p), 0)  # 0 → 1 when p grows
    down = jnp.where(x == 1, _safe_div(-dp, p), 0)  # 1 → 0 when p shrinks
    weight = jnp.where(dp > 0, up, down)
    return (1 - x)[..., None], weight[..., None]


def _binomial(x, params, dparams):
    (n, p), (_, dp) = params, dparams
    up = _safe_div((n - x) * dp, 1 - p)  # one failed trial succeeds
    down = _safe_div(-x * dp, p)  # one success fails
    alt = jnp.where(dp > 0, x + 1, x - 1)
    return alt[..., None], jnp.where(dp > 0, up, down)[..., None]


def _poisson(x, params, dparams):
    (rate,), (drate,) = params, dparams
    up = jnp.broadcast_to(drate, x.shape)  # d/dλ E f(X) = E[f(X + 1) − f(X)]
    down = _safe_div(-drate * x, rate)  # = E[X/λ (f(X) − f(X − 1))]
    alt = jnp.where(drate > 0, x + 1, x - 1)
    return alt[..., None], jnp.where(drate > 0, up, down)[..., None]


def _geometric(x, params, dparams):
    (p,), (dp,) = params, dparams  # x = trials to the first success, P(X > k) = (1 - p)^k
    up = _safe_div(-dp * x, p)  # p shrinks: one more trial
    down = _safe_div(dp * (x - 1), p * (1 - p))  # p grows: one fewer
    alt = jnp.where(dp < 0, x + 1, x - 1)
    return alt[..., None], jnp.where(dp < 0, up, down)[..., None]


def _categorical(x, params, dparams):
    (logits,), (dlogits,) = params, dparams  # boundaries of the inverse CDF move
    prob, dprob = jax.jvp(lambda z: jax.nn.softmax(z, axis=-1), (logits,), (dlogits,))
    dcdf = jnp.cumsum(dprob, axis=-1)
    n_cat = prob.shape[-1]
    shape = x.shape + (n_cat,)
    prob, dcdf = jnp.broadcast_to(prob, shape), jnp.broadcast_to(dcdf, shape)
    k = x.astype(jnp.int32)[..., None]
    take = lambda a, i: jnp.take_along_axis(a, jnp.clip(i, 0, n_cat - 1), axis=-1)[..., 0]  # noqa: E731
    p_k = take(prob, k)
    up = jnp.where(k[..., 0] < n_cat - 1, _safe_div(jnp.maximum(-take(dcdf, k), 0), p_k), 0)
    down = jnp.where(k[..., 0] > 0, _safe_div(jnp.maximum(take(dcdf, k - 1), 0), p_k), 0)
    return jnp.stack([x + 1, x - 1], -1), jnp.stack([up, down], -1)


PROPOSALS = {
    "bernoulli": _bernoulli,
    "binomial": _binomial,
    "poisson": _poisson,
    "geometric": _geometric,
    "categorical": _categorical,
}


class StochasticTriples(AbstractEstimator):
    r"""Stochastic triples: forward-mode AD plus one weighted alternative path per sample.

    Per sample and parameter direction, every value of the simulator carries a *triple*:
    its value, its ordinary derivative (forward mode), and its value on an alternative
    path. At each discrete `simgrad.random` draw $x$ the alternative moves to a
    neighbouring value $x'$ with a weight $w$ — the derivative of its probability, e.g.
    for $x \sim \mathrm{Bernoulli}(p)$ with $p' > 0$ and $x = 0$: $x' = 1$,
    $w = p'/(1-p)$; for $\mathrm{Poisson}(\lambda)$, $\lambda' > 0$: $x' = x + 1$,
    $w = \lambda'$. The alternative path reuses the main path's random numbers (the same
    keys) everywhere else. Stochastic pruning keeps one alternative per sample: a new
    candidate replaces the current one with probability $w_\text{new}/(w + w_\text{new})$
    and the weight becomes $w + w_\text{new}$, which keeps the estimate unbiased. The
    per-sample estimate is

    $$\frac{\partial f}{\partial\theta}\Big|_\text{path} + w\,(f(\text{alt}) - f(\text{main})).$$

    It is unbiased for `bernoulli`, `binomial`, `poisson`, `geometric` and `categorical`
    draws, whatever $f$ does with them (thresholds, `jnp.where`, `lax.cond`, loops whose
    trip count depends on a draw), and for continuous reparameterised draws (the pathwise
    part). Compared with the score function its variance does not grow with the number
    of draws through the accumulated score: only the one alternative's difference enters.
    Without discrete draws it is forward-mode AD, `sg.Pathwise(mode="forward")`.

    Examples:
        >>> import jax, simgrad as sg
        >>> def sim(rate, key):                     # E = rate² + rate, gradient 2 rate + 1
        ...     return sg.random.poisson(key, rate) ** 2
        >>> est = sg.gradient(sim, 3.0, jax.random.key(0), method=sg.StochasticTriples(),
        ...                   n_samples=10_000)
        >>> abs(float(est.grad) - 7.0) < 4 * float(est.grad_stderr)
        True

    Cost: about three runs of the simulator per parameter direction (main path with its
    tangent, alternative path), all directions batched; a `lax.cond` that contains draws
    runs every branch.

    Not for: programs whose discrete draws go through `jax.random` (they are invisible:
    draw through `simgrad.random`), or many parameters (one triple per direction; use the
    score function in reverse mode). Gradients in a direction where a probability sits at
    0 or 1 are one-sided.

    References: G. Arya, M. Schauer, F. Schäfer, C. Rackauckas, "Automatic differentiation
    of programs with discrete randomness", NeurIPS 2022.
    """

    sees_draws: ClassVar[bool] = True
    couples_samples: ClassVar[bool] = False

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 2 * n_params

    def sample_batch(self, f, x, keys):
        program = trace(f, x, keys[0])
        dtype = program.out_avals[0].dtype
        discrete = [
            eqn for eqn, _ in draw_sites(program) if site_distribution(eqn).name in PROPOSALS
        ]
        directions = jnp.eye(x.size, dtype=x.dtype)

        if not discrete:  # no discrete draw: the triple is a dual number, forward-mode AD

            def one(key):
                jvp = lambda d: jax.jvp(lambda x: f(x, key), (x,), (d,))  # noqa: E731
                return jax.vmap(jvp, out_axes=(None, 1))(directions)

        else:

            def one(key):
                def along(direction):
                    interp = Triples(PROPOSALS, jax.random.fold_in(key, 0x7B1E), dtype)
                    state = interp.initial_state()
                    args = [
                        Triple(x, direction, None, state.tag),
                        Triple(key, None, None, state.tag),
                    ]
                    (out,), state = evaluate(program, args, interp, state)
                    jump = state.weight * (resolve(out, state) - out.primal)
                    return out.primal, out.tangent + jump.astype(out.tangent.dtype)

                value, grads = jax.vmap(along, out_axes=(0, 1))(directions)
                return value[0], grads

        value, grad = jax.vmap(one)(keys)  # (B, m), (B, m, N)
        return Samples(value, grad, all_finite(value), all_finite(grad))
