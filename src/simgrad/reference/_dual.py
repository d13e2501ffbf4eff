r"""Forward mode: dual numbers.

A dual number carries a value and its derivative, $(u, \dot u)$, and every operation
applies the chain rule on the spot:

$$(u, \dot u) + (v, \dot v) = (u + v,\ \dot u + \dot v), \qquad
(u, \dot u)\cdot(v, \dot v) = (uv,\ \dot u v + u \dot v), \qquad
f\big((u, \dot u)\big) = \big(f(u),\ f'(u)\,\dot u\big).$$

Seed the input you differentiate with derivative 1 and the others with 0; one run then
gives the function's value and its directional derivative. A derivative with a leading
axis of length $k$ carries $k$ directions in one run (a Jacobian's $k$ columns).
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._ops import Operand, Rule, as_real, clean, tally


class Dual(Operand):
    r"""A dual number $(\mathrm{value}, \mathrm{deriv})$: forward-mode AD by operator overloading.

    ``value`` is a float or a numpy array; ``deriv`` has the value's shape (one direction)
    or a leading axis more, ``(k, *value.shape)`` (``k`` directions in one run). Python
    operators, the numpy ufuncs ``sin cos tan exp log sqrt tanh absolute power minimum
    maximum``, ``np.where`` and ``np.sum`` (of all elements) apply the chain rule; anything
    else raises `TypeError`.

    >>> import numpy as np
    >>> from simgrad.reference import Dual
    >>> p, y0, h = Dual(0.5, 1.0), Dual(2.0, 0.0), Dual(0.1, 0.0)  # seed p
    >>> y0 - h * p * y0**2  # y1 = y0 - h p y0^2, and dy1/dp = -h y0^2
    Dual(1.8, -0.4)
    >>> np.sin(Dual(0.0, 1.0))  # (sin u, cos u · u')
    Dual(0.0, 1.0)
    >>> x = Dual(np.array([1.0, 2.0]), np.eye(2))  # two directions: the identity seed
    >>> (x[0] * x[1]).deriv  # the gradient of x0·x1 in one pass
    array([2., 1.])

    Use it to see forward mode work and to cross-check JAX, not for speed: every
    operation is a Python call. For real work use `jax.jvp`.
    """

    __slots__ = ("value", "deriv")
    _engine = "Dual"

    def __init__(self, value: Any, deriv: Any = 0.0):
        if isinstance(value, Operand) or isinstance(deriv, Operand):
            raise TypeError(
                "Dual(value, deriv) takes floats or arrays, not a Dual or Var: nested "
                "(higher-order) dual numbers are not part of the reference engine."
            )
        v = as_real(value, "Dual value")
        d = as_real(deriv, "Dual deriv")
        vshape, dshape = np.shape(v), np.shape(d)
        if dshape == () and vshape != ():
            d = np.full(vshape, d)
        elif dshape != vshape and dshape[1:] != vshape:
            raise ValueError(
                f"Dual deriv has shape {dshape} but value has shape {vshape}; give deriv "
                f"the value's shape (one direction) or (k, *{vshape}) (k directions)."
            )
        self.value = v
        self.deriv = d

    @classmethod
    def _make(cls, value: Any, deriv: Any) -> "Dual":
        dual = object.__new__(cls)
        dual.value = clean(value)
        dual.deriv = clean(deriv)
        return dual

    @property
    def directions(self) -> tuple[int, ...]:
        """``()`` for one direction, ``(k,)`` for ``k`` directions carried together."""
        return np.shape(self.deriv)[: np.ndim(self.deriv) - np.ndim(self.value)]

    def _lifted(self, ndim: int) -> np.ndarray:
        """``deriv`` with axes inserted so it broadcasts against an ``ndim``-d result."""
        d = np.asarray(self.deriv)
        k = len(self.directions)
        return d.reshape(d.shape[:k] + (1,) * (ndim - self.ndim) + d.shape[k:])

    @classmethod
    def _apply(cls, rule: Rule, args: tuple[Any, ...]) -> "Dual":
        values = [value_of_dual(a) for a in args]
        if all(type(a.deriv if isinstance(a, Dual) else a) in (float, int) for a in args):
            return cls._apply_scalar(rule, args, values)  # the common case, made quick
        directions = {a.directions for a in args if isinstance(a, Dual)}
        if len(directions) > 1:
            raise ValueError(
                f"{rule.name} combines Duals carrying different numbers of directions "
                f"{sorted(directions)}; seed every input with the same leading axis k."
            )
        (dirs,) = directions
        k = dirs[0] if dirs else 1
        if rule.name == "sum":  # a reduction: sum the derivative over the value's axes
            (x,) = args
            axes = tuple(range(len(dirs), np.ndim(x.deriv)))
            tally("primal", max(np.size(x.value) - 1, 0))
            tally("tangent", k * max(np.size(x.value) - 1, 0))
            return cls._make(np.sum(x.value), np.sum(x.deriv, axis=axes))
        out = rule.value(*values)
        shape = np.shape(out)
        tangent = np.zeros(dirs + shape)
        flops, terms = 0, 0
        for i, (arg, partial) in enumerate(zip(args, rule.partials, strict=True)):
            if isinstance(arg, Dual) and partial is not None:  # None: not differentiated
                tangent = tangent + partial(out, *values) * arg._lifted(len(shape))
                flops += rule.cost[i] + (0 if rule.unit[i] else k)
                terms += 1
        size = int(np.size(out))
        tally("primal", size)
        tally("tangent", (flops + k * (terms - 1)) * size)
        return cls._make(out, tangent)

    @classmethod
    def _apply_scalar(cls, rule: Rule, args: tuple[Any, ...], values: list[float]) -> "Dual":
        """`_apply` for float values and one direction: the same rules, without arrays."""
        out = float(rule.value(*values))
        tangent, flops = 0.0, -1
        for i, (arg, partial) in enumerate(zip(args, rule.partials, strict=True)):
            if isinstance(arg, Dual) and partial is not None:  # None: not differentiated
                tangent += float(partial(out, *values)) * arg.deriv
                flops += rule.cost[i] + (0 if rule.unit[i] else 1) + 1
        tally("primal", 1)
        tally("tangent", flops)
        dual = object.__new__(cls)
        dual.value, dual.deriv = out, tangent
        return dual

    def __getitem__(self, index: Any) -> "Dual":
        if self.ndim == 0:
            raise TypeError("a scalar Dual cannot be indexed; index an array-valued Dual.")
        index = index if isinstance(index, tuple) else (index,)
        k = len(self.directions)
        return Dual._make(self.value[index], np.asarray(self.deriv)[(slice(None),) * k + index])

    def __repr__(self) -> str:
        return f"Dual({self.value!r}, {self.deriv!r})"


def value_of_dual(x: Any) -> Any:
    return x.value if isinstance(x, Dual) else x


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    r"""Forward mode in one pass: ``(f(*primals), J·tangents)``, like `jax.jvp`.

    Each primal is seeded as ``Dual(primal, tangent)``; a tangent may carry a leading axis
    of ``k`` directions. Returns the value and the derivative along the tangents (zeros if
    ``f`` ignores its inputs).

    >>> from simgrad.reference import jvp
    >>> jvp(lambda p, y0, h: y0 - h * p * y0**2, (0.5, 2.0, 0.1), (1.0, 0.0, 0.0))
    (1.8, -0.4)
    """
    if not callable(f):
        raise TypeError(f"jvp needs a callable f, got {type(f).__name__}.")
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp takes primals and tangents as tuples, e.g. jvp(f, (x,), (1.0,)).")
    if len(primals) != len(tangents):
        raise ValueError(
            f"jvp got {len(primals)} primals but {len(tangents)} tangents; give one "
            "tangent per primal."
        )
    out = f(*(Dual(p, t) for p, t in zip(primals, tangents, strict=True)))
    if isinstance(out, Dual):
        return out.value, out.deriv
    if isinstance(out, Operand):
        raise TypeError(f"f returned a {type(out).__name__}; jvp runs f on Duals only.")
    return clean(as_real(out, "f's output")), clean(np.zeros(np.shape(out)))
