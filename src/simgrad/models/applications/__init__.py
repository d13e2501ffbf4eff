"""The applications gallery: design and calibration problems for `sg.optimize`.

Each is an `AbstractApplication`: a simulator, the estimator that fits it, and an answer
computed independently. `simgrad optimize NAME` runs one from the command line.
"""

from .ai import LinearQuadraticPathwise as LinearQuadraticPathwise
from .ai import LinearQuadraticReinforce as LinearQuadraticReinforce
from .base import AbstractApplication as AbstractApplication
from .biology import ChainBinomialEpidemic as ChainBinomialEpidemic
from .engineering import TunedMassDamper as TunedMassDamper
from .filtering import GompertzParticleFilter as GompertzParticleFilter
from .filtering import RickerParticleFilter as RickerParticleFilter
from .filtering import grid_log_likelihood as grid_log_likelihood
from .filtering import kalman_log_likelihood as kalman_log_likelihood

__all__ = [
    "APPLICATIONS",
    "AbstractApplication",
    "ChainBinomialEpidemic",
    "GompertzParticleFilter",
    "LinearQuadraticPathwise",
    "LinearQuadraticReinforce",
    "RickerParticleFilter",
    "TunedMassDamper",
    "grid_log_likelihood",
    "kalman_log_likelihood",
]

APPLICATIONS: dict[str, AbstractApplication] = {
    app.name: app
    for app in (
        TunedMassDamper(),
        ChainBinomialEpidemic(),
        GompertzParticleFilter(),
        RickerParticleFilter(),
        LinearQuadraticReinforce(),
        LinearQuadraticPathwise(),
    )
}
"""Name -> application: ``simgrad optimize NAME`` runs one."""
