"""The gallery contract: a simulator with its default parameters and its exact answers."""

import abc
from typing import TYPE_CHECKING

import equinox as eqx

from .._types import Key, Scalar, Theta

if TYPE_CHECKING:  # pyright takes only a local alias of ClassVar for one (pyright#4965)
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar


class AbstractModel(eqx.Module):
    """A gallery simulator: ``model(theta, key) -> scalar`` with known answers.

    ``exact_value`` and ``exact_grad`` return ``None`` where no closed form exists (or the
    gradient does not exist); ``n_samples`` is the sample size the demo uses and ``summary``
    one plain-text line that the command line prints.
    """

    name: AbstractClassVar[str]
    summary: AbstractClassVar[str]  # one plain-text line for the terminal
    stochastic: AbstractClassVar[bool]
    n_samples: AbstractClassVar[int]

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
