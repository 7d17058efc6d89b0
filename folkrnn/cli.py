"""The ``folkrnn`` command: parses options, calls one library function, prints, and turns FolkError
into a one-line message with a non-zero exit code. Heavy imports happen inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from folkrnn import __version__
from folkrnn.errors import FolkError

app = typer.Typer(
    name="folkrnn",
    help="Learn folk tunes from ABC and MIDI collections, and write new ones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Build, inspect and export the training corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"folkrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Learn folk tunes from ABC and MIDI collections, and write new ones."""


def fail(error: FolkError) -> None:
    """Print one line for a person and leave with the error's exit code."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except FolkError as error:  # raised outside a command body (e.g. in a callback)
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
