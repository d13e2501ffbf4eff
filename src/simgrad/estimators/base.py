"""The estimator contract: turn a flat simulator and a chunk of keys into per-sample estimates.

`sg.gradient` hands every estimator the same *flat* problem, whatever the user's pytrees:

* ``f(x, key) -> y``: the simulator on ``x``, the parameters raveled into one vector of
  length ``N`` (`jax.flatten_util.ravel_pytree`), returning its outputs raveled into one
  vector of length ``m`` (``m = 1`` for a scalar simulator);
* ``keys``: the keys of one chunk of samples.

and gets back `Samples`: per sample the value ``y`` (shape ``(B, m)``) and one
single-sample estimate of the Jacobian $\\partial \\mathbb{E}[y_j] / \\partial x_k$ (shape
``(B, m, N)``). Structure — tuples, dicts, equinox modules, vector or pytree outputs — is
the engine's business alone (`simgrad._estimate`), restored from the ravel; an estimator
never sees or guesses it.
"""

import abc
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._types import Key

if TYPE_CHECKING:  # pyright takes only a local alias of ClassVar for one (pyright#4965)
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar

FlatSimulator = Callable[[Array, Key], Array]
"""``f(x, key) -> y``: parameters raveled to a vector ``x`` (N,), outputs to ``y`` (m,)."""


class Samples(eqx.Module):
    """Per-sample results of one chunk of ``B`` samples.

    Attributes:
        value: the simulator's outputs, ``(B, m)``.
        grad: single-sample estimates of the Jacobian of ``E[y]`` in ``x``, ``(B, m, N)``.
        value_ok: ``(B,)``: the simulator's value was finite.
        grad_ok: ``(B,)``: every raw per-sample contribution to the gradient was finite,
            judged *before* anything that mixes samples (a batch baseline spreads one bad
            sample over all; the engine counts samples, not the spread).
        bias: for biased estimators, a per-sample estimate of the deterministic error of
            ``grad`` (finite differences: the Richardson truncation estimate),
            ``(B, m, N)``; None otherwise.
    """

    value: Float[Array, "B m"]
    grad: Float[Array, "B m N"]
    value_ok: Bool[Array, " B"]
    grad_ok: Bool[Array, " B"]
    bias: Float[Array, "B m N"] | None = None


def own_key(key: Key) -> Key:
    """A key for an estimator's own draws (random directions), independent of the simulator's.

    The simulator keeps the sample's ``key`` itself, so its randomness is the same as under
    any other estimator (and a `sg.BlackBox` gets the same seed); the estimator draws from
    ``fold_in(key, 2**31 - 1)``, a key a simulator's own ``split`` or ``fold_in`` of small
    counts never produces.
    """
    return jax.random.fold_in(key, 2**31 - 1)


Claim = Literal["unbiased", "biased", "approximate", "unverified"]
"""What an estimate promises for the program at hand (`Estimate.claim`)."""


@dataclasses.dataclass(frozen=True)
class Hazard:
    """A kind of finding of the program scan that breaks some estimators' claims.

    Attributes:
        applies: ``applies(finding) -> bool``.
        text: completes "θ reaches a <finding> …".
        remedy: what would be unbiased instead.
    """

    applies: Callable
    text: str
    remedy: str


# Jumps in the output as θ moves (as `sg.Auto` reads them): thresholds, roundings, discrete
# choices, a while loop's trip count.
JUMPS = ("threshold", "rounding", "discrete_choice", "while_loop")

HAZARDS: dict[str, Hazard] = {
    "jump_after_continuous_draw": Hazard(
        lambda fi: fi.kind in JUMPS and fi.continuous,
        "downstream of continuous randomness (the output jumps where the draw crosses it)",
        "sg.ScoreFunction() (or sg.Auto()) accounts for the jump",
    ),
    "jump_after_discrete_draw": Hazard(
        lambda fi: fi.kind in JUMPS and fi.random and not fi.continuous,
        "downstream of a discrete draw",
        "sg.ScoreFunction(), sg.Hybrid() or sg.StochasticTriples() account for it",
    ),
    "discrete_draw": Hazard(
        lambda fi: fi.kind == "discrete_draw",
        "in a discrete draw's distribution (its value is piecewise constant in θ)",
        "sg.Hybrid(), sg.StochasticTriples() or sg.ScoreFunction() account for it",
    ),
    "rough_draw": Hazard(
        lambda fi: fi.kind == "rough_draw",
        "in the parameters of a draw whose sampler is not smooth in them (a rejection "
        "sampler: with common random numbers the draw jumps as θ moves)",
        "sg.Pathwise() (JAX differentiates gamma draws implicitly) or sg.ScoreFunction() is "
        "unbiased",
    ),
}
"""The hazards an estimator may declare in ``breaks``, by name."""


