"""The ``effbench`` command: a thin shell over the registry, runner, store and site.

Heavy modules (torch, the runner, plotly) are imported inside the command that needs
them, so ``effbench query`` and ``effbench site`` start fast and work without torch.
``base`` holds the group and shared options; ``catalog``, ``running`` and ``results`` add the commands.
"""

from __future__ import annotations

import sys

import click

from effbench.cli import catalog, results, running  # noqa: F401  (each registers its commands on the group)
from effbench.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    from effbench.errors import Interrupted

    try:
        cli(prog_name="effbench")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Interrupted as exc:  # outside `run`'s own handling (a second signal while it saves)
        click.echo("interrupted", err=True)
        sys.exit(128 + exc.signum)
