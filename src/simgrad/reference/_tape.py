r"""Reverse mode: a tape (Wengert list) and a backward sweep.

Running a function on `Var` inputs records every elementary operation
$v_j = \varphi_j(v_{i}, \dots)$ with its local partials $\partial v_j / \partial v_i$.
The backward sweep seeds the output's adjoint $\bar y = 1$ and visits the tape in reverse,

$$\bar v_i \mathrel{+}= \frac{\partial v_j}{\partial v_i}\,\bar v_j ,$$

so that $\bar x_i = \partial y / \partial x_i$ for *every* input after one pass. Its cost
is a small constant times the function's, whatever the number of inputs.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._ops import Operand, Rule, as_real, clean, tally


class Entry(NamedTuple):
    """One recorded operation: ``output = op(*args)`` with the partials for its Var inputs."""

    op: str
    output: int  # index of the result on the tape
    args: tuple[str, ...]  # names of Var arguments, or constants written out
    inputs: tuple[int, ...]  # indices of the Var arguments, in order
    partials: tuple[Any, ...]  # d output / d input, one per entry of ``inputs``
    unit: tuple[bool, ...]  # partial is ±1 or a 0/1 selection (applied without a multiply)


class Update(NamedTuple):
    """One step of the backward sweep: ``adjoint[input] += partial * adjoint[entry.output]``."""

    entry: Entry
    input: int
    partial: Any
    contribution: Any


class Var(Operand):
    """A value recorded on a `Tape`; create one with `Tape.var`.

    Supports the same operations as `Dual`: Python operators, the numpy ufuncs
    ``sin cos tan exp log sqrt tanh absolute power minimum maximum``, ``np.where`` and
    ``np.sum`` (of all elements).
    """

    __slots__ = ("value", "tape", "index")
    _engine = "Tape"

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError("create a Var with Tape().var(value), so that it is recorded on a tape.")

    @classmethod
    def _new(cls, value: Any, tape: "Tape", index: int) -> "Var":
        var = object.__new__(cls)
        var.value, var.tape, var.index = value, tape, index
        return var

    @property
    def name(self) -> str:
        return self.tape.names[self.index]

    @classmethod
    def _apply(cls, rule: Rule, args: tuple[Any, ...]) -> "Var":
        tapes = {id(a.tape): a.tape for a in args if isinstance(a, Var)}
        if len(tapes) > 1:
            raise ValueError(
                f"{rule.name} combines Vars from different tapes; record the whole "
                "computation on one Tape."
            )
        (tape,) = tapes.values()
        return tape._record(rule, args)

    def __getitem__(self, index: Any) -> "Var":
        raise TypeError(
            "indexing a Var is not supported by the reference engine (Tape); record each "
            "element as its own input with Tape.var."
        )

    def __repr__(self) -> str:
        return f"Var({self.name}={self.value!r})"


def _unbroadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` over the axes along which numpy broadcast an input of ``shape``."""
    x = np.asarray(x)
    x = x.sum(axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
    axes = tuple(a for a, n in enumerate(shape) if n == 1 and x.shape[a] != 1)
    return clean(np.broadcast_to(x.sum(axis=axes, keepdims=True), shape))


def _text(x: Any) -> str:
    if isinstance(x, Var):
        return x.name
    return f"{x:g}" if np.ndim(x) == 0 and not isinstance(x, np.ndarray) else f"{x!r}"


class Tape:
    r"""Reverse-mode AD: record one run, then sweep it backwards for the whole gradient.

    >>> from simgrad.reference import Tape
    >>> tape = Tape()
    >>> p, y0, h = tape.var(0.5, "p"), tape.var(2.0, "y0"), tape.var(0.1, "h")
    >>> y1 = y0 - h * p * y0**2
    >>> print(tape)
    v1 = multiply(h, p)
    v2 = power(y0, 2)
    v3 = multiply(v1, v2)
    v4 = subtract(y0, v3)
    >>> tape.gradient(y1)  # dy1/dp = -h y0², dy1/dy0 = 1 - 2 h p y0, dy1/dh = -p y0²
    [-0.4, 0.8, -2.0]

    Cost: recording stores one entry per operation (memory grows with the run); the sweep
    costs a small multiple of the run, independent of the number of inputs. Teaching and
    cross-checking only: for real work use `jax.grad`.
    """

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.names: list[str] = []
        self.entries: list[Entry] = []
        self.inputs: list[Var] = []

    def var(self, value: Any, name: str | None = None) -> Var:
        """Record an input ``value`` (a float or an array) and return its `Var`."""
        if isinstance(value, Operand):
            raise TypeError(
                f"Tape.var takes a float or an array, got a {type(value).__name__}; "
                "pass its .value to start a new input."
            )
        value = as_real(value, "Tape.var value")
        name = f"x{len(self.inputs)}" if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"Tape.var name must be a non-empty str, got {name!r}.")
        var = self._new_var(value, name)
        self.inputs.append(var)
        return var

    def _new_var(self, value: Any, name: str) -> Var:
        self.values.append(value)
        self.names.append(name)
        return Var._new(value, self, len(self.values) - 1)

    def _record(self, rule: Rule, args: tuple[Any, ...]) -> Var:
        values = [a.value if isinstance(a, Var) else a for a in args]
        out = clean(rule.value(*values))
        inputs, partials, unit, flops = [], [], [], 0
        for i, (arg, partial) in enumerate(zip(args, rule.partials, strict=True)):
            if isinstance(arg, Var) and partial is not None:  # None: not differentiated
                inputs.append(arg.index)
                partials.append(clean(partial(out, *values)))
                unit.append(rule.unit[i])
                flops += rule.cost[i]
        var = self._new_var(out, f"v{len(self.entries) + 1}")
        texts = tuple(_text(a) for a, p in zip(args, rule.partials, strict=True) if p is not None)
        self.entries.append(
            Entry(rule.name, var.index, texts, tuple(inputs), tuple(partials), tuple(unit))
        )
        size = int(np.size(out))
        tally("primal", size)
        tally("partials", flops * size)
        return var

    def _check(self, var: Any, what: str) -> Var:
        if not isinstance(var, Var):
            raise TypeError(
                f"{what} must be a Var recorded on this tape, got {type(var).__name__}"
                + ("; f did not use its inputs." if not isinstance(var, Operand) else ".")
            )
        if var.tape is not self:
            raise ValueError(f"{what} ({var.name}) was recorded on another tape.")
        return var

    def backward(self, output: Var) -> tuple[list[Any], list[Update]]:
        """The backward sweep from a scalar ``output``: every adjoint, and each update made.

        Adjoints are indexed like ``values`` (``0.0`` where ``output`` does not depend on it).
        """
        output = self._check(output, "Tape.backward's output")
        if np.ndim(output.value) != 0:
            raise ValueError(
                f"reverse mode here differentiates a scalar output, got shape "
                f"{np.shape(output.value)}; sum it or pick one element first."
            )
        adjoint: list[Any] = [None] * len(self.values)
        adjoint[output.index] = 1.0
        updates = []
        for entry in reversed(self.entries):
            bar = adjoint[entry.output]
            if bar is None:  # recorded after the output, or the output does not use it
                continue
            for i, partial, unit in zip(entry.inputs, entry.partials, entry.unit, strict=True):
                contribution = _unbroadcast(partial * bar, np.shape(self.values[i]))
                tally("backward", ((not unit) + (adjoint[i] is not None)) * np.size(bar))
                adjoint[i] = contribution if adjoint[i] is None else adjoint[i] + contribution
                updates.append(Update(entry, i, partial, contribution))
        zeros = [clean(np.zeros(np.shape(v))) for v in self.values]
        return [z if a is None else clean(a) for a, z in zip(adjoint, zeros, strict=True)], updates

    def gradient(self, output: Var, wrt: list[Var] | None = None) -> list[Any]:
        """``d output / d v`` for each ``v`` in ``wrt`` (default: every input), in one sweep."""
        wrt = self.inputs if wrt is None else wrt
        if not isinstance(wrt, list | tuple):
            raise TypeError(f"wrt must be a list of Vars, got {type(wrt).__name__}.")
        wrt = [self._check(v, "each entry of wrt") for v in wrt]
        adjoint, _ = self.backward(output)
        return [adjoint[v.index] for v in wrt]

    def __str__(self) -> str:
        return "\n".join(
            f"{self.names[e.output]} = {e.op}({', '.join(e.args)})" for e in self.entries
        )


def grad(f: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
    """Reverse mode: ``grad(f)(*args)`` is the gradient of scalar ``f`` for *all* arguments.

    Unlike `jax.grad` (first argument by default) it returns a tuple, one entry per argument,
    from one recorded run and one backward sweep.

    >>> from simgrad.reference import grad
    >>> grad(lambda p, y0, h: y0 - h * p * y0**2)(0.5, 2.0, 0.1)
    (-0.4, 0.8, -2.0)
    """
    if not callable(f):
        raise TypeError(f"grad needs a callable f, got {type(f).__name__}.")

    def grad_f(*args: Any) -> tuple[Any, ...]:
        if not args:
            raise TypeError("grad(f) needs at least one argument to differentiate.")
        tape = Tape()
        xs = [tape.var(a) for a in args]
        out = f(*xs)
        if not isinstance(out, Operand) and np.ndim(as_real(out, "f's output")) == 0:
            return tuple(clean(np.zeros(np.shape(x.value))) for x in xs)
        return tuple(tape.gradient(tape._check(out, "Tape.backward's output")))

    return grad_f
