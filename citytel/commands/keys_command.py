"""``citytel keys create|list|revoke``: API keys, stored as salted hashes (``api.keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
import typer
from pydantic import TypeAdapter, ValidationError

from api import keys
from api.keys import Role
from citytel.commands.options import ConfigOption, on_database, run, settings_for
from core.settings import ApiSettings
from schemas.registry import Text

RoleOption = Annotated[
    Role,
    typer.Option(
        case_sensitive=False,
        help="viewer: read everything; operator: + registry writes, replay; admin: + keys.",
    ),
]


def _check_name(name: str | None) -> str | None:
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        raise typer.BadParameter("at most 200 printable characters") from exc


_NAME = TypeAdapter(Text | None)
NameOption = Annotated[
    str | None,
    typer.Option(callback=_check_name, help="What the key is for, e.g. grafana or ops-team."),
]


def create(role: RoleOption, name: NameOption = None, config: ConfigOption = None) -> None:
    """Create an API key and print it; it is shown this once and never stored."""
    settings = settings_for(ApiSettings, config)
    row, full = run(on_database(settings, lambda conn: keys.create_key(conn, role, name)))
    typer.echo(f"created {row['role']} key {row['id']}" + (f" ({name})" if name else ""))
    typer.echo(full)
    typer.echo("This key is shown once and will not be shown again: store it now.")


def list_command(config: ConfigOption = None) -> None:
    """List keys: id, name, role, created, last used, revoked (never a secret)."""
    rows = run(on_database(settings_for(ApiSettings, config), keys.list_keys))
    typer.echo(_line("id", "role", "created (UTC)", "last used", "revoked", "name"))
    for r in rows:
        times = (_when(r[c]) for c in ("created_at", "last_used_at", "revoked_at"))
        typer.echo(_line(r["id"], r["role"], *times, r["name"] or ""))
    typer.echo(f"{len(rows)} key(s)")


def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (8 hex characters).")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: from now on it authenticates nothing."""
    settings = settings_for(ApiSettings, config)

    async def revoke_and_read(conn: asyncpg.Connection) -> tuple[Any, Any]:
        return await keys.revoke_key(conn, key_id), await keys.fetch_key(conn, key_id)

    revoked, current = run(on_database(settings, revoke_and_read))
    if revoked is not None:
        typer.echo(f"revoked key {key_id}")
        return
    if current is None:
        typer.echo(f"no key {key_id!r}", err=True)
    else:
        typer.echo(f"key {key_id} was already revoked ({_when(current['revoked_at'])})", err=True)
    raise typer.Exit(1)


def _when(ts: datetime | None) -> str:
    return f"{ts:%Y-%m-%d %H:%M}" if ts is not None else "-"


def _line(*cells: str) -> str:
    widths = (8, 8, 16, 16, 16)
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, (*widths, 0), strict=True))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
    group.command("create")(create)
    group.command("list")(list_command)
    group.command("revoke")(revoke)
    app.add_typer(group, name="keys")
