"""The ``rnnstab`` command line: parse, call the library, print. Nothing else lives here.

``app`` lives in :mod:`rnnstab.cli._common`; each command module registers its commands on it when imported.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import rnnstab
from rnnstab.cli._common import app, console, plain_help

# isort: off
# Imported for their @app.command registrations, in the order `rnnstab --help` lists the commands.
from rnnstab.cli import trace, sweep, lyapunov, audit, identities, train  # noqa: F401

# isort: on
plain_help(app)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(rnnstab.__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """rnnstab: will gradients in your recurrent network vanish or explode, why, and by how much."""
