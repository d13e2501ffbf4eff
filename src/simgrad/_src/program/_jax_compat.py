"""Every use of JAX internals by the program core, in one place.

The core reads jaxprs (public types from `jax.extend.core`) and re-binds their equations.
What is not public — the primitive names of control flow, their parameter names, and
`Primitive.get_bind_params` — is gathered here so that a JAX upgrade touches one file.
Tested with JAX 0.8.2 and 0.10.2 (CPU), 0.11.2 (CPU on Python 3.12, and CUDA).
"""

import contextlib
import dataclasses

from jax._src import source_info_util as _source_info
from jax.extend.core import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var

__all__ = [
    "CALL_PRIMITIVES",
    "CUSTOM_VJP_PRIMITIVES",
    "STOP_GRADIENT",
    "ClosedJaxpr",
    "Jaxpr",
    "JaxprEqn",
    "Literal",
    "Var",
    "bind",
    "call_jaxpr",
    "scan_counts",
    "jit_name",
    "Frame",
    "frames",
]

# Primitives that apply one sub-jaxpr to their inputs, output for output. ``jit`` was named
# ``pjit`` before JAX 0.7; ``remat2``/``checkpoint`` is `jax.checkpoint`.
JIT_PRIMITIVES = frozenset({"jit", "pjit"})
# `jax.custom_vjp` functions: forward mode cannot differentiate them as bound.
CUSTOM_VJP_PRIMITIVES = frozenset({"custom_vjp_call", "custom_vjp_call_jaxpr"})
CUSTOM_JVP_PRIMITIVES = frozenset({"custom_jvp_call"})
# `jax.lax.stop_gradient`: AD does not differentiate through it.
STOP_GRADIENT = "stop_gradient"
CALL_PRIMITIVES = frozenset(
    {
        *JIT_PRIMITIVES,
        *CUSTOM_VJP_PRIMITIVES,
        *CUSTOM_JVP_PRIMITIVES,
        "closed_call",
        "core_call",
        "remat2",
        "checkpoint",
    }
)


def call_jaxpr(eqn: JaxprEqn) -> ClosedJaxpr:
    """The sub-jaxpr of a call-like equation (``CALL_PRIMITIVES``), as a closed jaxpr."""
    params = eqn.params
    inner = params.get("jaxpr", params.get("call_jaxpr", params.get("fun_jaxpr")))
    if inner is None:
        raise NotImplementedError(
            f"simgrad's program core cannot find the sub-program of {eqn.primitive.name!r} "
            f"(parameters {sorted(params)}); please report this with your JAX version."
        )
    if isinstance(inner, Jaxpr) and Jaxpr is not ClosedJaxpr:  # JAX < 0.11: an open jaxpr
        return ClosedJaxpr(inner, ())
    # JAX 0.11 made the two one type: a jaxpr holds its constants (a `jax.jit` function's
    # closed-over arrays, as constvars). Wrapping it with no constants would make them inputs.
    return inner  # pyright: ignore[reportReturnType]  (JAX 0.11: Jaxpr is ClosedJaxpr)


def scan_counts(params) -> tuple[int, int]:
    """``(number of consts, number of carries)`` of a ``scan`` equation's inputs.

    The inputs are ``[consts..., carry..., xs...]``. JAX < 0.11 states the counts as
    ``num_consts``/``num_carry``; JAX 0.11 replaced them by ``ft_in``, a flat-tree tuple of
    the three groups.
    """
    if "num_consts" in params:
        return params["num_consts"], params["num_carry"]
    consts, carry, _ = (len(group) for group in params["ft_in"].unpack())
    return consts, carry


def jit_name(eqn: JaxprEqn) -> str | None:
    """The function name a `jax.jit` equation carries, or None for other equations."""
    if eqn.primitive.name in JIT_PRIMITIVES:
        return eqn.params.get("name")
    return None


def bind(eqn: JaxprEqn, invals: list) -> list:
    """Apply ``eqn``'s primitive to ``invals`` as `jax.core.eval_jaxpr` does; a list out."""
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(bind_params, tuple):  # JAX < 0.9: (subfuns, params)
        subfuns, bind_params = bind_params
    else:  # JAX >= 0.9: the sub-functions travel inside the params
        subfuns = ()
    ctx = getattr(eqn, "ctx", None)
    manager = getattr(ctx, "manager", None) or contextlib.nullcontext()
    # the re-bound equation keeps the original's source lines (what the checker reports)
    with manager, _source_info.user_context(getattr(eqn.source_info, "traceback", None)):
        out = eqn.primitive.bind(*subfuns, *invals, **bind_params)
    return list(out) if eqn.primitive.multiple_results else [out]


# Functions of `jax.random` that trace as a `jit` named after the function. The checker
# treats them as draws (their inside is JAX's sampling code, not the user's); the discrete
# ones have a zero pathwise derivative.
JAX_RANDOM_DISCRETE = frozenset({"_bernoulli", "_randint", "_poisson", "_binomial", "_geometric"})
JAX_RANDOM_JITS = JAX_RANDOM_DISCRETE | frozenset(
    {"_uniform", "_normal", "_gumbel", "_exponential", "_gamma", "_beta", "_truncated_normal",
     "_dirichlet", "_t", "_chisquare", "_laplace", "_logistic", "_weibull_min", "_cauchy",
     "_pareto", "_rayleigh", "_wald", "_maxwell", "_double_sided_maxwell", "_lognormal",
     "_multivariate_normal", "_generalized_normal", "_triangular", "_f", "_loggamma"}
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Frame:
    """One Python frame that emitted an equation: ``jax`` is True for JAX's own code."""

    file: str
    line: int
    function: str
    jax: bool


def frames(eqn: JaxprEqn) -> list[Frame]:
    """The Python frames that emitted ``eqn``, innermost first (empty if JAX kept none).

    JAX's own frames (and the standard library's) are told apart with JAX's rule
    (`jax._src.source_info_util.is_user_filename`).
    """
    from jax._src import source_info_util

    traceback = getattr(getattr(eqn, "source_info", None), "traceback", None)
    if traceback is None:
        return []
    out = []
    for code, lasti in zip(*traceback.raw_frames(), strict=True):
        f = source_info_util.raw_frame_to_frame(code, lasti)
        jax_own = not source_info_util.is_user_filename(f.file_name)
        out.append(Frame(f.file_name, f.start_line, f.function_name, jax_own))
    return out
