"""Learned differentiable surrogates of non-differentiable components, with their error.

`fit` an equinox MLP to input–output samples of a component (least squares: for a noisy
component, its conditional mean), swap the `Surrogate` into the simulator, and `assess` its
error on values and gradients at held-out points against exact values or an unbiased
estimator. `save`/`load` use equinox serialisation (no pickle). See docs/surrogate.md.
"""

from ._fit import Assessment as Assessment
from ._fit import Surrogate as Surrogate
from ._fit import assess as assess
from ._fit import fit as fit
from ._fit import load as load
from ._fit import save as save

__all__ = [
    "Assessment",
    "Surrogate",
    "assess",
    "fit",
    "load",
    "save",
]
