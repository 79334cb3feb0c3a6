"""Who may do what, from the shell: API tokens with roles in the database (`stt-server token`),
and basic-auth users in a users file (`stt-server add-user`)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..auth import Role, hash_password, new_token, token_digest
from ..ledger import LedgerError
from .shared import console, context, load_settings

tokens = typer.Typer(help="API tokens with roles (stored hashed): volunteer, submitter, admin.", no_args_is_help=True)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def _name(name: str) -> str:
    if not NAME.match(name):
        console.print("[red]a name is 1-128 letters, digits and ._@+- (no spaces or ':')[/red]")
        raise typer.Exit(2)
    return name


@tokens.command("add")
def token_add(
    name: str = typer.Argument(..., help="who holds it: a host, a person, a tool"),
    role: Role = typer.Option(..., "--role", help="volunteer: a client daemon; submitter: its own jobs; admin: all"),
) -> None:
    """Make a token and print it, once: only its SHA-256 is kept."""
    token = new_token()
    try:
        context(load_settings()).ledger.principals.add(_name(name), role.value, token_digest(token))
    except LedgerError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None
    typer.echo(token)  # alone on stdout: TOKEN=$(stt-server token add ...)
    typer.echo(f"{name} ({role.value}): this token is not shown again", err=True)


@tokens.command("list")
def token_list() -> None:
    """Every token's name, role, and when it was made or revoked (never the token)."""
    table = Table("name", "role", "created", "revoked")
    for p in context(load_settings()).ledger.principals.listing():
        revoked = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.revoked_at)) if p.revoked_at else ""
        table.add_row(p.name, p.role, time.strftime("%Y-%m-%d %H:%M", time.localtime(p.created_at)), revoked)
    console.print(table)


@tokens.command("revoke")
def token_revoke(name: str = typer.Argument(...)) -> None:
    """The token stops working within 5 seconds; the name's jobs stay (a new token for it sees them)."""
    if not context(load_settings()).ledger.principals.revoke(name):
        console.print(f"[red]no live token named {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {name}")


def add_user(
    users_file: Path,
    name: str,
    role: Optional[Role] = typer.Option(None, "--role", help="volunteer (the default), submitter or admin"),
    admin: bool = typer.Option(False, "--admin", help="the same as --role admin"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Add a basic-auth user (hashed password) to a users file for AUTH_USERS_FILE."""
    role = Role.ADMIN if admin else role or Role.VOLUNTEER
    with open(users_file, "a", encoding="utf-8") as f:
        f.write(f"{_name(name)}:{hash_password(password)}:{role.value}\n")
    console.print(f"added {name} ({role.value}) to {users_file}")
