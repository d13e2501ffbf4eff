"""The estimator contract: turn a simulator and a batch of keys into per-sample estimates."""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import Array

from .._types import Key, Scalar, Simulator, Theta


def own_key(key: Key) -> Key:
    """A key for an estimator's own draws (random directions), independent of the simulator's.

    The simulator keeps the sample's ``key`` itself, so its randomness is the same as under
    any other estimator (and a `sg.BlackBox` gets the same seed); the estimator draws from
    ``fold_in(key, 2**31 - 1)``, a key a simulator's own ``split`` or ``fold_in`` of small
    counts never produces.
    """
    return jax.random.fold_in(key, 2**31 - 1)


def map_samples(fn: Callable, keys: Key, batch_size: int | None):
    """Apply ``fn(key)`` to every key: one ``vmap``, or ``lax.map`` in chunks of ``batch_size``."""
    if batch_size is None:
        return jax.vmap(fn)(keys)
    return jax.lax.map(fn, keys, batch_size=batch_size)


class AbstractEstimator(eqx.Module):
    """A gradient estimator: a small immutable strategy object passed to `sg.gradient`.

    Its job, `sample_batch`: given the simulator, the parameters and ``n`` keys, return
    ``n`` replicates of the simulator's value and ``n`` single-sample estimates of
    ``∇θ E_key[sim(θ, key)]``. `sg.gradient` averages them and attaches standard errors.
    Most estimators treat samples independently: subclass `AbstractPerSampleEstimator` and
    write `sample` for one key. An estimator that couples samples (a batch baseline)
    implements `sample_batch` itself, using `map_samples` for the per-key work.

    Hyperparameters are static fields, validated in ``__check_init__``. Capabilities are
    class variables, declared, never probed:

    * ``evaluations_only``: the estimator needs nothing but evaluations of the simulator (no
      derivative, no view of its program), so it also runs `sg.BlackBox` simulators.
    * ``random_directions``: it draws random perturbation directions, so its estimate is
      random even for a deterministic simulator (SPSA, Gaussian smoothing).
    """

    evaluations_only: ClassVar[bool] = False
    random_directions: ClassVar[bool] = False

    @abc.abstractmethod
    def sample_batch(
        self, sim: Simulator, theta: Theta, keys: Key, batch_size: int | None
    ) -> tuple[Array, Theta]:
        """Per-sample values, shape ``(n,)``, and gradients, ``theta``'s leaves with a leading n."""

    @abc.abstractmethod
    def evals_per_sample(self, n_params: int) -> int:
        """Simulator evaluations one sample costs for ``n_params`` scalar parameters."""


class AbstractPerSampleEstimator(AbstractEstimator):
    """An estimator whose samples are independent: it only defines `sample` for one key."""

    @abc.abstractmethod
    def sample(self, sim: Simulator, theta: Theta, key: Key) -> tuple[Scalar, Theta]:
        """One replicate: ``(value, gradient)``, the gradient with ``theta``'s structure."""

    def sample_batch(self, sim, theta, keys, batch_size):
        return map_samples(lambda key: self.sample(sim, theta, key), keys, batch_size)
