"""simgrad: gradients of simulations — deterministic, stochastic, discrete, discontinuous.

>>> import jax, simgrad as sg
>>> est = sg.gradient(sg.models.EuropeanCall(), {"S0": 100.0, "sigma": 0.2},
...                   jax.random.key(0), method=sg.Pathwise(), n_samples=10_000)
"""

from . import adjoint as adjoint
from . import estimators as estimators
from . import models as models
from . import random as random
from . import reference as reference
from . import relax as relax
from . import surrogate as surrogate
from ._blackbox import BlackBox as BlackBox
from ._estimate import Estimate as Estimate
from ._estimate import SimulationError as SimulationError
from ._estimate import gradient as gradient
from ._optimize import OptimizeHistory as OptimizeHistory
from ._optimize import OptimizeResult as OptimizeResult
from ._optimize import optimize as optimize
from .check import OneSided as OneSided
from .check import Report as Report
from .check import check as check
from .check import dot_product_test as dot_product_test
from .check import one_sided as one_sided
from .check import taylor_test as taylor_test
from .estimators import SPSA as SPSA
from .estimators import AbstractEstimator as AbstractEstimator
from .estimators import FiniteDifference as FiniteDifference
from .estimators import GaussianSmoothing as GaussianSmoothing
from .estimators import Hybrid as Hybrid
from .estimators import Pathwise as Pathwise
from .estimators import ScoreFunction as ScoreFunction
from .estimators import StochasticTriples as StochasticTriples
from .relax._smooth import SweepResult as SweepResult
from .relax._smooth import smooth as smooth
from .relax._smooth import smooth_sweep as smooth_sweep

__version__ = "0.1.0"
