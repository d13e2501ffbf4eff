"""``simgrad explain``: the textbook example, step by step, in both modes.

One forward-Euler step of $\\dot y = -p\\,y^2$, $y_1 = y_0 - h\\,p\\,y_0^2$, differentiated
for $p$. Every number printed comes from the engines (`Dual`, `Tape`) as they run; the
symbolic column is the textbook's.
"""

import math
from typing import Annotated, NamedTuple

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ._dual import Dual
from ._tape import Tape

explain_app = typer.Typer(
    help="Watch automatic differentiation work: the textbook example, step by step.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_P = Annotated[float, typer.Option("--p", help="The parameter p (differentiated for).")]
_Y0 = Annotated[float, typer.Option("--y0", help="The initial value y0.")]
_H = Annotated[float, typer.Option("--h", help="The step size h.")]


def fmt(x: float | np.ndarray) -> str:
    """A number (a float or a 0-d array) as printed: 10 significant digits, no negative zero."""
    return f"{x + 0.0:.10g}"


def _pair(d: Dual) -> str:
    return f"({fmt(d.value)}, {fmt(d.deriv)})"


class Step(NamedTuple):
    """One forward-mode step: what it computes, the rule in symbols, in numbers, the result."""

    computes: str
    symbolic: str
    numeric: str
    result: Dual


def _check(p: float, y0: float, h: float) -> None:
    for name, x in (("--p", p), ("--y0", y0), ("--h", h)):
        if not math.isfinite(x):
            raise typer.BadParameter(f"{name} must be a finite number, got {x}.", param_hint=name)


def forward_steps(p: float, y0: float, h: float) -> tuple[dict[str, Dual], list[Step]]:
    """Seed ``(p, 1)``, ``(y0, 0)``, ``(h, 0)`` and run ``y1 = y0 - h·p·y0²`` on `Dual`\\ s.

    >>> seeds, steps = forward_steps(0.5, 2.0, 0.1)
    >>> [s.numeric for s in steps][-1]
    '(2, 0) + (-0.2, -0.4) = (1.8, -0.4)'
    """
    seeds = {"p": Dual(p, 1.0), "y0": Dual(y0, 0.0), "h": Dual(h, 0.0)}
    P, Y0, H = seeds["p"], seeds["y0"], seeds["h"]
    y0sq = Y0 * Y0
    py0sq = P * y0sq
    minus = -py0sq  # negation: -(u, u') = (-u, -u')
    hpy0sq = H * minus
    y1 = Y0 + hpy0sq
    steps = [
        Step("y0²", "(y0,0)·(y0,0) = (y0², 0)",
             f"{_pair(Y0)}·{_pair(Y0)} = {_pair(y0sq)}", y0sq),
        Step("p·y0²", "(p,1)·(y0²,0) = (p·y0², y0²)",
             f"{_pair(P)}·{_pair(y0sq)} = {_pair(py0sq)}", py0sq),
        Step("-h·p·y0²", "(h,0)·(-p·y0², -y0²) = (-h·p·y0², -h·y0²)",
             f"{_pair(H)}·{_pair(minus)} = {_pair(hpy0sq)}", hpy0sq),
        Step("y1", "(y0,0) + (-h·p·y0², -h·y0²) = (y0 - h·p·y0², -h·y0²)",
             f"{_pair(Y0)} + {_pair(hpy0sq)} = {_pair(y1)}", y1),
    ]  # fmt: skip
    return seeds, steps


@explain_app.command()
def forward(p: _P = 0.5, y0: _Y0 = 2.0, h: _H = 0.1) -> None:
    """Forward mode with dual numbers: seed (p, 1) and carry (value, derivative) forward."""
    _check(p, y0, h)
    seeds, steps = forward_steps(p, y0, h)
    console = Console()
    console.print("Forward mode: y1 = y0 - h·p·y0², differentiated for p with dual numbers.")
    console.print("Rules: (u,u') + (v,v') = (u+v, u'+v');  (u,u')·(v,v') = (uv, u'v + uv').")
    table = Table(title="Seeds (value, derivative)", title_justify="left")
    table.add_column("input")
    table.add_column("seed")
    table.add_column("dual")
    for (name, dual), seed in zip(seeds.items(), ("1", "0", "0"), strict=True):
        table.add_row(name, f"({name}, {seed})", _pair(dual))
    console.print(table)
    table = Table(title="Steps (value, derivative)", title_justify="left")
    table.add_column("step")
    table.add_column("computes")
    table.add_column("rule, then in numbers")
    for i, step in enumerate(steps, start=1):
        table.add_row(f"({i})", step.computes, f"{step.symbolic}\n{step.numeric}")
    console.print(table)
    console.print("Step (3) multiplies by -(p·y0², y0²) = (-p·y0², -y0²): negation is free.")
    console.print(f"∂y1/∂p = -h·y0² = {fmt(steps[-1].result.deriv)}")
    console.print("One forward pass gives one directional derivative: n inputs need n passes.")


def _bar(name: str) -> str:
    return f"{name[0]}\u0304{name[1:]}"


_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "·", "divide": "/"}


