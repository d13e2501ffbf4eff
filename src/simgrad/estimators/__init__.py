"""Gradient estimators: one file each, one registry (`ESTIMATORS`) the contract tests use."""

from .base import AbstractEstimator as AbstractEstimator
from .base import AbstractPerSampleEstimator as AbstractPerSampleEstimator
from .base import map_samples as map_samples
from .finite_difference import FiniteDifference as FiniteDifference
from .pathwise import Pathwise as Pathwise

# Every estimator joins this registry; tests/estimators/test_contract.py holds each entry to
# the same checks (unbiasedness on exact cases, dtypes, pytree theta, no recompilation).
ESTIMATORS: dict[str, AbstractEstimator] = {
    "pathwise-reverse": Pathwise(mode="reverse"),
    "pathwise-forward": Pathwise(mode="forward"),
    "fd-central-crn": FiniteDifference(scheme="central", crn=True),
    "fd-forward-crn": FiniteDifference(scheme="forward", crn=True),
    "fd-central-independent": FiniteDifference(scheme="central", crn=False),
}
