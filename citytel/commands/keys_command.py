"""``citytel keys create|list|revoke``: API keys, stored as salted hashes (``api.keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
import typer
from pydantic import TypeAdapter, ValidationError

from api import keys
from api.keys import Role
from citytel.commands.options import ConfigOption, connect, run, settings_for
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

    async def main() -> tuple[asyncpg.Record, str]:
        conn = await connect(settings)
        try:
            return await keys.create_key(conn, role, name)
        finally:
            await conn.close()

    row, full = run(main())
    typer.echo(f"created {row['role']} key {row['id']}" + (f" ({name})" if name else ""))
    typer.echo(full)
    typer.echo("This key is shown once and will not be shown again: store it now.")


def list_command(config: ConfigOption = None) -> None:
    """List keys: id, name, role, created, last used, revoked (never a secret)."""
    settings = settings_for(ApiSettings, config)

    async def main() -> list[asyncpg.Record]:
        conn = await connect(settings)
        try:
            return await keys.list_keys(conn)
        finally:
            await conn.close()

    rows = run(main())
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

    async def main() -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
        conn = await connect(settings)
        try:
            return await keys.revoke_key(conn, key_id), await keys.fetch_key(conn, key_id)
        finally:
            await conn.close()

    revoked, current = run(main())
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