def all_finite(x: Array, batch_dims: int = 1) -> Array:
    """True per leading index where every entry of ``x`` is finite."""
    return jnp.all(jnp.isfinite(x).reshape(x.shape[:batch_dims] + (-1,)), axis=-1)


class AbstractEstimator(eqx.Module):
    """A gradient estimator: a small immutable strategy object passed to `sg.gradient`.

    Its job, `sample_batch`: given the flat simulator ``f``, the flat parameters ``x`` and
    a chunk of keys, return `Samples`. `sg.gradient` derives the keys (sample ``i`` gets
    ``jax.random.fold_in(key, i)``, whatever the chunking), runs the chunks, accumulates
    means and variances chunk by chunk, and restores the user's structure. Most
    estimators treat samples independently: subclass `AbstractPerSampleEstimator` and
    write `sample` for one key. An estimator that couples samples (a batch baseline)
    implements `sample_batch` itself; coupling is then within a chunk.

    Capabilities are declared as class variables, never probed:

    * ``sees_draws``: the estimator depends on seeing `simgrad.random` draws (the score
      function, stochastic triples). `sg.gradient` then refuses a simulator in which θ
      reaches the parameters of a discrete `jax.random` draw — a draw it cannot see, whose
      contribution would be silently zero.
    * ``couples_samples``: per-sample estimates depend on other samples of the chunk.
    * ``perturbs_theta``: the estimator differences runs at perturbed θ with shared keys
      (finite differences). `sg.gradient` then lists in `Estimate.notes` what makes such
      differences untrustworthy for the simulator (`sg.fd_hazards`), found
      once per compilation.
    * ``gradient_nan_hint``: what NaN in the gradient only (a finite value) means for this
      estimator, appended to the `sg.SimulationError` message.
    * ``evaluations_only``: the estimator needs nothing but evaluations of the simulator (no
      derivative, no view of its program), so it also runs `sg.BlackBox` simulators.
    * ``random_directions``: it draws random perturbation directions, so its estimate is
      random even for a deterministic simulator (SPSA, Gaussian smoothing).
    * ``differentiable``: AD of the estimator's own computation estimates the next
      derivative where the sample path is smooth (pathwise); `sg.expectation` refuses
      second derivatives of the others.
    * ``needs_draw_sites``: meaningless without `simgrad.random` draws (`sg.ScoreFunction`),
      so it refuses a simulator that makes none, at trace time.
    * ``common_random_numbers``: every simulator run of one sample gets that sample's key,
      so on a deterministic simulator the key changes nothing; False for
      ``FiniteDifference(crn=False)``.
    * ``rest_without_discrete_draws``: with no discrete `simgrad.random` draw it gives
      another estimator's estimate again: stochastic triples are forward-mode AD,
      ``sg.Pathwise(mode="forward")``; `sg.Enumerate` is its ``rest``.
    * ``breaks``: the hazards (`HAZARDS`) of the program scan's findings that make it
      biased; ``approximate``: biased by design (finite differences, SPSA, Gaussian
      smoothing). Read by `claim` for `Estimate.claim`.

    Hyperparameters are static fields, validated in ``__check_init__``.
    """

    sees_draws: AbstractClassVar[bool]
    couples_samples: AbstractClassVar[bool]
    perturbs_theta: ClassVar[bool] = False
    gradient_nan_hint: ClassVar[str] = ""
    evaluations_only: ClassVar[bool] = False
    random_directions: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False
    needs_draw_sites: ClassVar[bool] = False
    common_random_numbers: ClassVar[bool] = True
    rest_without_discrete_draws: ClassVar[bool] = False
    breaks: ClassVar[tuple[str, ...]] = ()
    approximate: ClassVar[bool] = False

    def claim(self, findings, opaque: bool) -> "tuple[Claim, tuple[str, ...]]":
        """``(claim, reasons)`` (why, in words, for a claim other than "unbiased" and
        "approximate") for a program with these findings of the static scan
        (``opaque``: it holds a host callback the scan cannot see into): ``"biased"``
        where one of them is a hazard in ``breaks`` (the reason names the line, the finding
        and an estimator that would be unbiased), else ``"unverified"`` for an opaque
        program (its hazards cannot be read: a black box's jump is invisible to finite
        differences too), ``"approximate"`` for an estimator biased by design,
        ``"unbiased"``."""
        broken = [(h, fi) for fi in findings if (h := self.broken_by(fi))]
        if broken:
            hazard, fi = broken[0]
            kind = fi.kind.replace("_", " ")  # "a discrete draw", "a rough draw"
            return "biased", (
                f"θ reaches a {kind} ({fi.primitive} at {fi.where}) "
                f"{HAZARDS[hazard].text}, which {self!r} misses; {HAZARDS[hazard].remedy}",
            )
        if opaque:
            return "unverified", (
                "the program calls back to the host (jax.pure_callback, "
                "sg.BlackBox), which simgrad cannot read: whether this estimator is unbiased "
                "for it cannot be checked",
            )
        if self.approximate:  # the bias is the estimator's own: its docs say how large
            return "approximate", ()
        return "unbiased", ()

    def broken_by(self, finding) -> str:
        """The hazard in ``breaks`` that ``finding`` is (its name), or "" if none is."""
        return next((h for h in self.breaks if HAZARDS[h].applies(finding)), "")

    @abc.abstractmethod
    def sample_batch(self, f: FlatSimulator, x: Array, keys: Key) -> Samples:
        """Per-sample values and Jacobian estimates for a chunk of keys (see `Samples`)."""

    @abc.abstractmethod
    def evals_per_sample(self, n_params: int, n_outputs: int) -> int:
        """Simulator evaluations one sample costs for ``n_params`` parameters and
        ``n_outputs`` outputs (a reverse-mode pass per output counts as one)."""

    def choose(self, f: FlatSimulator, x: Array, key: Key) -> "tuple[AbstractEstimator, tuple]":
        """The estimator that runs for this flat program, and notes on why: itself and no
        notes, except for an estimator that chooses another from the program (`sg.Auto`).
        Called once per trace by the engine, before anything else reads the estimator."""
        return self, ()


