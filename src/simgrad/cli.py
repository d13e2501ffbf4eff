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
    from ._demo import demo_steps, run_demo
    from .models import GALLERY

    unknown = [m for m in model or [] if m not in GALLERY]
    if unknown:
        raise typer.BadParameter(
            f"unknown model(s) {unknown}; choose from {sorted(GALLERY)}.", param_hint="--model"
        )
    console = Console(stderr=as_json)
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
    _print_notes(console, {r.model for r in rows if r.exact_grad is None})


def _row_dict(row) -> dict:
    import dataclasses

    return dataclasses.asdict(row) | {"abs_error": row.abs_error, "z_score": row.z_score}


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _demo_table(rows) -> Table:
    table = Table(title="simgrad demo: gradient estimators on the gallery", title_justify="left")
    for col, justify in [
        ("model", "left"),
        ("estimator", "left"),
        ("value", "right"),
        ("gradient", "right"),
        ("std. error", "right"),
        ("evals", "right"),
        ("ms", "right"),
        ("error", "right"),
    ]:
        table.add_column(col, justify=justify)
    previous = None
    for row in rows:
        if previous is not None and row.model != previous:
            table.add_section()
        previous = row.model
        grad = "\n".join(f"{k} {_fmt(v)}" for k, v in row.grad.items())
        stderr = "\n".join(_fmt(v) for v in row.grad_stderr.values())
        if row.exact_grad is None:
            error = "[dim]no exact answer[/dim]"
        elif row.z_score is not None:
            colour = "green" if row.z_score < 4 else "red"
            error = f"[{colour}]{row.z_score:.2f} σ[/{colour}]"
        else:
            error = f"{row.abs_error:.1e}"
        table.add_row(
            row.model,
            row.estimator,
            f"{_fmt(row.value)} ± {row.value_stderr:.2g}",
            grad,
            stderr,
            f"{row.n_evals:,}",
            f"{row.ms:.1f}",
            error,
        )
    return table


def _print_notes(console: Console, models: set[str]) -> None:
    from .models import GALLERY

    for name in sorted(models):
        doc = (type(GALLERY[name]).__doc__ or "").strip().split("\n\n")
        console.print(f"[bold]{name}[/bold]: " + " ".join(" ".join(doc[:2]).split()))


if __name__ == "__main__":
    app()
