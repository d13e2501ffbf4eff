"""`sg.check`: the static scan, one-sided derivatives and eigenvalue gaps, in one `Report`."""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._src.program import evaluate, trace
from ._eigen import Cluster, degenerate_clusters
from ._one_sided import Ties, one_sided
from ._scan import KINDS, RANDOM, Finding, location, scan


@dataclasses.dataclass(frozen=True)
class Report:
    """What `check` found: where AD cannot be trusted, and why.

    Attributes:
        findings: every `Finding`, in program order (static ones first, then those measured
            at θ: kinks at θ, degenerate eigenvalues).
        clusters: degenerate eigenvalue clusters at θ, each with the gradient of its sum.
        stochastic: the output depends on the key.
        sim, theta, key: what was checked (for the plots of `to_html`).
    """

    findings: tuple[Finding, ...]
    clusters: tuple[Cluster, ...]
    stochastic: bool
    sim: Callable
    theta: object
    key: object

    @property
    def clean(self) -> bool:
        """Nothing found: AD's gradient of this simulator can be trusted at θ."""
        return not self.findings

    def kinds(self) -> list[str]:
        """The kinds found, without repeats, in order."""
        return list(dict.fromkeys(f.kind for f in self.findings))

    def of_kind(self, kind: str) -> list[Finding]:
        """The findings of one kind (a key of `simgrad.check.KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {sorted(KINDS)}.")
        return [f for f in self.findings if f.kind == kind]

    def __str__(self) -> str:
        if self.clean:
            return "simgrad check: clean — no non-differentiable dependence on θ found."
        lines = [f"simgrad check: {len(self.findings)} finding(s)"]
        for i, f in enumerate(self.findings, 1):
            lines.append(f"{i}. [{f.kind}] {f.primitive} at {f.where}")
            if f.context:
                lines.append(f"   inside: {' > '.join(f.context)}")
            if f.random:
                lines.append("   downstream of a random draw")
            if f.detail:
                lines.append(f"   at θ: {f.detail}")
            lines.append(f"   AD returns: {f.ad_returns}")
            lines.append(f"   remedy: {f.remedy}")
        return "\n".join(lines)

    def to_html(self, path, *, direction=None, n_samples: int = 256) -> str:
        """Write a self-contained HTML report (plots embedded, no network); returns ``path``.

        Plots: the function and its AD derivative along a line through θ (along
        ``direction``, default the first parameter), and for stochastic simulators the
        variance of central finite differences against ε with and without common random
        numbers; for deterministic ones the Taylor remainder against ε.
        """
        from ._report import write_html

        return write_html(self, path, direction=direction, n_samples=n_samples)


def check(
    sim: Callable,
    theta,
    key=None,
    *,
    eigen_tol: float = 1e-6,
    max_directions: int = 16,
) -> Report:
    r"""Find where the simulator's dependence on θ is not differentiable, and why.

    Three passes over ``sim``'s program, all through simgrad's program core:

    1. **Static scan.** Which values depend on θ and reach the output, and which of them
       go through a threshold, a rounding, a kink, a discrete choice, a while_loop with a
       θ-dependent trip count, a discrete draw with θ-dependent parameters, an
       eigendecomposition, or a ``where`` hiding a singular function. Each `Finding` has
       its source line, what AD returns there, and the remedy.
    2. **Kinks at θ.** The exact one-sided derivatives (`one_sided`) along each of the
       first ``max_directions`` parameters; a ``kink_at_theta`` finding where they differ.
    3. **Degenerate eigenvalues.** Each `eigh`'s eigenvalues at θ; clusters closer than
       ``eigen_tol`` are reported with the gradient of their sum, which is well defined.

    Arguments:
        sim: ``sim(theta, key) -> scalar``.
        theta: the parameters (float, array or pytree of them).
        key: the PRNG key; None uses ``jax.random.key(0)`` (deterministic simulators).
        eigen_tol: eigenvalues closer than this (relative to max(1, |λ|max)) are degenerate.
        max_directions: how many parameters to probe for kinks at θ.

    Returns:
        A `Report`; ``report.clean`` when nothing was found. ``print(report)`` lists the
        findings; ``report.to_html(path)`` writes them with plots.

    Examples:
        >>> import jax.numpy as jnp
        >>> report = check(lambda t, key: jnp.minimum(t**2, 2 * t), 2.0)
        >>> report.kinds()
        ['kink', 'kink_at_theta']
        >>> report.of_kind("kink_at_theta")[0].detail
        'slope 4 from the left, 2 from the right along θ[0]; AD returns 3'

    The scan is conservative: a flagged value *may* depend on θ (through a loop, every
    iteration counts), and a comparison whose branches agree (a safeguard inside a smooth
    function) is still reported; an unflagged one certainly does not.
    """
    if not callable(sim):
        raise TypeError(f"sim must be a function sim(theta, key) -> scalar, got {sim!r}.")
    if isinstance(max_directions, bool) or not isinstance(max_directions, int):
        raise TypeError(f"max_directions must be an int, got {max_directions!r}.")
    if not eigen_tol >= 0:
        raise ValueError(f"eigen_tol={eigen_tol!r} must be a non-negative number.")
    key = jax.random.key(0) if key is None else key
    theta = jax.tree.map(jnp.asarray, theta)
    leaves = jax.tree.leaves(theta)
    if not leaves or not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
        raise TypeError(
            "theta must be a float, an array of floats or a pytree of them (check "
            "differentiates with respect to it)."
        )
    out = jax.eval_shape(sim, theta, key)
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError(
            f"sim must return a scalar, got {out}; reduce it (e.g. sum or mean) to the "
            "quantity whose gradient you want."
        )
    program = trace(sim, theta, key)
    findings, out_flags, kinks = scan(program, len(leaves))
    stochastic = bool(out_flags[0] & RANDOM)

    x, unravel = ravel_pytree(theta)
    f = lambda t: sim(t, key)  # noqa: E731
    ad = np.asarray(ravel_pytree(jax.jacfwd(f)(theta))[0])
    tied = _tied(program, [*leaves, key], kinks)
    for i in range(min(x.size, max_directions)):
        h = unravel(jnp.zeros_like(x).at[i].set(1.0))
        d = one_sided(f, theta, h)
        if d.kink:
            detail = (
                f"slope {_num(d.left)} from the left, {_num(d.right)} from the right "
                f"along θ[{i}]; AD returns {_num(ad[i])}"
            )
            primitive, file, line, function = tied[0] if tied else ("—", None, None, None)
            if len(tied) > 1:
                detail += "; ties at lines " + ", ".join(str(t[2]) for t in tied)
            findings.append(
                Finding(
                    "kink_at_theta", primitive, file, line, function, (), stochastic,
                    "one number, though no derivative exists here",
                    "report both one-sided slopes (sg.one_sided), use a subgradient, or move θ",
                    detail,
                )
            )  # fmt: skip
    clusters = degenerate_clusters(program, theta, [key], eigen_tol)
    for c in clusters:
        grad = ", ".join(f"{g:.6g}" for g in np.ravel(ravel_pytree(c.grad_sum)[0]))
        findings.append(
            Finding(
                "degenerate_eigenvalues", "eigh", *c.location, (), stochastic,
                "eigenvectors of the cluster (and anything built on them) have no derivative; "
                "AD returns inf, NaN or an arbitrary number",
                "differentiate a symmetric function of the cluster: the gradient of the sum "
                f"of eigenvalues {c.indices[0]}..{c.indices[1]} is [{grad}]",
                f"eigenvalues {c.indices[0]}..{c.indices[1]} = "
                + ", ".join(f"{v:.6g}" for v in c.eigenvalues),
            )
        )  # fmt: skip
    return Report(tuple(findings), tuple(clusters), stochastic, sim, theta, key)


def _num(x) -> str:
    return f"{float(x) + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0


def _tied(program, args, kinks) -> list[tuple]:
    """``(primitive, file, line, function)`` of the kinks and comparisons whose operands tie
    at θ."""
    if not kinks:
        return []
    _, ties = evaluate(program, args, Ties([flow.eqn for flow in kinks]))
    out = [
        (flow.eqn.primitive.name, *location(flow))
        for flow, tie in zip(kinks, ties, strict=True)
        if bool(tie)
    ]
    return list(dict.fromkeys(where for where in out if where[1] is not None))
