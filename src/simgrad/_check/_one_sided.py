r"""Exact one-sided directional derivatives of piecewise-smooth programs.

An interpretation of the program core replaces every non-smooth primitive by its one-sided
forward rule from the rule table (`simgrad._src.program.rules`) and runs the program under
`jax.jvp`: at a tie of ``min(a, b)`` the right derivative is ``min(a', b')``, of ``max``
it is ``max(a', b')``, of ``abs`` at 0 it is ``|x'|``, a comparison ``a > b`` at a tie is
decided by the tangents (``a' > b'``), so ``where`` picks the branch that holds just to
the right, and ``floor`` at an integer takes the piece just to the right. Away from ties
every rule is JAX's own.
"""

import dataclasses
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._result import AbstractResult
from .._src.program import Interpretation, current_site, evaluate, trace
from .._src.program._jax_compat import JaxprEqn, bind, jit_name
from .._src.program.rules import SMOOTH_JITS, rule_for


class OneSidedRules(Interpretation):
    """Run a program with the one-sided forward rules (use under `jax.jvp`).

    Smooth library functions (`jax.nn.softplus`, `logsumexp`, …) keep JAX's rules, and
    `jax.custom_vjp` functions are evaluated in place (forward mode cannot differentiate
    them as bound). ``record``: places (`Flow`s) whose outputs are added up in the state,
    so that the sides can be compared place by place (which kink made a kink at θ).
    """

    inline_custom_vjp = True

    def __init__(self, record=()):
        self.index = {flow.site: i for i, flow in enumerate(record)}
        self.sizes = [
            (sum(math.prod(v.aval.shape) for v in flow.eqn.outvars), _float_dtype(flow.eqn))
            for flow in record
        ]

    def initial_state(self):
        return tuple(jnp.zeros(n, dtype) for n, dtype in self.sizes)

    def wants(self, eqn: JaxprEqn) -> bool:
        if jit_name(eqn) in SMOOTH_JITS:
            return True
        rule = rule_for(eqn)
        return rule is not None and rule.one_sided is not None

    def apply(self, eqn: JaxprEqn, invals: list, state):
        rule = rule_for(eqn)
        if rule is None or rule.one_sided is None:  # a smooth library function, as it is
            return bind(eqn, invals), state
        outs = rule.one_sided(eqn, invals)
        i = self.index.get(current_site(eqn))
        if i is None:
            return outs, state
        _, dtype = self.sizes[i]
        flat = jnp.concatenate([jnp.ravel(o).astype(dtype) for o in outs])
        return outs, (*state[:i], state[i] + flat, *state[i + 1 :])


