"""The differentiability checker (private: every name below is public as ``sg.NAME``).

* `check(sim, theta, key)` → `Report`: every non-differentiable dependence on θ, with its
  source line, what AD returns and the remedy; kinks at θ; degenerate eigenvalues.
* `one_sided(f, theta, direction)`: exact one-sided directional derivatives at kinks.
* `fd_hazards(sim, theta, key)`: draws and jumps that make finite differences
  untrustworthy.
* `taylor_test(f, theta, grad)`: the remainder must shrink like ε²; `dot_product_test`
  for Jacobians.

See docs/check.md.
"""

from .._scan import Finding as Finding
from .._src.program.rules import KINDS as KINDS
from ._check import Report as Report
from ._check import check as check
from ._check import fd_hazards as fd_hazards
from ._eigen import Cluster as Cluster
from ._one_sided import OneSided as OneSided
from ._one_sided import one_sided as one_sided
from ._taylor import DotProductResult as DotProductResult
from ._taylor import TaylorResult as TaylorResult
from ._taylor import dot_product_test as dot_product_test
from ._taylor import taylor_test as taylor_test
