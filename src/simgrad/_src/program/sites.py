"""Draw sites: how a `simgrad.random` draw shows up in a jaxpr, and how the core finds it.

A draw is a call of a `jax.jit`-wrapped function named ``simgrad_draw__<distribution>``
whose inputs are ``(key, *distribution parameters)`` and whose one output is the draw.
Naming a jit is public API and survives every transformation JAX applies (jit, vmap, scan,
while, cond, grad), so the site stays visible wherever the draw is traced; its parameters
are ordinary jaxpr inputs, so an interpretation sees their values (and their dependence on
θ). `simgrad.random` registers each distribution here with `register`.
"""

import dataclasses
from collections.abc import Callable

from ._jax_compat import JaxprEqn, bind, jit_name

SITE_PREFIX = "simgrad_draw__"


@dataclasses.dataclass(frozen=True)
class Distribution:
    """What an interpretation knows about a family of draws.

    Attributes:
        name: e.g. ``"poisson"``; the site's jit is named ``SITE_PREFIX + name``.
        param_names: the names of the parameters, in the order the site takes them.
        discrete: the draw takes integer values (returned as floats); its pathwise
            derivative is zero.
        reparameterised: pathwise gradients flow through the draw to its parameters.
        log_prob: ``log_prob(x, *params)``, elementwise log density or mass.
        support_depends_on_params: the support moves with the parameters (uniform), so the
            score function alone misses a boundary term.
    """

    name: str
    param_names: tuple[str, ...]
    discrete: bool
    reparameterised: bool
    log_prob: Callable
    support_depends_on_params: bool = False


DISTRIBUTIONS: dict[str, Distribution] = {}


def register(distribution: Distribution) -> None:
    """Make draws of ``distribution`` recognisable as sites (done by `simgrad.random`)."""
    DISTRIBUTIONS[distribution.name] = distribution


def site_distribution(eqn: JaxprEqn) -> Distribution | None:
    """The distribution of a draw-site equation, or None when ``eqn`` is not a draw."""
    name = jit_name(eqn)
    if name is None or not name.startswith(SITE_PREFIX):
        return None
    return DISTRIBUTIONS.get(name[len(SITE_PREFIX) :])


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