def reverse_tape(p: float, y0: float, h: float):
    """Record ``y1 = y0 - h·p·y0²`` (as ``y0 + h·(-(p·(y0·y0)))``) on a `Tape`, and sweep it.

    Returns the tape, the output, the adjoints and the updates of the backward sweep.

    >>> tape, y1, adjoint, updates = reverse_tape(0.5, 2.0, 0.1)
    >>> [adjoint[v.index] for v in tape.inputs]
    [-0.4, 0.8, -2.0]
    """
    tape = Tape()
    P, Y0, H = tape.var(p, "p"), tape.var(y0, "y0"), tape.var(h, "h")
    y1 = Y0 + H * (-(P * (Y0 * Y0)))  # the same four steps as forward mode
    tape.names[y1.index] = "y1"
    adjoint, updates = tape.backward(y1)
    return tape, y1, adjoint, updates


@explain_app.command()
def reverse(p: _P = 0.5, y0: _Y0 = 2.0, h: _H = 0.1) -> None:
    """Reverse mode with a tape: record one run, then sweep it backwards for every input."""
    _check(p, y0, h)
    tape, y1, adjoint, updates = reverse_tape(p, y0, h)
    names = tape.names
    console = Console()
    console.print("Reverse mode: y1 = y0 - h·p·y0², recorded on a tape, swept backwards.")
    console.print("Backward rule: for v = φ(u, …), ū += ∂v/∂u · v̄, starting from ȳ1 = 1.")
    table = Table(title="Inputs", title_justify="left")
    table.add_column("input")
    table.add_column("value", justify="right")
    for var in tape.inputs:
        table.add_row(var.name, fmt(var.value))
    console.print(table)
    table = Table(title="Tape (forward run, recorded)", title_justify="left")
    table.add_column("entry")
    table.add_column("value", justify="right")
    table.add_column("local partials")
    for e in tape.entries:
        out = names[e.output]
        if e.op in _SYMBOLS:
            text = f"{out} = {e.args[0]} {_SYMBOLS[e.op]} {e.args[1]}"
        else:
            text = f"{out} = -{e.args[0]}" if e.op == "negative" else f"{out} = {e.op}{e.args}"
        partials = ", ".join(
            f"∂{out}/∂{names[i]} = {fmt(d)}" for i, d in zip(e.inputs, e.partials, strict=True)
        )
        table.add_row(text, fmt(tape.values[e.output]), partials)
    console.print(table)
    table = Table(title=f"Backward sweep (seed {_bar('y1')} = 1)", title_justify="left")
    table.add_column("update")
    table.add_column("= ∂·adjoint", justify="right")
    table.add_column("adjoint so far", justify="right")
    running: dict[int, float] = {}
    for u in updates:
        out, inp = names[u.entry.output], names[u.input]
        running[u.input] = running.get(u.input, 0.0) + u.contribution
        table.add_row(
            f"{_bar(inp)} += ∂{out}/∂{inp} · {_bar(out)}",
            f"{fmt(u.partial)} · {fmt(adjoint[u.entry.output])} = {fmt(u.contribution)}",
            f"{_bar(inp)} = {fmt(running[u.input])}",
        )
    console.print(table)
    grads = {v.name: adjoint[v.index] for v in tape.inputs}
    console.print(f"∂y1/∂p = -h·y0² = {fmt(grads['p'])}")
    console.print(f"∂y1/∂y0 = 1 - 2·h·p·y0 = {fmt(grads['y0'])}")
    console.print(f"∂y1/∂h = -p·y0² = {fmt(grads['h'])}")
    console.print(
        f"One backward pass gave all {len(grads)} derivatives; the tape held "
        f"{len(tape.entries)} operations and the sweep made {len(updates)} updates."
    )
