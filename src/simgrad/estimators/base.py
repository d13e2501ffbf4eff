"""The estimator contract: turn a simulator and one key into one sample of (value, gradient)."""

import abc

import equinox as eqx

from .._types import Key, Scalar, Simulator, Theta


class AbstractEstimator(eqx.Module):
    """A gradient estimator: a small immutable strategy object passed to `sg.gradient`.

    An estimator has one job, `sample`: given the simulator, the parameters and *one* key,
    return one replicate of the simulator's value and one estimate of
    ``∇θ E_key[sim(θ, key)]``. `sg.gradient` vmaps it over keys, averages, and attaches
    standard errors; an estimator never loops over samples itself.

    Hyperparameters are static fields, validated in ``__check_init__``.
    """

    @abc.abstractmethod
    def sample(self, sim: Simulator, theta: Theta, key: Key) -> tuple[Scalar, Theta]:
        """One replicate: ``(value, gradient)``, the gradient with ``theta``'s structure."""

    @abc.abstractmethod
    def evals_per_sample(self, n_params: int) -> int:
        """Simulator evaluations one sample costs for ``n_params`` scalar parameters."""
