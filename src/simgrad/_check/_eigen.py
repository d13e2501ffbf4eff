r"""Degenerate eigenvalues of every `eigh` in a simulator, and what can be differentiated.

When two eigenvalues meet, the eigenvectors of the cluster are not unique and their
derivative $\partial v_i = \sum_{j \ne i} v_j\, v_j^\top \partial A\, v_i / (\lambda_i -
\lambda_j)$ blows up. Symmetric functions of the cluster stay differentiable: the sum of
its eigenvalues is $\operatorname{tr}(P A)$ with $P$ the cluster's projector, whose
derivative $\operatorname{tr}(P\, \partial A)$ is well defined (Kato; Magnus 1985).

Two interpretations of the program core: `EigenGaps` records each `eigh`'s eigenvalues at
θ; `ClusterSums` returns ``tr(P_C A)`` for chosen clusters, differentiable in θ. Which
primitives qualify, and which outputs hold the eigenvalues, is the rule table's
``spectrum``.
"""

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._result import AbstractResult
from .._scan import location
from .._src.names import named_components
from .._src.program import AtSites, dataflow, evaluate
from .._src.program._jax_compat import bind
from .._src.program.rules import rule_for


def _spectrum(eqn) -> tuple[int, int] | None:
    rule = rule_for(eqn)
    return None if rule is None else rule.spectrum


def _outputs(eqn) -> tuple[int, int]:
    """``(eigenvalues, eigenvectors)``: which outputs of a site of `eigh_sites` hold them."""
    spectrum = _spectrum(eqn)
    assert spectrum is not None  # eigh_sites keeps only equations with a spectrum
    return spectrum


def _eigenvalues(eqn) -> jax.core.ShapedArray:
    """The shape and dtype of a site's eigenvalues (the aval of an array variable is a
    `ShapedArray`; `Var.aval` is declared as its base class)."""
    return eqn.outvars[_outputs(eqn)[0]].aval


def eigh_sites(program) -> list:
    """The symmetric eigendecompositions of a program (those with a `spectrum` in the rule
    table), as `Flow` records (with their enclosing calls)."""
    flows, _ = dataflow(program, [0] * len(program.jaxpr.invars))
    return [flow for flow in flows if _spectrum(flow.eqn) is not None]


class EigenGaps(AtSites):
    """Record the eigenvalues each site returns (the last call, inside a loop)."""

    def initial_state(self):
        avals = [_eigenvalues(f.eqn) for f in self.flows]
        return tuple(jnp.zeros(a.shape, a.dtype) for a in avals)

    def at(self, i, eqn, invals, state):
        outs = bind(eqn, invals)
        values, _ = _outputs(eqn)
        return outs, (*state[:i], outs[values], *state[i + 1 :])


class ClusterSums(AtSites):
    """Return ``sum_{i in C} v_i^T A v_i`` (eigenvectors held fixed) for each cluster C.

    Its derivative in θ is ``tr(P_C ∂A)``: the derivative of the sum of the cluster's
    eigenvalues, well defined even when they are equal.
    """

    def __init__(self, flows, clusters):
        super().__init__(flows)
        self.clusters = clusters  # list of (site index, (first, last)) pairs

    def initial_state(self):
        dtypes = [_eigenvalues(f.eqn).dtype for f in self.flows]
        return tuple(jnp.zeros((), dtypes[i]) for i, _ in self.clusters)

    def at(self, i, eqn, invals, state):
        outs = bind(eqn, invals)
        _, vectors = _outputs(eqn)
        v = outs[vectors]
        state = list(state)
        for k, (site, (lo, hi)) in enumerate(self.clusters):
            if site == i:
                vc = jax.lax.stop_gradient(v[..., lo : hi + 1])
                state[k] = jnp.sum(vc * (invals[0] @ vc))
        return outs, tuple(state)


class Cluster(AbstractResult):
    """A cluster of (nearly) equal eigenvalues of one `eigh` at θ.

    Attributes:
        site: the index of the `eigh` in the program (in order of appearance).
        location: its source ``(file, line, function)``, or Nones.
        indices: the eigenvalue indices ``(first, last)``, ascending order.
        eigenvalues: their values at θ.
        grad_sum: the gradient (θ's structure) of the sum of the cluster's eigenvalues —
            well defined; divide by the cluster size for the mean.
        primitive: the decomposition's JAX primitive.
    """

    site: int = eqx.field(static=True)
    location: tuple[str | None, int | None, str | None] = eqx.field(static=True)
    indices: tuple[int, int] = eqx.field(static=True)
    eigenvalues: tuple[float, ...]
    grad_sum: object
    primitive: str = eqx.field(static=True, default="")

    def summary(self) -> str:
        file, line, function = self.location
        where = "?" if file is None else f"{file}:{line} ({function})"
        first, last = self.indices
        values = ", ".join(f"{float(v):.6g}" for v in self.eigenvalues)
        parts = named_components(self.grad_sum).items()
        grads = ", ".join(f"{name} = {g:.6g}" for name, g in parts)
        of = self.primitive or "a decomposition"
        return (
            f"Cluster of eigenvalues {first}..{last} of {of} #{self.site} at {where}: {values}\n"
            f"  gradient of their sum: {grads}"
        )


def degenerate_clusters(program, theta, rest: list, tol: float) -> list[Cluster]:
    """Clusters of eigenvalues closer than ``tol`` (relative to the spectrum's scale) in a
    program whose inputs are ``theta``'s leaves then ``rest``."""
    flows = eigh_sites(program)
    if not flows:
        return []
    _, spectra = evaluate(program, [*jax.tree.leaves(theta), *rest], EigenGaps(flows))
    found = []
    for i, w in enumerate(spectra):
        if w.ndim != 1:
            continue  # batched eigh: not analysed
        w = [float(x) for x in w]
        scale = max(1.0, max(abs(x) for x in w))
        lo = 0
        for j in range(1, len(w) + 1):
            if j == len(w) or w[j] - w[j - 1] > tol * scale:
                if j - 1 > lo:
                    found.append((i, (lo, j - 1)))
                lo = j
    if not found:
        return []
    interp = ClusterSums(flows, found)
    x, unravel = ravel_pytree(theta)

    def sums(flat):
        leaves = jax.tree.leaves(unravel(flat))
        return jnp.stack(evaluate(program, [*leaves, *rest], interp)[1])

    jac = jax.jacfwd(sums)(x)
    out = []
    for k, (i, (lo, hi)) in enumerate(found):
        values = tuple(float(v) for v in spectra[i][lo : hi + 1])
        primitive = flows[i].eqn.primitive.name
        out.append(Cluster(i, location(flows[i]), (lo, hi), values, unravel(jac[k]), primitive))
    return out
