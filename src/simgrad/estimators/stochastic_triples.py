r"""Stochastic triples (Arya, Schauer, Schäfer & Rackauckas, 2022): unbiased derivatives of
programs with discrete randomness, by propagating one weighted alternative path."""

from typing import ClassVar

import jax
import jax.numpy as jnp

from .._src.program import (
    Distribution,
    depends_on,
    draw_distribution,
    draw_sites,
    evaluate,
    trace,
)
from .._src.program.triples import Triple, Triples, resolve
from .base import AbstractEstimator, Samples, all_finite


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

    The candidates and weights are each family's ``proposal`` (its `Distribution` record
    in `simgrad.random`), from the inverse-CDF coupling: a categorical moves to the next
    category that can occur, skipping zero-probability (masked) ones. It is unbiased for
    `bernoulli`, `binomial`, `poisson`, `geometric`, `negative_binomial` (in ``p``; a
    θ-dependent ``n`` is refused), `categorical` (logits or probabilities) and
    `multinomial` draws, whatever $f$ does with them (thresholds, `jnp.where`,
    `lax.cond`, loops whose trip count depends on a draw), and for continuous
    reparameterised draws (the pathwise part). Compared with the score function its
    variance does not grow with the number of draws through the accumulated score: only
    the one alternative's difference enters.
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

    Not for: discrete draws of `jax.random` (it has no proposal for them: `sg.Hybrid`
    scores them; draw through `simgrad.random` for triples), or many parameters (one
    triple per direction; use the score function in reverse mode). Gradients in a
    direction where a probability sits at 0 or 1 are one-sided.

    References: G. Arya, M. Schauer, F. Schäfer, C. Rackauckas, "Automatic differentiation
    of programs with discrete randomness", NeurIPS 2022.
    """

    sees_draws: ClassVar[bool] = True
    couples_samples: ClassVar[bool] = False
    rest_without_discrete_draws: ClassVar[bool] = True
    breaks: ClassVar[tuple[str, ...]] = ("jump_after_continuous_draw",)

    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        return 2 * n_params

    def sample_batch(self, f, x, keys):
        program = trace(f, x, keys[0])
        dtype = program.out_avals[0].dtype
        discrete = _perturbed_draws(program)
        directions = jnp.eye(x.size, dtype=x.dtype)

        if not discrete:  # no discrete draw: the triple is a dual number, forward-mode AD

            def one(key) -> tuple[jax.Array, jax.Array]:  # value, Jacobian
                jvp = lambda d: jax.jvp(lambda x: f(x, key), (x,), (d,))  # noqa: E731
                return jax.vmap(jvp, out_axes=(None, 1))(directions)

        else:

            def one(key) -> tuple[jax.Array, jax.Array]:  # value, Jacobian
                def along(direction):
                    interp = Triples(jax.random.fold_in(key, 0x7B1E), dtype)
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


def unperturbable(program) -> list[tuple[Distribution, str]]:
    """The θ-dependent parameters of discrete draws in ``program`` that no proposal
    perturbs (negative binomial's ``n``), as ``(family, parameter name)`` in program order.

    Stochastic triples refuse such a program: that parameter's share of the derivative
    would be silently dropped. A count is never listed (no estimator differentiates it).
    """
    n_theta = len(program.jaxpr.invars) - 1
    tainted = depends_on(program, [True] * n_theta + [False])
    found = []
    for eqn, _ in draw_sites(program):
        d = draw_distribution(eqn)
        if not d.discrete:
            continue
        proposed = d.proposal_params or ()  # never None: `Distribution` fills it in
        for param, var in zip(d.params, eqn.invars[1:], strict=True):
            if not param.count and param.name not in proposed and var in tainted:
                found.append((d, param.name))
    return found


def _perturbed_draws(program) -> list:
    """The draws with a proposal; refuses a θ-dependent parameter no proposal can perturb
    (`unperturbable`)."""
    blocked = unperturbable(program)
    if blocked:
        d, param = blocked[0]
        raise ValueError(
            f"StochasticTriples: the {d.name} draw's parameter {param!r} depends on "
            f"theta, and stochastic triples have no proposal for it (they perturb "
            f"{', '.join(d.proposal_params or ()) or 'no parameter of this family'}). Use "
            "sg.ScoreFunction() or sg.Hybrid(), which differentiate it through the "
            "log-probability."
        )
    sites = (eqn for eqn, _ in draw_sites(program))
    return [eqn for eqn in sites if draw_distribution(eqn).proposal is not None]
