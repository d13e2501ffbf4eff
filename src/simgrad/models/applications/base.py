"""The applications contract: an optimisation problem with an independently known answer."""

import abc
from typing import TYPE_CHECKING

import equinox as eqx
import optax

from ..._optimize import OptimizeResult, optimize
from ..._src.names import named_components
from ..._types import Key, Scalar, Theta
from ...estimators import AbstractEstimator

if TYPE_CHECKING:  # pyright takes only a local alias of ClassVar for one (pyright#4965)
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar


class AbstractApplication(eqx.Module):
    """A design or calibration problem: a simulator to optimise, and the answer to reach.

    ``simulator`` is the objective ``sim(theta, key)``; ``exact_objective(theta)`` its
    expectation computed independently (a closed form, moment equations, enumeration);
    ``optimum()`` the known best θ. `run` optimises with the estimator that fits the
    problem; `judge` says how close the result came, in the objective's own terms.
    """

    name: AbstractClassVar[str]
    summary: AbstractClassVar[str]
    maximize: AbstractClassVar[bool]
    steps: AbstractClassVar[int]
    n_samples: AbstractClassVar[int]
    tolerance: AbstractClassVar[float]  # relative objective gap counted as reached

    @abc.abstractmethod
    def simulator(self, theta: Theta, key: Key) -> Scalar:
        """One replicate of the objective."""

    @abc.abstractmethod
    def theta0(self) -> Theta:
        """The starting point."""

    @abc.abstractmethod
    def method(self) -> AbstractEstimator:
        """The estimator that fits this simulator."""

    @abc.abstractmethod
    def optimizer(self) -> optax.GradientTransformation:
        """The optax optimiser."""

    @abc.abstractmethod
    def optimum(self) -> Theta:
        """The known best parameters."""

    @abc.abstractmethod
    def exact_objective(self, theta: Theta) -> float | Scalar:
        """``E[simulator(theta, key)]``, computed without Monte Carlo."""

    def run(self, key: Key, steps: int | None = None, **kwargs) -> OptimizeResult:
        """Optimise from `theta0` for ``steps`` (default: the application's `steps`);
        ``kwargs`` go to `sg.optimize` (progress, checkpoint…)."""
        return optimize(
            self.simulator,
            self.theta0(),
            key,
            method=self.method(),
            optimizer=self.optimizer(),
            steps=self.steps if steps is None else steps,
            n_samples=self.n_samples,
            maximize=self.maximize,
            **kwargs,
        )

    def judge(self, theta: Theta) -> dict:
        """The objective at ``theta`` against the optimum's: reached if within `tolerance`."""
        best = float(self.exact_objective(self.optimum()))
        got = float(self.exact_objective(theta))
        gap = (best - got) / abs(best) if self.maximize else (got - best) / abs(best)
        return {
            "theta": named_components(theta),
            "optimum": named_components(self.optimum()),
            "objective": got,
            "optimal_objective": best,
            "relative_gap": gap,
            "tolerance": self.tolerance,
            "reached": bool(gap <= self.tolerance),
        }
