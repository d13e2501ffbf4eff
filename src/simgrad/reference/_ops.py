r"""The derivative rules both modes share, and an operation counter.

Every elementary operation is one `Rule`: how to compute its value, and its local partial
derivatives $\partial\,\mathrm{out} / \partial\,\mathrm{arg}_i$ as functions of the
output and the arguments. Forward mode (`Dual`) combines them as
$\dot{\mathrm{out}} = \sum_i \partial_i\,\dot{\mathrm{arg}}_i$; reverse mode (`Tape`)
as $\bar{\mathrm{arg}}_i \mathrel{+}= \partial_i\,\overline{\mathrm{out}}$. One table, two
sweeps: this is the whole of automatic differentiation.

The cost model counts arithmetic on scalars (an array counts once per element): evaluating
an elementary operation costs 1; forming a partial costs ``cost[i]`` (``exp``'s partial is
its output, free; ``sin``'s is ``cos x``, 1); applying a partial costs one multiply unless
it is ``unit`` (``±1`` or a 0/1 selection), and combining two terms costs one add.
"""

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rule:
    """One elementary operation: its value and its local partial derivatives."""

    name: str
    value: Callable[..., Any]
    partials: tuple[Callable[..., Any] | None, ...]  # (out, *args) -> d out / d arg_i
    maths: str
    cost: tuple[int, ...]
    unit: tuple[bool, ...]


def _min_partial(x, y):
    # Ties split the derivative evenly between both arguments, as JAX does.
    return np.where(x < y, 1.0, np.where(x == y, 0.5, 0.0))


_RULES = (
    Rule("add", np.add, (lambda o, x, y: 1.0, lambda o, x, y: 1.0),
         "d(x + y) = dx + dy", (0, 0), (True, True)),
    Rule("subtract", np.subtract, (lambda o, x, y: 1.0, lambda o, x, y: -1.0),
         "d(x - y) = dx - dy", (0, 0), (True, True)),
    Rule("multiply", np.multiply, (lambda o, x, y: y, lambda o, x, y: x),
         "d(x·y) = y·dx + x·dy", (0, 0), (False, False)),
    Rule("divide", np.divide, (lambda o, x, y: 1.0 / y, lambda o, x, y: -o / y),
         "d(x/y) = dx/y - (x/y)·dy/y", (1, 1), (False, False)),
    Rule("negative", np.negative, (lambda o, x: -1.0,), "d(-x) = -dx", (0,), (True,)),
    Rule("power", np.power,
         (lambda o, x, y: y * x ** (y - 1.0), lambda o, x, y: o * np.log(x)),
         "d(x^y) = y·x^(y-1)·dx + x^y·log(x)·dy", (2, 2), (False, False)),
    Rule("sin", np.sin, (lambda o, x: np.cos(x),), "d sin x = cos x·dx", (1,), (False,)),
    Rule("cos", np.cos, (lambda o, x: -np.sin(x),), "d cos x = -sin x·dx", (1,), (False,)),
    Rule("tan", np.tan, (lambda o, x: 1.0 + o * o,), "d tan x = (1 + tan²x)·dx", (2,), (False,)),
    Rule("exp", np.exp, (lambda o, x: o,), "d exp x = exp x·dx", (0,), (False,)),
    Rule("log", np.log, (lambda o, x: 1.0 / x,), "d log x = dx/x", (1,), (False,)),
    Rule("sqrt", np.sqrt, (lambda o, x: 0.5 / o,), "d √x = dx/(2√x)", (1,), (False,)),
    Rule("tanh", np.tanh, (lambda o, x: 1.0 - o * o,), "d tanh x = (1 - tanh²x)·dx", (2,),
         (False,)),
    Rule("absolute", np.absolute, (lambda o, x: np.where(x >= 0, 1.0, -1.0),),
         "d|x| = sign(x)·dx (1 at 0, as JAX)", (1,), (True,)),
    Rule("minimum", np.minimum,
         (lambda o, x, y: _min_partial(x, y), lambda o, x, y: _min_partial(y, x)),
         "d min(x, y) = dx if x < y else dy (half each at a tie, as JAX)", (1, 0),
         (False, False)),
    Rule("maximum", np.maximum,
         (lambda o, x, y: _min_partial(y, x), lambda o, x, y: _min_partial(x, y)),
         "d max(x, y) = dx if x > y else dy (half each at a tie, as JAX)", (1, 0),
         (False, False)),
    Rule("sum", np.sum, (lambda o, x: np.ones(np.shape(x)),),
         "d Σ x = Σ dx (all elements)", (0,), (True,)),
    Rule("where", np.where,
         (None, lambda o, c, x, y: np.where(c, 1.0, 0.0), lambda o, c, x, y: np.where(c, 0.0, 1.0)),
         "d where(c, x, y) = where(c, dx, dy); the condition c is not differentiated", (0, 0, 0),
         (True, True, True)),
)  # fmt: skip
RULES: dict[str, Rule] = {rule.name: rule for rule in _RULES}
SUPPORTED: tuple[str, ...] = tuple(RULES)
"""The numpy functions with a derivative rule, by name: those `Dual` and `Tape` accept."""

