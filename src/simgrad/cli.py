"""The `simgrad` command line."""

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .reference._explain import explain_app

app = typer.Typer(
    name="simgrad",
    help="Gradients of simulations — deterministic, stochastic, discrete, discontinuous.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(explain_app, name="explain")


@app.callback()
def main() -> None:
    """simgrad: gradients of simulations, every estimator, each with its error bar."""


@app.command()
def demo(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Gallery model(s) to run; default: all."),
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
    """
    import jax

    from ._demo import demo_steps, run_demo
    from .models import GALLERY

    unknown = [m for m in model or [] if m not in GALLERY]
    if unknown:
        raise typer.BadParameter(
            f"unknown model(s) {unknown}; choose from {sorted(GALLERY)}.", param_hint="--model"
        )
    jax.config.update("jax_enable_x64", True)  # exact answers deserve float64
    console = Console(stderr=as_json)
    if not console.is_terminal:
        console.width = max(console.width, 150)
    progress = Progress(
        TextColumn("[bold]{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("compiling", total=demo_steps(model))

        def step(label: str) -> None:
            progress.update(task, description=label)
            progress.advance(task)

        rows = run_demo(model, seed=seed, scale=scale, on_step=step)

    if as_json:
        typer.echo(json.dumps([_row_dict(r) for r in rows], indent=2))
        return
    console.print(_demo_table(rows))
    _print_notes(console, list(dict.fromkeys(r.model for r in rows)))


@app.command()
def optimize(
    name: Annotated[str, typer.Argument(help="An application from the gallery.")],
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
    """Optimise a gallery application and compare the result with its known answer.

    Applications: run `simgrad optimize --help` and see the list below, or docs/applications.
    """
    import jax

    from .models.applications import APPLICATIONS

    if name not in APPLICATIONS:
        raise typer.BadParameter(
            f"unknown application {name!r}; choose from {sorted(APPLICATIONS)}.",
            param_hint="NAME",
        )
    if resume and checkpoint is None:
        raise typer.BadParameter("--resume needs --checkpoint PATH.", param_hint="--resume")
    jax.config.update("jax_enable_x64", True)
    application = APPLICATIONS[name]
    console = Console(stderr=as_json)
    console.print(f"[bold]{name}[/bold]: {application.summary}")
    result = application.run(
        jax.random.key(seed), progress=True, checkpoint=checkpoint, resume=resume
    )
    verdict = application.judge(result.theta)
    plot_path = plot or f"{name}.png"
    result.plot(plot_path, exact=application.optimum(), title=name)
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


@app.command()
def check(
    target: Annotated[str, typer.Argument(help="The simulator, as module:function.")],
    theta: Annotated[str, typer.Option(help="θ, comma-separated, e.g. 1.0,2.0.")],
    seed: Annotated[int, typer.Option(help="Seed of the PRNG key.")] = 0,
    html: Annotated[
        str | None, typer.Option(help="Where to write the HTML report; default FUNCTION.html.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Draws per point in the plots.", min=2)] = 256,
) -> None:
    """Find where AD is wrong in a simulator and write an HTML report with plots.

    FUNCTION is called as function(theta, key), or function(theta) if it takes one
    argument; theta is a float for one value and an array otherwise.
    """
    import importlib
    import inspect

    import jax
    import jax.numpy as jnp

    from .check import check as run_check

    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise typer.BadParameter(f"{target!r}: write module:function.", param_hint="TARGET")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise typer.BadParameter(f"cannot load {target!r}: {e}", param_hint="TARGET") from e
    try:
        values = [float(v) for v in theta.split(",")]
    except ValueError as e:
        hint = f"{theta!r}: give numbers, e.g. 1.0,2.0."
        raise typer.BadParameter(hint, param_hint="--theta") from e
    jax.config.update("jax_enable_x64", True)
    point = jnp.asarray(values[0] if len(values) == 1 else values, jnp.float64)
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 2
    sim = fn if n_params >= 2 else (lambda t, key: fn(t))  # noqa: E731
    report = run_check(sim, point, jax.random.key(seed))
    typer.echo(str(report))
    path = report.to_html(html or f"{name}.html", n_samples=samples)
    typer.echo(f"report: {path}")


def _row_dict(row) -> dict:
    import dataclasses

    return dataclasses.asdict(row) | {"abs_error": row.abs_error, "z_score": row.z_score}


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


def _demo_table(rows) -> Table:
    table = Table(
        title="simgrad demo — every estimator on the gallery (float64)",
        title_justify="left",
        caption="error: |estimate − exact| in standard errors σ (random models), absolute "
        "(deterministic); 'biased': off with zero spread (AD through a jump); ms after compiling",
        caption_justify="left",
    )
    for col, justify in [
        ("model", "left"),
        ("estimator", "left"),
        ("value", "right"),
        ("θ", "left"),
        ("gradient ± std. error", "right"),
        ("exact", "right"),
        ("error", "right"),
        ("evals", "right"),
        ("ms", "right"),
    ]:
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