class AbstractPerSampleEstimator(AbstractEstimator):
    """An estimator whose samples are independent: it only defines `sample` for one key."""

    couples_samples: ClassVar[bool] = False

    @abc.abstractmethod
    def sample(self, f: FlatSimulator, x: Array, key: Key) -> tuple[Array, Array]:
        """One replicate: ``(y, jacobian)`` of shapes ``(m,)`` and ``(m, N)``."""

    def sample_batch(self, f, x, keys):
        value, grad = jax.vmap(lambda key: self.sample(f, x, key))(keys)
        return Samples(value, grad, all_finite(value), all_finite(grad))


def check_method(method) -> None:
    """Refuse anything but an estimator instance (a class gets a hint to call it)."""
    if not isinstance(method, AbstractEstimator):
        hint = ""
        if isinstance(method, type) and issubclass(method, AbstractEstimator):
            hint = f" Did you mean method={method.__name__}()?"
        raise TypeError(
            f"method must be an estimator such as sg.Pathwise() or sg.FiniteDifference(), "
            f"got {method!r}.{hint}"
        )


def refusal_of(estimator: AbstractEstimator, f: FlatSimulator, x: Array, key: Key) -> str:
    """Why ``estimator`` refuses the flat program (its trace-time error, first sentence),
    or "" when it takes it. Traces only: nothing is compiled or run."""
    try:
        jax.eval_shape(lambda: estimator.sample_batch(f, x, key[None]))
    except ValueError as error:
        return str(error).split(": ", 1)[-1].split(". ", 1)[0]
    return ""
