"""Gradient estimators: one file each, one registry (`ESTIMATORS`) the contract tests use."""

from .auto import Auto as Auto
from .base import AbstractEstimator as AbstractEstimator
from .base import AbstractPerSampleEstimator as AbstractPerSampleEstimator
from .base import Samples as Samples
from .enumerate import Enumerate as Enumerate
from .finite_difference import FiniteDifference as FiniteDifference
from .gaussian_smoothing import GaussianSmoothing as GaussianSmoothing
from .hybrid import Hybrid as Hybrid
from .measure_valued import MeasureValued as MeasureValued
from .pathwise import Pathwise as Pathwise
from .score_function import AbstractScoreEstimator as AbstractScoreEstimator
from .score_function import ScoreFunction as ScoreFunction
from .spsa import SPSA as SPSA
from .stochastic_triples import StochasticTriples as StochasticTriples

__all__ = [
    "AbstractEstimator",
    "AbstractPerSampleEstimator",
    "AbstractScoreEstimator",
    "Auto",
    "Enumerate",
    "FiniteDifference",
    "GaussianSmoothing",
    "Hybrid",
    "MeasureValued",
    "Pathwise",
    "SPSA",
    "Samples",
    "ScoreFunction",
    "StochasticTriples",
]

# Every estimator joins this registry; tests/estimators/test_contract.py holds each entry to
# the same checks (unbiasedness on exact cases, dtypes, pytree theta, no recompilation).
ESTIMATORS: dict[str, AbstractEstimator] = {
    "pathwise-reverse": Pathwise(mode="reverse"),
    "pathwise-forward": Pathwise(mode="forward"),
    "fd-central-crn": FiniteDifference(scheme="central", crn=True),
    "fd-forward-crn": FiniteDifference(scheme="forward", crn=True),
    "fd-central-independent": FiniteDifference(scheme="central", crn=False),
    # Random directions: two runs per sample whatever the dimension (black boxes).
    "spsa": SPSA(),
    "gaussian-smoothing": GaussianSmoothing(sigma=1e-3),
    # Score-function estimators see only draws made through simgrad.random; ScoreFunction
    # refuses simulators without them (its class var ``needs_draw_sites`` is True).
    "score-vanilla": ScoreFunction(baseline=None),
    "score-loo": ScoreFunction(baseline="loo"),
    "score-cv": ScoreFunction(baseline="cv"),
    "hybrid": Hybrid(),
    "stochastic-triples": StochasticTriples(),
    "measure-valued": MeasureValued(),
    # Exact sums over small discrete draws; without them, the rest (pathwise) alone.
    "enumerate": Enumerate(),
}

# One of each estimator as a user first calls it: the claims `sg.check`'s report lists
# (`Report.claims`). GaussianSmoothing needs its σ, and its claim is "approximate" anyway.
CLAIMANTS: tuple[AbstractEstimator, ...] = (
    Pathwise(),
    ScoreFunction(),
    Hybrid(),
    StochasticTriples(),
    MeasureValued(),
    Enumerate(),
    FiniteDifference(),
    SPSA(),
)
