"""`sg.check`: the static scan, AD's derivative at θ, one-sided derivatives and eigenvalue
gaps, in one `Report`; `fd_hazards` for the finite-difference estimator."""

import functools
import inspect
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import jaxpr_as_fun
from jax.flatten_util import ravel_pytree

from .._result import AbstractResult
from .._scan import RANDOM, Finding, finding_lines, location, scan
from .._src.program import Interpretation, evaluate
from .._src.program.rules import FINDING_KINDS, KINDS, rule_for
from .._src.validate import check_simulator
from ..estimators import CLAIMANTS
from ._eigen import Cluster, degenerate_clusters
from ._nan import Ties, forward_origins, reverse_origins
from ._one_sided import sides_along
from ._subject import black_box_fn, simulator_of


class Report(AbstractResult):
    """What `check` found: where AD cannot be trusted, and why.

    Attributes:
        findings: every `Finding`, in program order (static ones first, then those measured
            at θ: NaN or inf in AD's derivative, kinks at θ, degenerate eigenvalues).
        clusters: degenerate eigenvalue clusters at θ, each with the gradient of its sum.
        stochastic: the output depends on the key.
        sim, theta, key: what was checked (for the plots of `to_html`); ``sim`` as given
            (a function, or an `sg.BlackBox`).
        grad: AD's gradient at θ as the checker computed it (θ's structure; None when AD
            could not differentiate the program).
        notes: how the checker had to work around the program (reverse mode where forward
            mode is impossible, and the like); empty when it did not.
        rough_draws: draws whose sampler is not smooth in θ (a gamma draw's shape): not
            AD's problem, but finite differences' (read by `claims`).
    """

    findings: tuple[Finding, ...]
    clusters: tuple[Cluster, ...]
    stochastic: bool = eqx.field(static=True)
    sim: Callable
    theta: object
    key: object
    grad: object = None
    notes: tuple[str, ...] = eqx.field(static=True, default=())
    rough_draws: tuple[Finding, ...] = ()

    @property
    def clean(self) -> bool:
        """Nothing found and nothing unseen: AD's gradient of this simulator can be trusted
        at θ. False for an unverified program (see `verified`)."""
        return not self.findings

    @property
    def verified(self) -> bool:
        """The scan saw every computation between θ and the output. False where θ reaches
        code it cannot see into — a ``jax.pure_callback`` or ``io_callback``, a foreign
        call, an `sg.BlackBox` — each an ``"opaque"`` finding: a jump, kink or NaN there
        would go unreported, so such a program is never clean."""
        return not any(f.kind == "opaque" for f in self.findings)

    def claims(self) -> dict[str, tuple[str, str]]:
        """What each estimator would promise for this program (`Estimate.claim`), as a user
        first calls it: ``{"Pathwise()": ("unbiased", ""), "FiniteDifference()": ("biased",
        "θ reaches a threshold …"), …}``. Read from the same findings and
        declarations as the estimate's own claim; whether an estimator accepts the program
        at all (the score function needs a draw) is for `sg.gradient` to say."""
        hazards = [*self.findings, *self.rough_draws]
        out = {}
        for estimator in CLAIMANTS:
            claim, reasons = estimator.claim(hazards, not self.verified)
            out[repr(estimator)] = (claim, reasons[0] if reasons else "")
        return out

    def breaks(self, finding: Finding) -> list[str]:
        """The estimators (as in `claims`) whose claim ``finding`` breaks: ``["Pathwise()",
        "FiniteDifference()", …]`` for a threshold after a draw, ``[]`` for a kink."""
        return [repr(e) for e in CLAIMANTS if e.broken_by(finding)]

    def kinds(self) -> list[str]:
        """The kinds found, without repeats, in order."""
        return list(dict.fromkeys(f.kind for f in self.findings))

    def of_kind(self, kind: str) -> list[Finding]:
        """The findings of one kind (a key of `sg.KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {sorted(KINDS)}.")
        return [f for f in self.findings if f.kind == kind]

    def summary(self) -> str:
        """The findings, numbered, then the notes: the report's ``repr``."""
        if self.clean:
            lines = ["simgrad check: clean — no non-differentiable dependence on θ found."]
        else:
            lines = [f"simgrad check: {len(self.findings)} finding(s)"]
        if not self.verified:
            lines[0] += (
                " — UNVERIFIED: θ reaches code the scan cannot see into (opaque), where a "
                "jump, kink or NaN would go unreported; not clean"
            )
        for i, f in enumerate(self.findings, 1):
            first, *rest = finding_lines(f)
            lines.append(f"{i}. {first}")
            lines.extend(f"   {line}" for line in rest)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_html(self, path, *, direction=None, n_samples: int = 256) -> str:
        """Write a self-contained HTML report (plots embedded, no network); returns ``path``.

        Plots: the function and its AD derivative along a line through θ (along
        ``direction``; by default one line per parameter, the first six), and for
        stochastic simulators the
        variance of central finite differences against ε with and without common random
        numbers; for deterministic ones the Taylor remainder against ε.
        """
        from ._report import write_html

        return write_html(self, path, direction=direction, n_samples=n_samples)


