"""The gallery: simulators with exact answers where they exist.

Each model is a callable ``model(theta, key) -> scalar`` with ``default_theta()``,
``exact_value(theta)`` and ``exact_grad(theta)``. `GALLERY` maps names to instances; the
demo runs every applicable estimator on each.
"""

from . import applications as applications
from .bandit import Bandit as Bandit
from .base import AbstractModel as AbstractModel
from .choice import DiscreteChoice as DiscreteChoice
from .digital import DigitalCall as DigitalCall
from .digital import digital_call as digital_call
from .discrete import BirthDeath as BirthDeath
from .discrete import StateDependentWalk as StateDependentWalk
from .finance import AsianCall as AsianCall
from .finance import EuropeanCall as EuropeanCall
from .finance import black_scholes_call as black_scholes_call
from .physics import CutAndCount as CutAndCount
from .physics import asimov_significance as asimov_significance
from .queues import MM1Queue as MM1Queue
from .queues import mm1_wait as mm1_wait
from .simpy_queue import MM1SimPy as MM1SimPy
from .textbook import EulerDecay as EulerDecay
from .textbook import Kink as Kink
from .toys import BernoulliToy as BernoulliToy
from .toys import PoissonToy as PoissonToy
from .toys import RandomWalk as RandomWalk

__all__ = [
    "AbstractModel",
    "AsianCall",
    "Bandit",
    "BernoulliToy",
    "BirthDeath",
    "CutAndCount",
    "DigitalCall",
    "DiscreteChoice",
    "EulerDecay",
    "EuropeanCall",
    "GALLERY",
    "Kink",
    "MM1Queue",
    "MM1SimPy",
    "PoissonToy",
    "RandomWalk",
    "StateDependentWalk",
    "applications",
    "asimov_significance",
    "black_scholes_call",
    "digital_call",
    "mm1_wait",
]

GALLERY: dict[str, AbstractModel] = {
    model.name: model
    for model in (
        EulerDecay(),
        Kink(),
        EuropeanCall(),
        AsianCall(),
        DigitalCall(),
        MM1Queue(),
        PoissonToy(),
        BernoulliToy(),
        RandomWalk(),
        Bandit(),
    )
}
"""Name -> model: the gallery the demo runs every applicable estimator on."""