_COMPARISONS = {
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
}


@dataclasses.dataclass
class OpCount:
    """Arithmetic counted by `count_ops`, in the units of the module's cost model.

    ``primal``: elementary operations evaluated (the function itself). ``tangent``: the
    derivative arithmetic of forward mode. ``partials``: local partials formed while a
    `Tape` records. ``backward``: the arithmetic of backward sweeps.
    """

    primal: int = 0
    tangent: int = 0
    partials: int = 0
    backward: int = 0


_COUNTER: ContextVar[OpCount | None] = ContextVar("simgrad_reference_counter", default=None)


@contextlib.contextmanager
def count_ops() -> Iterator[OpCount]:
    """Count the arithmetic that `Dual` and `Tape` do inside the ``with`` block.

    >>> from simgrad.reference import Dual, count_ops
    >>> with count_ops() as n:
    ...     y = Dual(3.0, 1.0) * Dual(2.0, 0.0) + 1.0
    >>> (n.primal, n.tangent)  # two operations; u'v + uv' is 2 multiplies and 1 add
    (2, 3)
    """
    counter = OpCount()
    token = _COUNTER.set(counter)
    try:
        yield counter
    finally:
        _COUNTER.reset(token)


def tally(field: str, amount: int) -> None:
    counter = _COUNTER.get()
    if counter is not None:
        setattr(counter, field, getattr(counter, field) + int(amount))


def as_real(x: Any, what: str) -> float | np.ndarray:
    """``x`` as a float (0-d) or a float64 array; a clear `TypeError` for anything else."""
    if isinstance(x, list | tuple):
        x = np.asarray(x)
    if isinstance(x, bool | np.bool_) or (
        not isinstance(x, int | float | np.integer | np.floating | np.ndarray)
    ):
        raise TypeError(
            f"{what} must be a real number or a numpy array of reals, got "
            f"{type(x).__name__}; pass a float or np.asarray(..., dtype=float)."
        )
    if isinstance(x, np.ndarray) and x.dtype.kind not in "iuf":
        raise TypeError(
            f"{what} must hold real numbers, got a numpy array of dtype {x.dtype}; "
            "convert it with np.asarray(..., dtype=float)."
        )
    if np.ndim(x) == 0:
        return float(x)
    return np.asarray(x, dtype=np.float64)


def clean(x: Any) -> float | np.ndarray:
    """A numpy result as a float (0-d) or an array."""
    return float(x) if np.ndim(x) == 0 else np.asarray(x, dtype=np.float64)


def unsupported(engine: str, what: str) -> TypeError:
    return TypeError(
        f"{what} is not supported by the reference engine ({engine}): it has no derivative "
        f"rule here, so it is refused rather than differentiated wrongly. Rewrite it with: "
        f"{', '.join(SUPPORTED)} (np.sum without axis), + - * / ** and comparisons."
    )


def value_of(x: Any) -> Any:
    return x.value if isinstance(x, Operand) else x


