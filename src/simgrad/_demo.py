"""The demo: every applicable estimator on every gallery model, against the exact answers."""

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterable

import jax

from ._engine import flat_problem
from ._estimate import gradient
from ._result import BiasWarning, Estimate
from ._src.executables import remembered
from ._src.names import named_components
from ._src.program import draw_distribution, draw_sites, trace
from .estimators import ESTIMATORS, AbstractEstimator, Auto
from .estimators.base import refusal_of
from .models import GALLERY, AbstractModel

# Estimators that choose another from the program: one more row per model, labelled with
# the choice ("auto → pathwise-forward").
CHOOSERS: dict[str, AbstractEstimator] = {"auto": Auto()}


@dataclasses.dataclass(frozen=True)
class DemoRow:
    """One estimator on one model: the estimate, its cost, and its error against the truth."""

    model: str
    stochastic: bool
    estimator: str
    value: float
    value_stderr: float
    grad: dict[str, float]
    grad_stderr: dict[str, float]
    exact_grad: dict[str, float] | None
    n_evals: int
    ms: float
    compile_ms: float
    claim: str = "unbiased"

    def error(self, name: str) -> tuple[str, float] | None:
        """How one gradient component compares with the exact answer, or None without one.

        ``("exact", |error|)`` within rounding (1e-9 relative) or for a deterministic
        model; ``("sigma", z)`` in standard errors; ``("biased", |error|)`` when a random
        model's estimate misses with no spread at all (pathwise on a discrete output).
        """
        if self.exact_grad is None:
            return None
        error = abs(self.grad[name] - self.exact_grad[name])
        stderr = self.grad_stderr[name]
        if error <= 1e-9 * max(1.0, abs(self.exact_grad[name])) or not self.stochastic:
            return "exact", error
        if stderr == 0:
            return "biased", error
        return "sigma", error / stderr

    @property
    def abs_error(self) -> float | None:
        """The largest absolute error of a gradient component, or None without an answer."""
        if self.exact_grad is None:
            return None
        return max(abs(self.grad[k] - self.exact_grad[k]) for k in self.grad)

    @property
    def z_score(self) -> float | None:
        """The largest |error| / standard error over components (None if no error bar)."""
        if self.exact_grad is None or any(s == 0 for s in self.grad_stderr.values()):
            return None
        return max(abs(self.grad[k] - self.exact_grad[k]) / self.grad_stderr[k] for k in self.grad)


def applicable_estimators(model: AbstractModel) -> dict[str, AbstractEstimator]:
    """All registered estimators; independent keys (no CRN) and random directions (SPSA,
    Gaussian smoothing: noise that a deterministic model does not have) only run on random
    models, and estimators that need `simgrad.random` draws only on models that make them."""
    sites = draw_sites(trace(model, model.default_theta(), jax.random.key(0)))
    has_sites = bool(sites)
    # Without a discrete draw, stochastic triples are forward-mode AD and enumeration its
    # rest: the same row again.
    has_discrete = any(draw_distribution(eqn).discrete for eqn, _ in sites)
    chosen = {
        name: est
        for name, est in ESTIMATORS.items()
        if (model.stochastic or est.common_random_numbers)
        and (model.stochastic or not est.random_directions)
        and (has_sites or not est.needs_draw_sites)
        and (has_discrete or not est.rest_without_discrete_draws)
    }
    # The score function refuses a model with no θ in any draw's law and no jump to score;
    # measure-valued derivatives one where θ reaches a jump outside a draw's law.
    x, f, _, _ = flat_problem(model, model.default_theta(), jax.random.key(0))
    return {
        name: est
        for name, est in chosen.items()
        if (has_sites or not est.sees_draws)  # without draws: pathwise again
        and (
            not (est.needs_draw_sites or est.sees_draws)
            or not refusal_of(est, f, x, jax.random.key(0))
        )
    }


def run_one(
    model: AbstractModel, name: str, estimator: AbstractEstimator, key, n_samples: int
) -> DemoRow:
    """Run one estimator twice (compile, then timed) and compare it with the exact answer."""
    theta = model.default_theta()

    def run() -> Estimate:
        est = gradient(model, theta, key, method=estimator, n_samples=n_samples)
        return jax.block_until_ready(est)

    start = time.perf_counter()
    run()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    est = run()
    run_s = time.perf_counter() - start
    exact = model.exact_grad(theta)
    if est.method != repr(estimator):  # it chose another: name the choice
        chosen = est.method.split(" → ", 1)[-1]
        name += " → " + next((k for k, m in ESTIMATORS.items() if repr(m) == chosen), chosen)
    return DemoRow(
        model=model.name,
        stochastic=model.stochastic,
        estimator=name,
        value=float(est.value),
        value_stderr=float(est.value_stderr),
        grad=named_components(est.grad),
        grad_stderr=named_components(est.grad_stderr),
        exact_grad=None if exact is None else named_components(exact),
        n_evals=est.n_evals,
        ms=1e3 * run_s,
        compile_ms=1e3 * max(compile_s - run_s, 0.0),
        claim=est.claim,
    )


def demo_plan(
    model_names: Iterable[str] | None = None, estimator_names: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """The (model, estimator) pairs the demo runs: every applicable registered estimator
    on every gallery model, or only those named."""
    names = list(GALLERY) if model_names is None else list(model_names)
    unknown = [n for n in names if n not in GALLERY]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the gallery has {sorted(GALLERY)}.")
    wanted = None if estimator_names is None else list(estimator_names)
    known = [*ESTIMATORS, *CHOOSERS]
    unknown = [e for e in wanted or [] if e not in known]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; choose from {known}.")

    def plan() -> list:
        return [
            (model_name, est_name)
            for model_name in names
            for est_name in [*applicable_estimators(GALLERY[model_name]), *CHOOSERS]
            if wanted is None or est_name in wanted
        ]

    # Fixed by simgrad's code: remembered between runs inside `kept_in` (`simgrad demo`).
    return [tuple(pair) for pair in remembered(f"demo plan {names} {wanted}", plan)]


def run_demo(
    model_names: Iterable[str] | None = None,
    *,
    estimator_names: Iterable[str] | None = None,
    seed: int = 0,
    scale: float = 1.0,
    on_step: Callable[[str], None] | None = None,
    plan: list[tuple[str, str]] | None = None,
) -> list[DemoRow]:
    """Run the demo; ``scale`` multiplies each model's sample size (at least 2). ``plan``:
    `demo_plan`'s pairs, when the caller has them already (each model is scanned once)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale={scale}: must be a positive number.")
    rows = []
    key = jax.random.key(seed)
    for model_name, est_name in plan or demo_plan(model_names, estimator_names):
        model = GALLERY[model_name]
        n_samples = max(2, int(model.n_samples * scale))
        if on_step is not None:
            on_step(f"{model_name}: {est_name}")
        method = ESTIMATORS.get(est_name) or CHOOSERS[est_name]
        with warnings.catch_warnings():  # the table's claim column says it for each row
            warnings.simplefilter("ignore", BiasWarning)
            rows.append(run_one(model, est_name, method, key, n_samples))
    return rows