def _float_dtype(eqn: JaxprEqn):
    for v in eqn.invars:
        dtype = getattr(getattr(v, "aval", None), "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
            return dtype
    return jnp.result_type(float)


class OneSided(AbstractResult):
    r"""One-sided directional derivatives of ``f`` at ``theta`` along ``h``.

    Attributes:
        value: $f(\theta)$.
        right: $\lim_{\epsilon \downarrow 0} [f(\theta + \epsilon h) - f(\theta)]/\epsilon$.
        left: $\lim_{\epsilon \downarrow 0} [f(\theta) - f(\theta - \epsilon h)]/\epsilon$.
        exact: True when both come from the one-sided forward rules (exact to rounding);
            False when forward mode met a singular point (``sqrt`` at 0) and they are
            limits of difference quotients instead (see ``note``).
        note: why ``exact`` is False, naming the primitive and its source line; "" else.
    """

    value: jax.Array
    right: jax.Array | np.ndarray  # NumPy when not exact: limits computed on the host
    left: jax.Array | np.ndarray
    exact: bool = eqx.field(static=True, default=True)
    note: str = eqx.field(static=True, default="")

    @property
    def kink(self) -> bool:
        """``f`` has no derivative at ``theta`` along ``h``: the sides differ, or one of
        them is infinite or undefined."""
        right, left = np.asarray(self.right), np.asarray(self.left)
        if not (np.all(np.isfinite(right)) and np.all(np.isfinite(left))):
            return True
        scale = 1e-9 * (1 + float(np.max(np.abs(right))))
        return bool(np.any(np.abs(right - left) > scale))

    def summary(self) -> str:
        verdict = "a kink: no derivative along h" if self.kink else "the sides agree"
        how = "exact" if self.exact else "limits of difference quotients, not exact"
        lines = [
            f"OneSided(value = {_numbers(self.value)}; slope {_numbers(self.left)} from the "
            f"left, {_numbers(self.right)} from the right: {verdict}; {how})"
        ]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _numbers(x) -> str:
    """A number as ``%.6g``; an array as its first six entries, with its shape."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return f"{float(x) + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0
    more = ", …" if x.size > 6 else ""
    entries = ", ".join(f"{v + 0.0:.6g}" for v in x.ravel()[:6].tolist())
    return f"[{entries}{more}] (shape {x.shape})"


def one_sided(f: Callable, theta, direction) -> OneSided:
    r"""Exact one-sided directional derivatives of a piecewise-smooth ``f`` at ``theta``.

    The right derivative along $h$ is $f'(\theta; h)$, the left one $-f'(\theta; -h)$,
    each computed by forward-mode AD with the one-sided rules of the rule table at ties:
    ``min(a, b)`` at $a = b$ has derivative $\min(a', b')$, ``max`` $\max(a', b')$,
    ``abs`` at 0 $|x'|$; ``clip``, ``relu``, ``jnp.max``, ``cummax`` follow; a comparison
    at a tie is decided by the tangents (so ``jnp.where(x > 0, x, -x)`` is ``abs``, and
    ``jnp.interp`` at a knot takes the segment on each side); ``sort``, ``argmax`` and
    ``top_k`` order ties by the tangents. Away from ties both sides equal `jax.jvp`.

    Where forward mode meets a singular point (``sqrt(θ²)`` or ``jnp.linalg.norm`` at 0,
    where the chain rule gives $\infty \cdot 0$), the sides are the limits of one-sided
    difference quotients (Richardson-extrapolated), ``exact`` is False and ``note`` names
    the primitive: ``sqrt(θ²)`` at 0 gives left $-1$, right $1$.

    Arguments:
        f: ``f(theta) -> array``; for a simulator, ``lambda t: sim(t, key)``.
        theta: the point (float, array or pytree).
        direction: $h$, with ``theta``'s structure.

    Returns:
        A `OneSided` with ``value``, ``right``, ``left``, ``kink``, ``exact`` and ``note``.

    Examples:
        >>> import jax.numpy as jnp
        >>> d = one_sided(lambda t: jnp.minimum(t**2, 2 * t), 2.0, 1.0)
        >>> float(d.left), float(d.right), d.kink
        (4.0, 2.0, True)

    Not for jumps: where ``f`` itself jumps (``floor``, a threshold on the value) the
    one-sided derivatives are infinite and this returns the slope of the piece on each
    side. A tie in a ``while_loop``'s condition is not resolved (JAX evaluates it on primal
    values only): the trip count at θ is used.
    """
    if not callable(f):
        raise TypeError(f"f must be a function f(theta) -> array, got {type(f).__name__}.")
    leaves, treedef = jax.tree.flatten(theta)
    h_leaves, h_def = jax.tree.flatten(direction)
    if h_def != treedef:
        raise ValueError(
            f"direction must have theta's structure {treedef}, got {h_def}: give one entry "
            "per parameter."
        )
    leaves = [jnp.asarray(x) for x in leaves]
    if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
        raise TypeError("theta must hold floating-point numbers (one_sided differentiates it).")
    h_leaves = [jnp.asarray(h, x.dtype) for h, x in zip(h_leaves, leaves, strict=True)]
    program = trace(lambda *xs: f(jax.tree.unflatten(treedef, xs)), *leaves)
    outputs = [v.aval.dtype for v in program.jaxpr.outvars]  # pyright: ignore[reportAttributeAccessIssue]  (a jaxpr variable's aval is shaped)
    if not all(jnp.issubdtype(dtype, jnp.floating) for dtype in outputs):
        raise TypeError(
            f"f returns {', '.join(map(str, outputs))}: one_sided differentiates it, so it "
            "must return floating-point values (an integer-valued f is piecewise constant: "
            "its slopes are 0 wherever they exist; return f(theta).astype(float) for those)."
        )
    sides = sides_along(program, leaves, [], [h_leaves], compiled=False)
    value, right, left = sides.value, sides.right[0], sides.left[0]
    if np.all(np.isfinite(right)) and np.all(np.isfinite(left)):
        return OneSided(value=value, right=right, left=left)
    from ._nan import explain_nonfinite

    where = explain_nonfinite(program, leaves, [], h_leaves)

    def g(eps):
        shifted = [x + eps * h for x, h in zip(leaves, h_leaves, strict=True)]
        out = f(jax.tree.unflatten(treedef, shifted))
        return jnp.asarray(out)

    right, left = _difference_limits(g, leaves, h_leaves)
    note = (
        f"forward mode gives a non-finite slope here ({where}); the slopes are limits of "
        "one-sided difference quotients, not exact"
    )
    return OneSided(value=value, right=right, left=left, exact=False, note=note)


@dataclasses.dataclass(frozen=True)
class Sides:
    """`sides_along`'s result: the value, and per direction the right and left
    derivatives and the recorded places' outputs on each side (primal, tangent)."""

    value: jax.Array
    right: list
    left: list
    recorded: list  # per direction: ((primals right, tangents right), (primals, tangents) left)