class Operand(abc.ABC):
    """Python operators, numpy ufuncs and ``np.where``, all routed to one ``_apply``.

    A subclass (`Dual`, `Var`) only says what applying a `Rule` means in its mode.
    Comparisons compare values (a branch is taken, not differentiated). Anything without a
    rule raises a `TypeError` naming it instead of returning a wrong derivative.
    """

    __slots__ = ()
    _engine: ClassVar[str]
    value: Any

    @classmethod
    @abc.abstractmethod
    def _apply(cls, rule: Rule, args: tuple[Any, ...]) -> "Operand":
        """Apply ``rule`` to ``args`` (instances of ``cls``, floats or arrays)."""

    @classmethod
    def _op(cls, name: str, *args: Any) -> Any:
        rule = RULES[name]
        for arg, partial in zip(args, rule.partials, strict=True):
            if partial is None or isinstance(arg, cls | float):
                continue
            if isinstance(arg, Operand) or not isinstance(
                arg, int | float | np.integer | np.floating | np.ndarray
            ):
                return NotImplemented
            as_real(arg, f"an operand of {name}")
        return cls._apply(rule, args)

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.value)

    @property
    def ndim(self) -> int:
        return np.ndim(self.value)

    def __add__(self, other):
        return self._op("add", self, other)

    def __radd__(self, other):
        return self._op("add", other, self)

    def __sub__(self, other):
        return self._op("subtract", self, other)

    def __rsub__(self, other):
        return self._op("subtract", other, self)

    def __mul__(self, other):
        return self._op("multiply", self, other)

    def __rmul__(self, other):
        return self._op("multiply", other, self)

    def __truediv__(self, other):
        return self._op("divide", self, other)

    def __rtruediv__(self, other):
        return self._op("divide", other, self)

    def __pow__(self, other):
        return self._op("power", self, other)

    def __rpow__(self, other):
        return self._op("power", other, self)

    def __neg__(self):
        return self._op("negative", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self._op("absolute", self)

    def __lt__(self, other):
        return np.less(self.value, value_of(other))

    def __le__(self, other):
        return np.less_equal(self.value, value_of(other))

    def __gt__(self, other):
        return np.greater(self.value, value_of(other))

    def __ge__(self, other):
        return np.greater_equal(self.value, value_of(other))

    def __eq__(self, other):
        return np.equal(self.value, value_of(other))

    def __ne__(self, other):
        return np.not_equal(self.value, value_of(other))

    __hash__ = None  # type: ignore[assignment]

    def _refuse(self, what: str, fix: str) -> TypeError:
        return TypeError(f"{what} of a {self._engine} would drop its derivative; {fix}.")

    def __bool__(self):
        raise self._refuse("the truth value", "compare it instead, e.g. `x > 0`")

    def __float__(self):
        raise self._refuse("float()", "use `.value` if you mean the value alone")

    def __int__(self):
        raise self._refuse("int()", "use `.value` if you mean the value alone")

    def __array__(self, dtype=None, copy=None):
        raise self._refuse(
            "converting to a numpy array", "use numpy functions on it directly, or `.value`"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__
        if method != "__call__":
            raise unsupported(self._engine, f"numpy.{name}.{method}")
        if kwargs:
            raise TypeError(
                f"numpy.{name}: keyword arguments {sorted(kwargs)} are not supported by the "
                f"reference engine ({self._engine}); call it without them."
            )
        if name in _COMPARISONS:
            return _COMPARISONS[name](*(value_of(x) for x in inputs))
        if name == "positive":
            return inputs[0]
        if name not in RULES or name in ("where", "sum"):
            raise unsupported(self._engine, f"numpy.{name}")
        return self._call(name, inputs)

    def _call(self, name: str, inputs: tuple[Any, ...]) -> "Operand":
        result = type(self)._op(name, *inputs)
        if result is NotImplemented:
            kinds = ", ".join(type(x).__name__ for x in inputs)
            raise TypeError(
                f"numpy.{name} cannot combine ({kinds}) in the reference engine "
                f"({self._engine}); use one engine per computation, with floats or arrays."
            )
        return result

    def __array_function__(self, func, types, args, kwargs):
        if func is np.sum and len(args) == 1 and not kwargs:
            return self._call("sum", args)
        if func is not np.where:
            raise unsupported(self._engine, f"numpy.{func.__name__}")
        if kwargs or len(args) != 3:
            raise TypeError("np.where needs exactly three arguments here: where(cond, x, y).")
        cond = args[0]
        if isinstance(cond, Operand):
            raise TypeError(
                f"np.where's condition is a {type(cond).__name__}; pass a boolean, "
                "e.g. np.where(x > 0, x, 0.0)."
            )
        return self._call("where", (np.asarray(cond, dtype=bool), *args[1:]))
