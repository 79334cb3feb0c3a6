"""What every stt-server command shares: the typer app, the console, the settings and the context."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from ..ledger import MigrationError
from ..settings import Settings, SettingsError

if TYPE_CHECKING:
    from ..context import Context

app = typer.Typer(
    help="batch-stt server: hands audio files to volunteer clients, stores transcripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()


def config_error(e: Exception) -> typer.Exit:
    typer.echo(f"configuration error: {e}", err=True)  # one plain line, never wrapped
    return typer.Exit(2)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as e:
        raise config_error(e) from None


def context(settings: Settings) -> Context:
    from ..context import build_context  # imported late: `--help` stays fast

    try:
        return build_context(settings, event_stream=sys.stderr)
    except (SettingsError, MigrationError) as e:
        raise config_error(e) from None