def sides_along(program, leaves, rest, directions, record=(), compiled=True) -> Sides:
    """Right and left derivatives of ``program`` (inputs: ``leaves`` then ``rest``) along
    each direction (a list of tangents for ``leaves``): in one compiled run, or (with
    ``compiled=False``, cheaper for a single direction) evaluated eagerly.

    With ``record`` (`Flow`s), also each place's outputs on each side: under the right
    rules their primal values (a comparison's outcome) and tangents.
    """
    interp = OneSidedRules(record)

    def run(*xs):
        outs, state = evaluate(program, [*xs, *rest], interp)
        return outs[0], state

    def both(hs):
        value, (right, rec_r) = _jvp(run, leaves, hs)
        _, (minus, rec_l) = _jvp(run, leaves, [-h for h in hs])
        return value, right, minus, rec_r, rec_l

    if not compiled:
        runs = [both(list(hs)) for hs in directions]
        value = runs[0][0]
        right, left = [r[1] for r in runs], [-r[2] for r in runs]
        return Sides(value, right, left, [(r[3], r[4]) for r in runs])
    stacked = [jnp.stack(hs) for hs in zip(*directions, strict=True)]
    value, right, minus, rec_r, rec_l = jax.jit(jax.vmap(lambda *hs: both(list(hs))))(*stacked)
    n = len(directions)
    recorded = [
        (jax.tree.map(lambda a, i=i: a[i], rec_r), jax.tree.map(lambda a, i=i: a[i], rec_l))
        for i in range(n)
    ]
    return Sides(value[0], [right[i] for i in range(n)], [-minus[i] for i in range(n)], recorded)


def _jvp(run, leaves, hs):
    (value, state), (tangent, state_tangent) = jax.jvp(run, leaves, hs)
    return value, (tangent, (state, state_tangent))


def _difference_limits(g, leaves, h_leaves):
    """Limits of one-sided difference quotients of ``g(ε) = f(θ + εh)`` as ε → 0⁺ on each
    side, Richardson-extrapolated: ``(right, left)``; ±inf where they grow without bound,
    NaN where ``f`` is undefined on that side or they do not settle."""
    dtype = leaves[0].dtype
    scale = max([1.0] + [float(jnp.max(jnp.abs(x))) for x in leaves if x.size])
    h_size = max([float(jnp.max(jnp.abs(h))) for h in h_leaves if h.size] + [1e-300])
    eps = jnp.asarray(scale / h_size * 2.0 ** -np.arange(6, 24), dtype)
    values = np.asarray(jax.jit(jax.vmap(g))(jnp.concatenate([eps, -eps])), dtype=float)
    f0 = np.asarray(g(jnp.zeros((), dtype)), dtype=float)
    tol = 1e-6 if np.finfo(dtype).bits > 32 else 1e-2
    n = len(eps)
    step = np.asarray(eps, dtype=float).reshape((n,) + (1,) * f0.ndim)
    with np.errstate(invalid="ignore", over="ignore"):
        return _limit((values[:n] - f0) / step, tol), _limit((f0 - values[n:]) / step, tol)


def _limit(q, tol):
    r = 2 * q[1:] - q[:-1]  # Richardson: removes the O(ε) term of a smooth piece
    last = r[-4:]
    spread = np.max(last, 0) - np.min(last, 0)
    settled = np.all(np.isfinite(last), 0) & (spread <= tol * np.maximum(1, np.abs(last[-1])))
    growing = np.all(np.abs(q[-4:]) > 1.3 * np.abs(q[-5:-1]), 0) & np.all(np.isfinite(q[-4:]), 0)
    return np.where(settled, last[-1], np.where(growing, np.sign(q[-1]) * np.inf, np.nan))
