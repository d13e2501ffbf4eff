"""Learned differentiable surrogates of non-differentiable components, with their error.

`fit` an equinox MLP to input–output samples of a component (least squares: for a noisy
component, its conditional mean), swap the `Surrogate` into the simulator, and `assess` its
error on values and gradients at held-out points against exact values or an unbiased
estimator. For a stochastic component whose *samples* feed the rest of a simulator,
`fit_flow` fits a conditional normalizing flow (flowjax) whose draws are differentiable in
the input, and `assess_flow` measures its error on expectations, their gradients and the
distribution. `save`/`load` use equinox serialisation (no pickle). See docs/surrogate.md.
"""

from ._files import load as load
from ._files import save as save
from ._fit import Assessment as Assessment
from ._fit import Surrogate as Surrogate
from ._fit import assess as assess
from ._fit import fit as fit
from ._flow import FlowAssessment as FlowAssessment
from ._flow import FlowSurrogate as FlowSurrogate
from ._flow import assess_flow as assess_flow
from ._flow import fit_flow as fit_flow

__all__ = [
    "Assessment",
    "FlowAssessment",
    "FlowSurrogate",
    "Surrogate",
    "assess",
    "assess_flow",
    "fit",
    "fit_flow",
    "load",
    "save",
]
