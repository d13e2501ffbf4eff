"""A readable reference AD: dual numbers (forward mode) and a tape (reverse mode).

A teaching engine in plain numpy, to watch automatic differentiation work and to
cross-check JAX with it; both modes share one table of derivative rules. ``simgrad explain
forward`` and ``simgrad explain reverse`` print the textbook example step by step.
"""

from ._dual import Dual as Dual
from ._dual import jvp as jvp
from ._ops import SUPPORTED as SUPPORTED
from ._ops import OpCount as OpCount
from ._ops import Rule as Rule
from ._ops import count_ops as count_ops
from ._tape import Entry as Entry
from ._tape import Tape as Tape
from ._tape import Update as Update
from ._tape import Var as Var
from ._tape import grad as grad

__all__ = [
    "Dual",
    "Entry",
    "OpCount",
    "Rule",
    "SUPPORTED",
    "Tape",
    "Update",
    "Var",
    "count_ops",
    "grad",
    "jvp",
]
