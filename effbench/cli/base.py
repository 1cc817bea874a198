"""The ``effbench`` command group and what its commands share: options, one-line failures, the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DB_OPTION = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/effbench.duckdb"),
    show_default=True, help="DuckDB results file.",
)


PLUGIN_OPTION = click.option(
    "--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Python file defining your own Method objects (repeatable).",
)


def _fail(message: str) -> None:
    raise click.ClickException(" ".join(str(message).split()))


def _registry(plugins: tuple[Path, ...]):
    from effbench.registry import UsageError, discover

    try:
        return discover(plugins)
    except UsageError as exc:
        _fail(str(exc))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:  # a path that cannot be a file here: too long, under a file, unreadable
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="effbench")
def cli() -> None:
    """effbench: losses, optimizers, samplers and sparse attention, measured the same way.

    Runs every method's implementations on fixed grids, writes time, memory and
    accuracy to DuckDB, and renders a static comparison site.

    \b
    Example:
        effbench list --family loss
        effbench run --grid smoke
        effbench site && xdg-open site/index.html
    """


def _say(text: str) -> None:
    """One plain line on stderr (never read as markup: case messages hold brackets)."""
    click.echo(text, err=True)


def _duration(seconds: float | None) -> str:
    from effbench.console import duration

    return duration(seconds)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
