"""simgrad: gradients of simulations — deterministic, stochastic, discrete, discontinuous.

>>> import jax, simgrad as sg
>>> est = sg.gradient(sg.models.EuropeanCall(), {"S0": 100.0, "sigma": 0.2},
...                   jax.random.key(0), method=sg.Pathwise(), n_samples=10_000)

The public names below are loaded on first use (PEP 562), so that ``import simgrad`` and
the ``simgrad`` command start without importing JAX, diffrax, scipy or matplotlib.
To export a new name, add one line to ``_EXPORTS`` (name -> the module that defines it),
the same import under ``TYPE_CHECKING`` (for type checkers and IDEs), and a
``::: simgrad.NAME`` line in docs/api/index.md (tests/test_site.py checks all three agree).
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Subpackages, public as `sg.NAME`.
_SUBPACKAGES = ("adjoint", "estimators", "models", "random", "reference", "relax", "surrogate")

# Public name -> the module that defines it (the attribute of the same name).
_EXPORTS: dict[str, str] = {
    # estimating gradients
    "BiasWarning": "simgrad._result",
    "Estimate": "simgrad._result",
    "SimulationError": "simgrad._result",
    "gradient": "simgrad._estimate",
    "Expectation": "simgrad._expectation",
    "expectation": "simgrad._expectation",
    "simulation_errors": "simgrad._result",
    "BlackBox": "simgrad._blackbox",
    # estimators
    "AbstractEstimator": "simgrad.estimators",
    "Auto": "simgrad.estimators",
    "FiniteDifference": "simgrad.estimators",
    "GaussianSmoothing": "simgrad.estimators",
    "Enumerate": "simgrad.estimators",
    "Hybrid": "simgrad.estimators",
    "MeasureValued": "simgrad.estimators",
    "Pathwise": "simgrad.estimators",
    "SPSA": "simgrad.estimators",
    "ScoreFunction": "simgrad.estimators",
    "StochasticTriples": "simgrad.estimators",
    # optimising
    "OptimizeHistory": "simgrad._optimize",
    "OptimizeResult": "simgrad._optimize",
    "optimize": "simgrad._optimize",
    "CheckpointError": "simgrad._src.runs",
    # checking
    "Cluster": "simgrad._check",
    "DotProductResult": "simgrad._check",
    "Finding": "simgrad._check",
    "KINDS": "simgrad._check",
    "OneSided": "simgrad._check",
    "Report": "simgrad._check",
    "TaylorResult": "simgrad._check",
    "check": "simgrad._check",
    "dot_product_test": "simgrad._check",
    "fd_hazards": "simgrad._check",
    "one_sided": "simgrad._check",
    "taylor_test": "simgrad._check",
    # smoothing
    "SweepResult": "simgrad.relax._sweep",
    "smooth": "simgrad.relax._smooth",
    "smooth_sweep": "simgrad.relax._sweep",
}

# Computed, which pyright cannot read: it takes the names from the `X as X` imports below.
__all__ = sorted([*_SUBPACKAGES, *_EXPORTS])  # pyright: ignore[reportUnsupportedDunderAll]

if TYPE_CHECKING:  # the same names, eagerly, for type checkers, IDEs and the API reference
    from . import adjoint as adjoint
    from . import estimators as estimators
    from . import models as models
    from . import random as random
    from . import reference as reference
    from . import relax as relax
    from . import surrogate as surrogate
    from ._blackbox import BlackBox as BlackBox
    from ._check import KINDS as KINDS
    from ._check import Cluster as Cluster
    from ._check import DotProductResult as DotProductResult
    from ._check import Finding as Finding
    from ._check import OneSided as OneSided
    from ._check import Report as Report
    from ._check import TaylorResult as TaylorResult
    from ._check import check as check
    from ._check import dot_product_test as dot_product_test
    from ._check import fd_hazards as fd_hazards
    from ._check import one_sided as one_sided
    from ._check import taylor_test as taylor_test
    from ._estimate import gradient as gradient
    from ._expectation import Expectation as Expectation
    from ._expectation import expectation as expectation
    from ._optimize import OptimizeHistory as OptimizeHistory
    from ._optimize import OptimizeResult as OptimizeResult
    from ._optimize import optimize as optimize
    from ._result import BiasWarning as BiasWarning
    from ._result import Estimate as Estimate
    from ._result import SimulationError as SimulationError
    from ._result import simulation_errors as simulation_errors
    from ._src.runs import CheckpointError as CheckpointError
    from .estimators import SPSA as SPSA
    from .estimators import AbstractEstimator as AbstractEstimator
    from .estimators import Auto as Auto
    from .estimators import Enumerate as Enumerate
    from .estimators import FiniteDifference as FiniteDifference
    from .estimators import GaussianSmoothing as GaussianSmoothing
    from .estimators import Hybrid as Hybrid
    from .estimators import MeasureValued as MeasureValued
    from .estimators import Pathwise as Pathwise
    from .estimators import ScoreFunction as ScoreFunction
    from .estimators import StochasticTriples as StochasticTriples
    from .relax._smooth import smooth as smooth
    from .relax._sweep import SweepResult as SweepResult
    from .relax._sweep import smooth_sweep as smooth_sweep


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
