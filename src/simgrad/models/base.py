"""The gallery contract: a simulator with its default parameters and its exact answers."""

import abc

import equinox as eqx

from .._types import Key, Scalar, Theta


class AbstractModel(eqx.Module):
    """A gallery simulator: ``model(theta, key) -> scalar`` with known answers.

    ``exact_value`` and ``exact_grad`` return ``None`` where no closed form exists (or the
    gradient does not exist); ``n_samples`` is the sample size the demo uses and ``summary``
    one plain-text line that the command line prints.
    """

    name: eqx.AbstractClassVar[str]
    summary: eqx.AbstractClassVar[str]  # one plain-text line for the terminal
    stochastic: eqx.AbstractClassVar[bool]
    n_samples: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def __call__(self, theta: Theta, key: Key) -> Scalar:
        """One replicate of the simulation."""

    @abc.abstractmethod
    def default_theta(self) -> Theta:
        """The parameters the demo and the docs use."""

    @abc.abstractmethod
    def exact_value(self, theta: Theta) -> float | None:
        """``E[model(theta, key)]`` in closed form, or None."""

    @abc.abstractmethod
    def exact_grad(self, theta: Theta) -> Theta | None:
        """``∇θ E[model(theta, key)]`` in closed form, or None where unknown or undefined."""
