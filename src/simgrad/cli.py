"""The `simgrad` command line.

This module imports neither JAX nor simgrad's numerics: ``simgrad --help`` starts in a
fraction of a second, and each command imports what it needs when it runs. Commands that
compile (demo, optimize, check) keep JAX's compiled programs in a persistent cache
(`cache_dir`), so that a second run skips XLA compilation; ``--no-cache`` or
``SIMGRAD_NO_CACHE=1`` turns it off.
"""

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table
from typer.core import TyperCommand

from .reference._explain import explain_app

app = typer.Typer(
    name="simgrad",
    help="Gradients of simulations — deterministic, stochastic, discrete, discontinuous.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(explain_app, name="explain")

_USE_CACHE = True


def cache_dir() -> Path:
    """Where the commands keep JAX's compiled programs: ``$SIMGRAD_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/simgrad/jax``, else ``~/.cache/simgrad/jax``."""
    if os.environ.get("SIMGRAD_CACHE_DIR"):
        return Path(os.environ["SIMGRAD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simgrad" / "jax"


def _setup_jax(x64: bool = True):
    """Import JAX for a command: float64 available (``x64``; False leaves JAX's setting as
    it is), and the persistent compilation cache unless off."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    if _caching():
        jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
        # Cache every program: the demo compiles ~80 small ones, each well under a second.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return jax


def _caching() -> bool:
    return _USE_CACHE and not os.environ.get("SIMGRAD_NO_CACHE")


def _kept_programs():
    """The demo's compiled programs kept whole beside JAX's cache (its models are simgrad's
    own code, so the programs' descriptions determine them): a second run neither traces
    nor lowers them. Off with the cache."""
    if not _caching():
        return contextlib.nullcontext()
    from ._src.executables import kept_in

    folder = cache_dir()
    return kept_in(folder.with_name(f"{folder.name}-programs"))


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"simgrad {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Do not keep compiled programs in the cache (also SIMGRAD_NO_CACHE=1); "
            "by default they go to $XDG_CACHE_HOME/simgrad/jax or ~/.cache/simgrad/jax.",
        ),
    ] = False,
) -> None:
    """simgrad: gradients of simulations, every estimator, each with its error bar."""
    global _USE_CACHE
    _USE_CACHE = not no_cache


def _require_matplotlib() -> None:
    """Refuse a command that plots at once, not after its run, when matplotlib is missing."""
    from ._src.plots import require_matplotlib

    try:
        require_matplotlib()
    except ImportError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(1) from None


class _Steps:
    """Progress of a run of known length on stderr: a live bar on a terminal; when stderr is
    piped or redirected, a plain line at most once a second (and at the end)."""

    def __init__(self, title: str, total: int, console: Console):
        self.title, self.total, self.console = title, total, console
        self.done, self.start, self.shown = 0, time.monotonic(), -math.inf
        self.live = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.live = Progress(
                TextColumn("[bold]{task.description:<32}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.task = self.live.add_task(title, total=total)

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            return self.live.__exit__(*exc)
        if exc[0] is None:
            self._line("done", force=True)
        return None

    def step(self, label: str) -> None:
        """A new step starts (the previous one finished)."""
        if self.live is not None:
            self.live.update(self.task, description=label, completed=self.done)
        else:
            self._line(label)
        self.done += 1

    def _line(self, label: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.shown >= 1.0:
            self.shown = now
            elapsed = now - self.start
            self.console.print(
                f"{self.title}: {self.done}/{self.total} {label} ({elapsed:.0f} s)",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def _verdicts(row) -> dict:
    """Each gradient component's verdict, as the table shows it: ``{"kind", "error"}``."""
    out = {}
    for name in row.grad:
        verdict = row.error(name)
        out[name] = None if verdict is None else {"kind": verdict[0], "error": verdict[1]}
    return out


@app.command()
def demo(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Gallery model(s) to run; default: all."),
    ] = None,
    estimator: Annotated[
        list[str] | None,
        typer.Option("--estimator", "-e", help="Estimator(s) to run; default: all that apply."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the PRNG key.")] = 0,
    scale: Annotated[
        float, typer.Option(help="Multiply every model's sample size by this.", min=1e-6)
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")
    ] = False,
) -> None:
    """Run every applicable estimator on every gallery model and compare with exact answers.

    Columns: the estimate of the value and gradient, the gradient's standard error, the
    simulator evaluations it cost, its run time (after compiling), and its error against
    the exact gradient — in standard errors for random models, absolute for deterministic.
    In --json, "verdict" holds the same per component: kind "exact" (absolute error),
    "sigma" (error in standard errors) or "biased" (off with zero spread).
    """
    if not math.isfinite(scale):
        raise typer.BadParameter(f"{scale}: give a finite number.", param_hint="--scale")
    _setup_jax()
    from ._demo import demo_plan, run_demo

    console = Console(stderr=as_json)
    if not console.is_terminal:
        console.width = max(console.width, 150)
    with _kept_programs():
        try:
            plan = demo_plan(model, estimator)
        except ValueError as e:
            hint = "--model" if "model" in str(e) else "--estimator"
            raise typer.BadParameter(str(e), param_hint=hint) from None
        with _Steps("simgrad demo", len(plan), Console(stderr=True)) as steps:
            rows = run_demo(
                model, estimator_names=estimator, seed=seed, scale=scale, on_step=steps.step,
                plan=plan,
            )  # fmt: skip

    if as_json:
        typer.echo(json.dumps([_row_dict(r) for r in rows], indent=2))
        return
    console.print(_demo_table(rows))
    _print_notes(console, list(dict.fromkeys(r.model for r in rows)))


class _ListsApplications(TyperCommand):
    """`simgrad optimize --help` lists the applications, read from the gallery itself."""

    def get_help(self, ctx):
        from .models.applications import APPLICATIONS

        listing = "\n\n".join(f"[bold]{n}[/bold]: {a.summary}" for n, a in APPLICATIONS.items())
        self.help = f"{self.help}\n\nApplications:\n\n{listing}"
        return super().get_help(ctx)


@app.command(cls=_ListsApplications)
def optimize(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="An application from the list below.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the PRNG key.")] = 0,
    plot: Annotated[
        str | None, typer.Option(help="Where to write the convergence plot; default NAME.png.")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Save the run here every 50 steps and on Ctrl-C.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in --checkpoint.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Optimise a gallery application and compare the result with its known answer."""
    if resume and checkpoint is None:
        raise typer.BadParameter("--resume needs --checkpoint PATH.", param_hint="--resume")
    _require_matplotlib()
    from ._src.runs import CheckpointError, check_output_path

    if checkpoint is not None:
        try:  # refused before the run, not at the first save
            check_output_path(checkpoint, "--checkpoint")
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--checkpoint") from None
    jax = _setup_jax()
    from .models.applications import APPLICATIONS

    if name not in APPLICATIONS:
        raise typer.BadParameter(
            f"unknown application {name!r}; choose from {sorted(APPLICATIONS)}.",
            param_hint="NAME",
        )
    application = APPLICATIONS[name]
    console = Console(stderr=as_json)
    console.print(f"[bold]{name}[/bold]: {application.summary}")
    try:  # a foreign or corrupted checkpoint on --resume
        result = application.run(
            jax.random.key(seed), progress=True, checkpoint=checkpoint, resume=resume
        )
    except CheckpointError as error:
        raise typer.BadParameter(str(error), param_hint="--checkpoint") from None
    verdict = application.judge(result.theta)
    plot_path = plot or f"{name}.png"
    result.plot(path=plot_path, exact=application.optimum(), title=name)
    if as_json:
        typer.echo(json.dumps(verdict | {"plot": plot_path}, indent=2))
        return
    table = Table(title=f"{name}: {result.n_steps} steps, {result.method}", title_justify="left")
    for col in ("parameter", "found", "known optimum"):
        table.add_column(col, justify="right" if col != "parameter" else "left")
    for key, value in verdict["theta"].items():
        table.add_row(key, _fmt(value), _fmt(verdict["optimum"][key]))
    console.print(table)
    colour = "green" if verdict["reached"] else "red"
    console.print(
        f"exact objective {_fmt(verdict['objective'])} against the optimum's "
        f"{_fmt(verdict['optimal_objective'])}: gap [{colour}]{verdict['relative_gap']:.2%}"
        f"[/{colour}] (tolerance {verdict['tolerance']:.0%}). Plot: {plot_path}"
    )


def _load_target(target: str):
    """``module:function`` -> the function, found as ``python -m`` would (the current
    folder first on the path); every failure is a one-line usage error."""
    import importlib

    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise typer.BadParameter(f"{target!r}: write module:function.", param_hint="TARGET")
    if module_name.endswith(".py"):
        module_name = module_name.removesuffix(".py").replace("/", ".").replace("\\", ".")
        raise typer.BadParameter(
            f"{target!r}: name the module, not its file: {module_name}:{name}.",
            param_hint="TARGET",
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:
        where = f"{Path(e.filename or '?').name}, line {e.lineno}"
        raise typer.BadParameter(
            f"cannot import {module_name!r}: syntax error ({where}): {e.msg}", param_hint="TARGET"
        ) from None
    except Exception as e:  # noqa: BLE001 - whatever the module raised, in one line
        own = isinstance(e, ModuleNotFoundError) and e.name == module_name.split(".")[0]
        hint = " (run from its folder, or set PYTHONPATH)" if own else ""
        raise typer.BadParameter(
            f"cannot import {module_name!r}: {type(e).__name__}: {e}{hint}", param_hint="TARGET"
        ) from None
    fn = getattr(module, name, None)
    if fn is None:
        raise typer.BadParameter(f"module {module_name!r} has no {name!r}.", param_hint="TARGET")
    if not callable(fn):
        raise typer.BadParameter(
            f"{target!r} is a {type(fn).__name__}, not a function sim(theta, key).",
            param_hint="TARGET",
        )
    return fn, name


def _parse_theta(theta: str):
    """``--theta``: a number (a float), comma-separated numbers (a list) or JSON (a number,
    a nested list, or a dict of them); every number finite."""
    try:
        value = json.loads(theta)
    except json.JSONDecodeError:
        try:
            value = [float(v) for v in theta.split(",")]
        except ValueError:
            raise typer.BadParameter(
                f"{theta!r}: give numbers (1.0,2.0) or JSON ('[1.0]', "
                '\'{"mu": 1.0, "sigma": 2.0}\').',
                param_hint="--theta",
            ) from None
        value = value[0] if len(value) == 1 else value
    bad = _not_finite(value)
    if bad:
        raise typer.BadParameter(
            f"{bad}: θ must be finite numbers (a gradient at nan or inf means nothing; 1e999 "
            "overflows to inf).",
            param_hint="--theta",
        )
    return value


def _not_finite(value) -> str:
    """The first entry of a parsed θ that is not a finite number, in words ("" if none)."""
    if isinstance(value, dict):
        return next((f"{k}: {b}" for k, v in value.items() if (b := _not_finite(v))), "")
    if isinstance(value, list):
        return next((b for v in value if (b := _not_finite(v))), "") if value else "[]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    return "" if math.isfinite(value) else repr(value)


@app.command()
def check(
    target: Annotated[
        str, typer.Argument(metavar="MODULE:FUNCTION", help="The simulator, e.g. mymodel:sim.")
    ],
    theta: Annotated[
        str,
        typer.Option(
            metavar="THETA",
            help="θ: a number (2.0), comma-separated numbers (1.0,2.0: an array), or JSON "
            '([2.0] for an array of one, {"mu": 1.0, "sigma": [0.5, 2.0]} for a dict).',
        ),
    ],
    seed: Annotated[int, typer.Option(help="Seed of the PRNG key.")] = 0,
    html: Annotated[
        str | None, typer.Option(help="Where to write the HTML report; default FUNCTION.html.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Draws per point in the plots.", min=2)] = 256,
    x64: Annotated[
        bool, typer.Option("--x64", help="Check in float64 (default: float32, as sg.check).")
    ] = False,
) -> None:
    """Find where AD is wrong in a simulator and write an HTML report with plots.

    FUNCTION is called as function(theta, key), or function(theta) if it
    takes one argument. THETA keeps the shape it is written in: 2.0 is a
    number (a function that indexes theta[0] needs [2.0]), 1.0,2.0 an
    array, a JSON dict a dict of arrays. The module is found as `python -m`
    finds it: from the current folder first.
    """
    import inspect

    _require_matplotlib()
    fn, name = _load_target(target)
    value = _parse_theta(theta)
    from ._src.runs import check_output_path

    try:  # refused before the run, not after tens of seconds of checking
        out = check_output_path(html or f"{name}.html", "--html", "report.html")
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--html") from None
    jax = _setup_jax(x64)
    import jax.numpy as jnp

    from ._check import check as run_check

    dtype = jnp.float64 if x64 else jnp.float32
    point = jax.tree.map(lambda v: jnp.asarray(v, dtype), value)
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 2
    sim = fn if n_params >= 2 else (lambda t, key: fn(t))  # noqa: E731
    with _Steps("simgrad check", 2, Console(stderr=True)) as steps:
        steps.step("reading the program (trace, scan, one-sided derivatives)")
        try:
            report = run_check(sim, point, jax.random.key(seed))
        except Exception as e:  # noqa: BLE001 - the simulator's own error, in one line
            raise typer.BadParameter(_explained(e, target, value), param_hint="TARGET") from None
        steps.step(f"drawing the report's plots ({samples} draws per point)")
        path = report.to_html(out, n_samples=samples)
    typer.echo(str(report))
    typer.echo(f"report: {path}")


def _explained(error: Exception, target: str, theta) -> str:
    """An error from checking the simulator, in one line, with a hint where θ's shape is
    the likely cause (a number where the simulator indexes an array)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{target}: {type(error).__name__}: {message}"
    indexed = isinstance(error, IndexError) or "index" in message or "subscript" in message
    if isinstance(theta, float) and indexed:
        text += (
            f" (θ was given as one number, {theta}; if the simulator indexes it, "
            f"theta[0], pass an array: --theta '[{theta}]')"
        )
    return text


def _row_dict(row) -> dict:
    import dataclasses

    return dataclasses.asdict(row) | {
        "abs_error": row.abs_error,
        "z_score": row.z_score,
        "verdict": _verdicts(row),
    }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _error_cell(row, name: str) -> str:
    """The error of one gradient component: in standard errors if it has one, else absolute."""
    verdict = row.error(name)
    if verdict is None:
        return "[dim]—[/dim]"
    kind, number = verdict
    if kind == "exact":
        return f"{number:.1e}"
    if kind == "biased":
        return f"[red]biased {number:.2g}[/red]"
    if number > 100:
        return "[red]> 100 σ[/red]"
    colour = "green" if number < 4 else "red"
    return f"[{colour}]{number:.2f} σ[/{colour}]"


def _claim_cell(claim: str) -> str:
    """The estimate's claim for the model (`Estimate.claim`), red where it is biased."""
    return {"biased": "[red]biased[/red]", "unverified": "[yellow]unverified[/yellow]"}.get(
        claim, claim
    )


def _demo_table(rows) -> Table:
    table = Table(
        title="simgrad demo — every estimator on the gallery (float64)",
        title_justify="left",
        caption="error: |estimate − exact| in standard errors σ (random models), absolute "
        "(deterministic); 'biased': off with zero spread (AD through a jump); claim: what the "
        "estimate says of itself for the model (Estimate.claim); ms after compiling",
        caption_justify="left",
    )
    columns: list[tuple[str, JustifyMethod]] = [
        ("model", "left"),
        ("estimator", "left"),
        ("value", "right"),
        ("θ", "left"),
        ("gradient ± std. error", "right"),
        ("exact", "right"),
        ("error", "right"),
        ("claim", "left"),
        ("evals", "right"),
        ("ms", "right"),
    ]
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)
    previous = None
    for row in rows:
        if previous is not None and row.model != previous:
            table.add_section()
        for i, name in enumerate(row.grad):
            first = i == 0
            exact = "—" if row.exact_grad is None else _fmt(row.exact_grad[name])
            table.add_row(
                row.model if row.model != previous else "",
                row.estimator if first else "",
                f"{_fmt(row.value)} ± {row.value_stderr:.2g}" if first else "",
                name,
                f"{_fmt(row.grad[name])} ± {row.grad_stderr[name]:.2g}",
                exact,
                _error_cell(row, name),
                _claim_cell(row.claim) if first else "",
                f"{row.n_evals:,}" if first else "",
                f"{row.ms:.1f}" if first else "",
            )
            previous = row.model
    return table


def _print_notes(console: Console, models: list[str]) -> None:
    from .models import GALLERY

    for name in models:
        console.print(f"[bold]{name}[/bold]: {GALLERY[name].summary}")


if __name__ == "__main__":
    app()