def _at_black_box(finding: Finding, fn) -> Finding:
    """An opaque finding of an `sg.BlackBox` located at its ``fn`` (not at the callback
    that runs it): the function's definition, or a callable object's class."""
    target = inspect.unwrap(fn)
    while isinstance(target, functools.partial):
        target = target.func
    if not inspect.isroutine(target):
        target = type(target)
    try:
        file, (_, line) = inspect.getsourcefile(target), inspect.getsourcelines(target)
    except (OSError, TypeError):  # a builtin, or source not available
        file, line = None, None
    f = finding
    return Finding(f.kind, "sg.BlackBox", file, line, getattr(target, "__name__", None), (),
                   f.random, f.ad_returns, f.remedy, continuous=f.continuous)  # fmt: skip


def _validated(sim, theta, key, scalar: bool = True):
    """``(theta as arrays, key, traced program)`` after the checks every entry point makes
    (``scalar``: the output must be one floating-point number)."""
    if not callable(sim):
        raise TypeError(f"sim must be a function sim(theta, key) -> scalar, got {sim!r}.")
    key = jax.random.key(0) if key is None else key
    for path, leaf in jax.tree_util.tree_leaves_with_path(theta):
        if not isinstance(leaf, jax.Array | np.ndarray | np.generic | float | int):
            raise TypeError(
                f"theta{jax.tree_util.keystr(path)} is {type(leaf).__name__}, not a float array: "
                "check differentiates every leaf of theta; split an equinox module with "
                "params, static = eqx.partition(model, eqx.is_array) and check "
                "lambda p, key: sim(eqx.combine(p, static), key) at params."
            )
    theta = jax.tree.map(jnp.asarray, theta)
    leaves = jax.tree_util.tree_leaves_with_path(theta)
    if not leaves or not all(jnp.issubdtype(x.dtype, jnp.floating) for _, x in leaves):
        raise TypeError(
            "theta must be a float, an array of floats or a pytree of them (check "
            "differentiates with respect to it)."
        )
    for path, x in leaves:
        if x.size == 0:
            raise ValueError(f"theta{jax.tree_util.keystr(path)} is empty: give it a value.")
        if not bool(jnp.all(jnp.isfinite(x))):
            values = np.asarray(x)
            index = np.argwhere(~np.isfinite(values))[0]
            at = f"[{', '.join(map(str, index))}]" if values.ndim else ""
            raise ValueError(
                f"theta{jax.tree_util.keystr(path)}{at} holds {values[tuple(index)]}: the "
                "checker needs finite "
                "parameters (a derivative at a NaN or infinite θ means nothing); pass the "
                "point you want checked."
            )
    out, program = check_simulator(sim, theta, key, program=True)  # the contract's messages
    if not scalar:
        return theta, key, program
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError(
            f"sim must return a scalar, got {out}; reduce it (e.g. sum or mean) to the "
            "quantity whose gradient you want."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            f"sim must return a floating-point scalar, got {out.dtype}: the checker "
            "differentiates it (cast with .astype(float) if a count is what you want)."
        )
    return theta, key, program


