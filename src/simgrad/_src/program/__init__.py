"""The program core: trace a simulator to a jaxpr and run it under an interpretation.

One small interpreter (`core.evaluate`) walks a jaxpr — recursing into nested `jit`,
`scan`, `while`, `cond`, `custom_jvp`, `custom_vjp` and `checkpoint` — and hands the
equations an `Interpretation` cares about to that interpretation, threading its state
through loops and branches. Everything in simgrad that must see inside a simulator is an
interpretation of this core, not a new walker:

* `LogProb` (here): accumulate ``log p(draw; θ)`` over every `simgrad.random` draw — the
  score-function and hybrid estimators.
* `triples.Triples`: run every value as (primal, tangent, alternative, tag) and perturb
  discrete draws — stochastic triples (`sg.StochasticTriples`).
* `simgrad._check` (`sg.check`): `dataflow` (which equations depend on θ and reach the
  output) and interpretations for one-sided derivatives, ties, NaN sources and eigenvalue gaps.
* `simgrad.relax`: `sg.smooth` replaces θ-dependent hard comparisons by soft ones.
* `valid.valid_draws`: NaN output when a draw's parameters were invalid — the engine's
  run-time check of traced parameters, without host callbacks.

What simgrad knows about each non-smooth primitive (kind, what AD returns, remedy,
one-sided rule, tie test, relaxation) is one table, `rules.py`; the interpretations look
rules up there.

Extension points: subclass `Interpretation` and override ``draw`` (random draws, seen as
`DrawSite` objects with their `Distribution` and parameter values), ``wants`` + ``apply``
(any other primitive) and/or ``scan``, ``while_loop``, ``cond`` (how values travel through
loops and branches); `AtSites` acts at chosen places. See docs/program-core.md. JAX
internals are confined to `_jax_compat.py`.
"""

from .core import AtSites as AtSites
from .core import Flow as Flow
from .core import Interpretation as Interpretation
from .core import changes_of_variables as changes_of_variables
from .core import contains_draw as contains_draw
from .core import current_site as current_site
from .core import dataflow as dataflow
from .core import descend as descend
from .core import draw_sites as draw_sites
from .core import evaluate as evaluate
from .core import find as find
from .core import output_depends_on as output_depends_on
from .core import trace as trace
from .logprob import LogProb as LogProb
from .sites import SITE_PREFIX as SITE_PREFIX
from .sites import Distribution as Distribution
from .sites import DrawSite as DrawSite
from .sites import draw_distribution as draw_distribution
from .sites import register as register
from .sites import site_distribution as site_distribution
from .taint import depends_on as depends_on
