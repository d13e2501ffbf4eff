"""What `sg.check` checks: a JAX simulator, or an `sg.BlackBox` run as the JAX code that
calls it (read by the checker and its report alike)."""

from collections.abc import Callable


def simulator_of(sim) -> Callable:
    """``sim`` as the JAX code that runs it: an `sg.BlackBox` is one ``pure_callback``
    evaluating its ``fn`` in this process (with its timeout); a function is itself."""
    from .._blackbox import BlackBox, _Bound

    return _Bound(sim.fn, None, None, sim.timeout) if isinstance(sim, BlackBox) else sim


def black_box_fn(sim) -> Callable | None:
    """The ``fn`` of an `sg.BlackBox`; None for anything else."""
    from .._blackbox import BlackBox

    return sim.fn if isinstance(sim, BlackBox) else None