def check(
    sim: Callable,
    theta,
    key=None,
    *,
    eigen_tol: float = 1e-6,
    max_directions: int = 16,
) -> Report:
    r"""Find where the simulator's dependence on θ is not differentiable, and why.

    Four passes over ``sim``'s program, all through simgrad's program core and its rule
    table:

    1. **Static scan.** Which values depend on θ and reach the output, and which of them
       go through a threshold, a rounding, a kink, a discrete choice, a while_loop with a
       θ-dependent trip count, a discrete draw with θ-dependent parameters, an
       eigendecomposition, or a ``where`` hiding a singular function. Each `Finding` has
       its source line, what AD returns there, and the remedy.
    2. **AD at θ.** AD's gradient (reverse mode; forward mode where reverse mode is
       impossible). Where it is NaN or inf, a ``nan_at_theta`` finding names the
       singular function that produced it (``sqrt`` of 0, a norm at 0, ``log`` of 0).
    3. **Kinks at θ.** Where a kink's operands tie at θ, the exact one-sided derivatives
       (`one_sided`) along each of the first ``max_directions`` parameters; a
       ``kink_at_theta`` finding, naming the kink that makes the sides differ along that
       parameter, where they differ.
    4. **Degenerate eigenvalues.** Each `eigh`'s eigenvalues at θ; clusters closer than
       ``eigen_tol`` are reported with the gradient of their sum, which is well defined.

    Forward mode cannot differentiate a `jax.custom_vjp` function (diffrax's default
    adjoint, `jax.experimental.ode.odeint`): passes 3 and 4 then differentiate its own
    computation instead of its rule, and ``report.notes`` says so.

    The scan cannot see into a ``jax.pure_callback``, an ``io_callback``, a foreign call
    or an `sg.BlackBox`: where θ reaches one, an ``"opaque"`` finding says so, with its
    source line, and the report is unverified (``report.verified`` is False), never clean.

    Arguments:
        sim: ``sim(theta, key) -> scalar``, or an `sg.BlackBox`.
        theta: the parameters (float, array or pytree of them), finite.
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
    if isinstance(max_directions, bool) or not isinstance(max_directions, int):
        raise TypeError(f"max_directions must be an int, got {max_directions!r}.")
    if not eigen_tol >= 0:
        raise ValueError(f"eigen_tol={eigen_tol!r} must be a non-negative number.")
    run = simulator_of(sim)
    theta, key, program = _validated(run, theta, key)
    leaves = jax.tree.leaves(theta)
    found = scan(program, len(leaves))
    findings, notes = list(found.findings), []
    fn = black_box_fn(sim)
    if fn is not None:
        findings = [_at_black_box(f, fn) if f.kind == "opaque" else f for f in findings]
    stochastic = bool(found.out_flags[0] & RANDOM)
    if found.custom_vjps:
        file, line, _ = location(found.custom_vjps[0])
        where = f" at {file}:{line}" if file is not None else ""
        notes.append(
            f"forward mode cannot differentiate the jax.custom_vjp function{where} (diffrax's "
            "default adjoint is one): AD's gradient is reverse mode's (its custom rule); NaN "
            "sources and kinks at θ are found by differentiating its own computation in "
            "forward mode instead of its rule"
        )

    value, ad, how = _ad_gradient(program, leaves, key)
    if how:
        notes.append(how)
    if not np.isfinite(value):
        raise ValueError(
            f"sim(theta, key) = {value} at this θ and key: the checker needs a finite output; "
            "fix the simulator or check another point."
        )
    x, unravel = ravel_pytree(theta)
    if ad is not None and not np.all(np.isfinite(ad)):
        findings.extend(_nonfinite_findings(program, leaves, [key], found, ad, stochastic, how))
    elif ad is not None and found.tie_sites and max_directions > 0:
        try:
            findings.extend(_kinks_at_theta(program, leaves, key, found, ad, max_directions,
                                            stochastic))  # fmt: skip
        except Exception as error:  # noqa: BLE001 - a program forward mode cannot run
            notes.append(f"kinks at θ not measured: forward mode failed ({_first_line(error)})")
    try:
        clusters = degenerate_clusters(program, theta, [key], eigen_tol)
    except Exception as error:  # noqa: BLE001 - a program forward mode cannot run
        clusters = []
        notes.append(f"eigenvalue gaps not measured: {_first_line(error)}")
    for c in clusters:
        grad = ", ".join(f"{g:.6g}" for g in np.ravel(ravel_pytree(c.grad_sum)[0]))
        kind = FINDING_KINDS["degenerate_eigenvalues"]
        findings.append(
            Finding(
                kind.name, c.primitive, *c.location, (), stochastic, kind.ad_returns,
                f"{kind.remedy}: the gradient of the sum of eigenvalues "
                f"{c.indices[0]}..{c.indices[1]} is [{grad}]",
                f"eigenvalues {c.indices[0]}..{c.indices[1]} = "
                + ", ".join(f"{v:.6g}" for v in c.eigenvalues),
            )
        )  # fmt: skip
    grad = None if ad is None else unravel(jnp.asarray(ad, x.dtype))
    return Report(tuple(findings), tuple(clusters), stochastic, sim, theta, key, grad,
                  tuple(notes), tuple(found.rough_draws))  # fmt: skip


def fd_hazards(sim: Callable, theta, key=None) -> list[str]:
    """Why finite differences of ``sim`` in θ cannot be trusted at ``theta``: one line each.

    Read off the program without running it: a `jax.random.gamma` (beta, dirichlet, or the
    `simgrad.random` ones) whose shape depends on θ is drawn by a rejection sampler that
    jumps as θ moves, so finite differences with common random numbers are biased with a
    normal-looking error bar; a discrete draw (categorical, bernoulli, poisson, …) whose
    distribution depends on θ is piecewise constant in θ, so with common random numbers
    they return exactly 0 ± 0 when no draw changes within the step; a threshold or
    rounding of θ with no random draw upstream is a jump of the expectation itself, and a
    quotient whose step straddles it is the jump over the step. Each line names the draw
    or jump, its source line and what to use instead. An empty list: none of these.
    `sg.FiniteDifference` puts these lines in `Estimate.notes`.

    ``sim(theta, key)`` may return any pytree of arrays (a Jacobian target); ``theta`` is
    validated as by `check` (finite floats); ``key`` defaults to ``jax.random.key(0)``.
    Costs one trace and a static scan; nothing is compiled or run.

    Examples:
        >>> import jax
        >>> fd_hazards(lambda t, k: jax.random.gamma(k, t), 2.0)[0].split(" at ")[0]
        'jax.random.gamma'
    """
    if black_box_fn(sim) is not None:
        raise TypeError(
            "fd_hazards reads the JAX program of sim, and an sg.BlackBox has none to read: "
            "nothing inside it can be ruled out. sg.check(black_box, theta) reports it "
            "unverified, and its to_html plots the derivative of the mean along a line; "
            "finite differences at two steps (h and h/4) that agree within their error "
            "bars have no jump within the step."
        )
    theta, _, program = _validated(sim, theta, key, scalar=False)
    return scan(program, len(jax.tree.leaves(theta))).fd_hazards


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


class _Plain(Interpretation):
    """The program as it is, with `jax.custom_vjp` functions evaluated in place."""

    inline_custom_vjp = True

    def initial_state(self):
        return ()


def _ad_gradient(program, leaves, key) -> tuple[float, np.ndarray | None, str]:
    """``(value, AD's gradient raveled, how)``: reverse mode as `jax.grad` gives it; forward
    mode where reverse mode is impossible (a θ-dependent while_loop); forward mode through
    the custom_vjp functions' own computation where neither works. ``how`` says which, ""
    for plain reverse mode. The program is differentiated as traced (not traced again)."""
    x, unravel = ravel_pytree(leaves)
    run = jaxpr_as_fun(program)

    def f(flat):
        return run(*unravel(flat), key)[0]

    try:
        value, grad = jax.jit(jax.value_and_grad(f))(x)
        return float(value), np.asarray(grad), ""
    except Exception as reverse_error:  # noqa: BLE001 - any AD refusal: try forward mode
        reason = _first_line(reverse_error)
    value = float(jax.jit(f)(x))
    try:
        how = f"AD's gradient is forward mode's: reverse mode is impossible here ({reason})"
        return value, np.asarray(jax.jit(jax.jacfwd(f))(x)), how
    except Exception:  # noqa: BLE001 - a custom_vjp inside: differentiate its computation
        pass

    def g(flat):
        return evaluate(program, [*unravel(flat), key], _Plain())[0][0]

    try:
        ad = np.asarray(jax.jit(jax.jacfwd(g))(x))
    except Exception as error:  # noqa: BLE001
        return value, None, f"AD cannot differentiate this program ({_first_line(error)})"
    how = (
        "AD's gradient is forward mode's through the custom_vjp functions' own computation: "
        f"reverse mode is impossible here ({reason})"
    )
    return value, ad, how


def _nonfinite_findings(program, leaves, rest, found, ad, stochastic, how) -> list[Finding]:
    """``nan_at_theta`` findings: where AD's non-finite derivative is born."""
    x = np.asarray(ad)
    bad = [i for i in range(x.size) if not np.isfinite(x[i])]
    detail = "AD's derivative is " + ", ".join(f"{_num(x[i])} along θ[{i}]" for i in bad[:4])
    if len(bad) > 4:
        detail += f" (and {len(bad) - 4} more)"
    flows = found.trap_sites
    origins: list[int] = []
    if flows and not how:
        try:
            origins = reverse_origins(program, leaves, rest, flows)
        except Exception:  # noqa: BLE001 - reverse mode impossible through an inlined loop
            origins = []
    if flows and not origins:
        flat, unravel = ravel_pytree(leaves)
        for i in bad[:4]:
            h = unravel(jnp.zeros_like(flat).at[i].set(1.0))
            try:
                origins += forward_origins(program, leaves, rest, flows, h)
            except Exception:  # noqa: BLE001
                break
    out = []
    for i in dict.fromkeys(origins):
        flow = flows[i]
        rule = rule_for(flow.eqn)
        assert rule is not None  # trap sites have a rule
        ad_returns, remedy = rule.texts(random=False)
        file, line, function = location(flow)
        out.append(Finding("nan_at_theta", flow.eqn.primitive.name, file, line, function,
                           flow.context, stochastic, ad_returns, remedy, detail))  # fmt: skip
    if not out:
        kind = FINDING_KINDS["nan_at_theta"]
        out.append(Finding(
            "nan_at_theta", "?", None, None, None, (), stochastic, kind.ad_returns,
            "find where with jax.config.update('jax_debug_nans', True), then "
            + kind.remedy, detail))  # fmt: skip
    return out


def _kinks_at_theta(program, leaves, key, found, ad, max_directions, stochastic):
    """``kink_at_theta`` findings: the sides along each parameter differ, and which tied
    kink makes them differ."""
    _, ties = jax.jit(lambda *a: evaluate(program, list(a), Ties(found.tie_sites)))(*leaves, key)
    tied = [flow for flow, tie in zip(found.tie_sites, ties, strict=True) if bool(tie)]
    if not tied:
        return []
    x, unravel = ravel_pytree(leaves)
    n = min(x.size, max_directions)
    directions = [unravel(jnp.zeros_like(x).at[i].set(1.0)) for i in range(n)]
    sides = sides_along(program, leaves, [key], directions, record=tied)
    out = []
    for i in range(n):
        right, left = float(sides.right[i]), float(sides.left[i])
        if not (np.isfinite(right) and np.isfinite(left)):
            continue
        if abs(right - left) <= 1e-9 * (1 + abs(right)):
            continue
        acting = _acting(tied, sides.recorded[i])
        detail = (
            f"slope {_num(left)} from the left, {_num(right)} from the right along θ[{i}]; "
            f"AD returns {_num(ad[i])}"
        )
        if acting:
            primitive, (file, line, function) = acting[0].eqn.primitive.name, location(acting[0])
            also = [f"{a.eqn.primitive.name} at line {location(a)[1]}" for a in acting[1:]]
            if also:
                detail += "; also " + ", ".join(dict.fromkeys(also))
        else:
            primitive, file, line, function = "—", None, None, None
        kind = FINDING_KINDS["kink_at_theta"]
        out.append(Finding("kink_at_theta", primitive, file, line, function, (), stochastic,
                           kind.ad_returns, kind.remedy, detail))  # fmt: skip
    return out


def _acting(tied, recorded) -> list:
    """The tied places whose outputs differ between the two sides: their outcome (a
    comparison, a rounding) or their slope (a kink) changes across θ."""
    (primal_r, tangent_r), (primal_l, tangent_l) = recorded
    acting = []
    for k, flow in enumerate(tied):
        differs = not np.array_equal(np.asarray(primal_r[k]), np.asarray(primal_l[k]))
        slope_r, slope_l = np.asarray(tangent_r[k]), -np.asarray(tangent_l[k])
        # Outputs with no slope at all (NaN: the eigenvectors of a tied eigenvalue) are
        # compared by their outcome, not their slope.
        sloped = np.isfinite(slope_r) & np.isfinite(slope_l)
        slope_r, slope_l = np.where(sloped, slope_r, 0), np.where(sloped, slope_l, 0)
        scale = 1e-9 * (1 + np.max(np.abs(slope_r), initial=0.0))
        if differs or np.any(np.abs(slope_r - slope_l) > scale):
            acting.append(flow)
    return acting


def _num(x) -> str:
    return f"{float(x) + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0
