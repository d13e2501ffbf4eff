"""ODE and PDE gradients two ways — discretise-then-differentiate and the continuous adjoint —
and whether they agree (adjoint consistency)."""

from .._check._taylor import TaylorResult as TaylorResult
from .._check._taylor import taylor_test as taylor_test
from ._consistency import ConsistencyReport as ConsistencyReport
from ._consistency import consistency as consistency
from ._ode import FORWARD_MAX_PARAMETERS as FORWARD_MAX_PARAMETERS
from ._ode import FORWARD_MAX_STATES as FORWARD_MAX_STATES
from ._ode import ROBERTSON_RATES as ROBERTSON_RATES
from ._ode import STORE_ALL_BYTES as STORE_ALL_BYTES
from ._ode import ODEGradient as ODEGradient
from ._ode import ODEProblem as ODEProblem
from ._ode import ode_gradient as ode_gradient
from ._ode import robertson as robertson
from ._pde import AbstractPDEProblem as AbstractPDEProblem
from ._pde import AdvectionProblem as AdvectionProblem
from ._pde import DiffusivityFit as DiffusivityFit
from ._pde import HeatProblem as HeatProblem
from ._pde import fit_diffusivity as fit_diffusivity

__all__ = [
    "AbstractPDEProblem",
    "AdvectionProblem",
    "ConsistencyReport",
    "DiffusivityFit",
    "FORWARD_MAX_PARAMETERS",
    "FORWARD_MAX_STATES",
    "HeatProblem",
    "ODEGradient",
    "ODEProblem",
    "ROBERTSON_RATES",
    "STORE_ALL_BYTES",
    "TaylorResult",
    "consistency",
    "fit_diffusivity",
    "ode_gradient",
    "robertson",
    "taylor_test",
]
