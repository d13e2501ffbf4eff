"""Draw sites: how a `simgrad.random` draw shows up in a jaxpr, and the record of its family.

A draw is a call of a `jax.jit`-wrapped function named ``simgrad_draw__<distribution>``
whose inputs are ``(key, *distribution parameters)`` and whose one output is the draw.
Naming a jit is public API and survives every transformation JAX applies (jit, vmap, scan,
while, cond, grad), so the site stays visible wherever the draw is traced; its parameters
are ordinary jaxpr inputs, so an interpretation sees their values (and their dependence on
θ).

Everything simgrad knows about a family of draws is one `Distribution` record, registered
here (`register`, done by `simgrad.random`) and read by every estimator and the checker:
the score function reads ``log_prob`` and which parameters move the support, the hybrid
estimator ``reparameterised``, stochastic triples ``proposal``, measure-valued derivatives
``weak_derivative``, the checker ``discrete``.
"""

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._jax_compat import JaxprEqn, bind, jit_name
from .rules import MONOTONE

SITE_PREFIX = "simgrad_draw__"


@dataclasses.dataclass(frozen=True)
class Constraint:
    """The valid values of a parameter: ``check(xp, value, params) -> bool array``.

    ``xp`` is `numpy` for concrete parameters (checked when the draw is made) or
    `jax.numpy` for traced ones (checked at run time); ``params`` holds every parameter of
    the draw by name, for constraints between them (``maxval > minval``). ``text`` completes
    the sentence "<name> must be …" and states the valid range, e.g. ``"in [0, 1]"``.
    """

    text: str
    check: Callable


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a family, in the order the site takes them.

    Attributes:
        name: as in the public function, e.g. ``"rate"``.
        valid: its `Constraint`, or None when every value is valid (a location).
        event_ndim: trailing axes that belong to one draw (1 for a probability vector, 2
            for a Cholesky factor), not to the batch.
        count: a whole number (binomial's ``n``, randint's bounds), not a parameter to
            differentiate: the family treats it as a constant (its derivative is zero
            wherever the expectation is differentiable — it is piecewise constant in it).
        moves_support: the support of the draw moves with it (uniform's bounds), so the
            score function alone misses a boundary term and refuses θ-dependent values.
    """

    name: str
    valid: Constraint | None = None
    event_ndim: int = 0
    count: bool = False
    moves_support: bool = False


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A family of draws: everything an estimator or the checker needs to know about it.

    Attributes:
        name: e.g. ``"poisson"``; the site's jit is named ``SITE_PREFIX + name``.
        params: its `Param` records, in the order the site takes them.
        support: the values a draw takes, in words (``"{0, 1, 2, …}"``, ``"(0, inf)"``).
        discrete: the draw takes integer values (returned as floats); its pathwise
            derivative is zero.
        reparameterisation: how pathwise gradients flow through a continuous draw
            (``"location-scale"``, ``"inverse CDF"``, ``"implicit (gamma)"``, …); None for
            discrete draws, whose sample path is piecewise constant in the parameters.
        sample: ``sample(key, *params, shape, dtype)``: the draws, of shape
            ``shape + event shape``; parameters broadcast against ``shape``.
        log_prob: ``log_prob(x, *params)``: log density or mass of each draw (event axes
            summed), with finite values and gradients at the edges of the parameter space
            (``p = 0``, ``rate = 0``) wherever the draw can occur.
        proposal: for stochastic triples, ``proposal(x, params, dparams) -> (alts,
            weights)``: candidate neighbouring values ``alts`` (shape ``batch + (C,) +
            event``) and weights ≥ 0 (``batch + (C,)``) such that ``E[Σ_c weights_c
            (f(alts_c) − f(x))]`` is the derivative of ``E[f(x)]`` along the parameters'
            tangents ``dparams``, for every ``f``. None for continuous families (they are
            differentiated pathwise) and for discrete ones without differentiable
            parameters.
        proposal_params: the parameters the proposal perturbs; a θ-dependent parameter of a
            discrete family outside it (and not a count) is refused by stochastic triples.
        weak_derivative: for measure-valued derivatives (`sg.MeasureValued`),
            ``weak_derivative(key, x, params, dparams) -> (plus, minus, weights)``: values
            ``plus`` and ``minus`` (shape ``batch + (C,) + event``) and weights ≥ 0
            (``batch + (C,)``) such that ``E[Σ_c weights_c (f(plus_c) − f(minus_c))]`` is
            the derivative of ``E[f(x)]`` along the tangents ``dparams`` of the parameters
            in ``weak_params``, for every ``f``: the decomposition ``∂p = c (p⁺ − p⁻)``,
            with ``plus ~ p⁺`` and ``minus ~ p⁻`` coupled (common random numbers, from
            ``key``). None: no decomposition (`sg.MeasureValued` then differentiates the
            draw pathwise, or uses the ``proposal`` of a discrete family).
        weak_params: the parameters ``weak_derivative`` differentiates (default: every
            parameter that is not a count).
        finite_support: ``finite_support(params) -> int | None``: how many values ``k``
            one element of a draw takes (its support ``{0, …, k − 1}``), read before
            running: each parameter given as its abstract value (shape, dtype), except a
            count, given as its value (a NumPy array) where the program fixes it and None
            where it is computed; None where ``k`` is not known then. None (the field):
            no small finite support (`sg.Enumerate` leaves the draw to its ``rest``).
        event_ndim: trailing axes of one draw (1 for dirichlet, multinomial, multivariate
            normal).
        event_shape: ``event_shape(params) -> tuple``, from the parameters (by name) as
            given; raises ``ValueError`` (without the function's name) when they disagree.
        bounds: ``bounds(*params) -> (lo, hi)``, the ends of the support (``±inf`` where it
            is unbounded), for the change of variables to tell whether ``g(θ, Z)``'s
            support moves with θ; None where unknown (a continuous draw is then not
            followed through maps).
        cdf: ``cdf(x, *params)``, ``P(draw ≤ x)`` elementwise, differentiable in the
            parameters: a draw compared with a value that is not a constant
            (``U < p(θ)``) is then read as a Bernoulli draw of that probability.
    """

    name: str
    params: tuple[Param, ...]
    support: str
    discrete: bool
    reparameterisation: str | None
    sample: Callable
    log_prob: Callable
    proposal: Callable | None = None
    proposal_params: tuple[str, ...] | None = None
    event_ndim: int = 0
    event_shape: Callable = lambda params: ()
    bounds: Callable | None = None
    cdf: Callable | None = None
    weak_derivative: Callable | None = None
    weak_params: tuple[str, ...] | None = None
    finite_support: Callable | None = None

    def __post_init__(self):
        if self.discrete == (self.reparameterisation is not None):
            raise ValueError(f"{self.name}: a family is either discrete or reparameterised.")
        if self.proposal_params is None:
            perturbed = (
                () if self.proposal is None else tuple(p.name for p in self.params if not p.count)
            )
            object.__setattr__(self, "proposal_params", perturbed)
        if self.weak_params is None:
            weak = () if self.weak_derivative is None else tuple(
                p.name for p in self.params if not p.count
            )  # fmt: skip
            object.__setattr__(self, "weak_params", weak)

    @property
    def reparameterised(self) -> bool:
        """Pathwise gradients flow through the draw to its parameters."""
        return self.reparameterisation is not None

    def weak(self) -> tuple[Callable, tuple[str, ...]] | None:
        """``(weak_derivative, weak_params)`` for measure-valued derivatives, or None. A
        discrete family without a decomposition of its own uses its ``proposal``: a jump
        ``x → alt`` at rate ``w`` is ``w (δ_alt − δ_x)``, the weak derivative whose
        negative side is the draw itself."""
        if self.weak_derivative is not None:
            return self.weak_derivative, self.weak_params or ()
        proposal = self.proposal
        if proposal is None:
            return None

        def from_proposal(key, x, params, dparams):
            alts, weights = proposal(x, params, dparams)
            itself = jnp.expand_dims(x, x.ndim - self.event_ndim)
            return alts, jnp.broadcast_to(itself, alts.shape).astype(alts.dtype), weights

        return from_proposal, self.proposal_params or ()

    @property
    def support_params(self) -> tuple[int, ...]:
        """Positions of the parameters that move the support."""
        return tuple(i for i, p in enumerate(self.params) if p.moves_support)

    def valid(self, *params):
        """True (a traced boolean) when every parameter value satisfies its constraint."""
        named = {p.name: v for p, v in zip(self.params, params, strict=True)}
        checks = [
            jnp.all(p.valid.check(jnp, v, named))
            for p, v in zip(self.params, params, strict=True)
            if p.valid is not None
        ]
        return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


DISTRIBUTIONS: dict[str, Distribution] = {}
# Samplers of other libraries (`jax.random`'s), by the name of the `jit` they trace as; their
# inputs are the key, then the record's parameters.
SAMPLERS: dict[str, Distribution] = {}

# Whether the draws being traced are checked by their caller (`valid_draws`, read off the
# sites) rather than by a run-time error next to each draw (a host callback, which keeps
# JAX from caching the compiled program on disk).
_CHECKED_BY_CALLER = contextvars.ContextVar("simgrad_draws_checked_by_caller", default=False)


@contextlib.contextmanager
def draws_checked_by_caller(checked: bool = True):
    """Trace draws whose traced parameters are checked by the caller: an invalid value
    becomes NaN (no host callback), and the caller must read validity off the sites
    (`valid_draws`) so that it cannot pass silently."""
    token = _CHECKED_BY_CALLER.set(checked)
    try:
        yield
    finally:
        _CHECKED_BY_CALLER.reset(token)


def checked_by_caller() -> bool:
    """Inside `draws_checked_by_caller` (read by `simgrad.random` when it traces a draw)."""
    return _CHECKED_BY_CALLER.get()


def register(distribution: Distribution) -> None:
    """Make draws of ``distribution`` recognisable as sites (done by `simgrad.random`)."""
    DISTRIBUTIONS[distribution.name] = distribution


def register_sampler(jit_name: str, distribution: Distribution) -> None:
    """Make another library's sampler a site: a `jit` named ``jit_name`` whose inputs are a
    key and ``distribution``'s parameters (done by `simgrad.random` for `jax.random`)."""
    SAMPLERS[jit_name] = distribution


def site_distribution(eqn: JaxprEqn) -> Distribution | None:
    """The distribution of a draw-site equation, or None when ``eqn`` is not a draw.

    A `jax.random` sampler counts only with the inputs its record expects (a key and the
    parameters): another JAX version that traces it differently is not misread."""
    name = jit_name(eqn)
    if name is None:
        return None
    if name.startswith(SITE_PREFIX):
        return DISTRIBUTIONS.get(name[len(SITE_PREFIX) :])
    distribution = SAMPLERS.get(name)
    if distribution is None or len(eqn.invars) != 1 + len(distribution.params):
        return None
    return distribution if len(eqn.outvars) == 1 else None


def draw_distribution(eqn: JaxprEqn) -> Distribution:
    """The distribution of an equation known to be a draw (one that `draw_sites` found)."""
    distribution = site_distribution(eqn)
    if distribution is None:
        raise ValueError(f"not a simgrad.random draw: {eqn.primitive}")
    return distribution


@dataclasses.dataclass(frozen=True)
class DrawSite:
    """One draw met during evaluation: its distribution and the values of its inputs.

    Attributes:
        distribution: the family, with its log-probability.
        key: the PRNG key the draw consumes.
        params: the distribution parameters (arrays, possibly traced: they carry θ).
        live: whether the draw can influence the program's outputs (False for a draw whose
            value is never used downstream — its score has mean zero and only adds noise).
        eqn: the jaxpr equation, for interpretations that need more.
    """

    distribution: Distribution
    key: object
    params: tuple
    live: bool
    eqn: JaxprEqn

    def sample(self):
        """Draw, exactly as the original program would."""
        (x,) = bind(self.eqn, [self.key, *self.params])
        return x


@dataclasses.dataclass(frozen=True)
class Pushforward:
    """A draw followed by elementwise strictly monotone maps: ``X = g(θ, Z)``.

    Where a draw's value goes, use by use, only through such maps (``θ + Z``,
    ``S0·exp(σZ − σ²/2)``, ``-log(U)/λ``: `rules.MONOTONE`), the core hands the chain to
    the interpretation at its last map (`Interpretation.pushforward`), so that it can treat
    ``X`` as the draw: its density is ``q_θ(x) = p(z) / |∂g/∂z|`` at ``z = g⁻¹(θ, x)``.

    A chain may end in a comparison with a value that is not a constant (``U·a0 < a1``):
    its outcome is then a Bernoulli draw of probability ``P(X < c)``.

    Attributes:
        site: the draw ``Z``.
        noise: ``Z``'s value, as the interpretation's ``draw`` returned it.
        steps: per map, in order: its equation, its input values and the position of the
            input that carries the draw (the others are the map's operands: θ, constants,
            earlier values such as a path's previous state).
    """

    site: DrawSite
    noise: object
    steps: tuple

    def apply(self, z):
        """``g(z)``: the maps applied to ``z`` (a value of the draw's shape), with the
        program's operands."""
        for eqn, invals, position in self.steps:
            (z,) = bind(eqn, [*invals[:position], z, *invals[position + 1 :]])
        return z

    def slope(self, z):
        """``∂g/∂z`` at ``z``, elementwise."""
        return jax.jvp(self.apply, (z,), (jnp.ones_like(z),))[1]

    def invert(self, x):
        """``g⁻¹(x)``: the draw's value that the maps take to ``x``."""
        for eqn, invals, position in reversed(self.steps):
            x = MONOTONE[eqn.primitive.name].inverse(x, invals, position)
        return x

    def value(self):
        """``X``, exactly as the program computes it."""
        eqn, invals, _ = self.steps[-1]
        (x,) = bind(eqn, invals)
        return x
