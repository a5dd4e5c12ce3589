"""``citytel devices import``: load the device registry from CSV or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import asyncpg
import orjson
import typer

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import DatabaseSettings
from ingest.errors import RegistryImportError
from ingest.registry import import_devices_file

CONNECT_TIMEOUT_S = 10.0

PathArgument = Annotated[
    Path,
    typer.Argument(
        help="Registry file: .csv with a header row, or JSON (a list or JSON lines).",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


async def _import(dsn: str, path: Path) -> int:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        return await import_devices_file(conn, path)
    finally:
        await conn.close()


def import_devices(path: PathArgument, config: ConfigOption = None) -> None:
    """Insert or update every device of PATH (CSV or JSON); all rows or none.

    When a row is invalid, print one line per problem, import nothing and exit 2.
    """
    settings = settings_for(DatabaseSettings, config)
    dsn = str(settings.require_database_url())
    try:
        count = run(_import(dsn, path))
    except RegistryImportError as exc:
        for problem in exc.problems:
            typer.echo(f"{path.name}: {problem}", err=True)
        typer.echo(f"{len(exc.problems)} problem(s); nothing imported", err=True)
        raise typer.Exit(2) from exc
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        typer.echo(f"{path.name}: not readable as {_format(path)}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"database error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"imported {count} device(s) from {path.name}")


def _format(path: Path) -> str:
    return "CSV" if path.suffix.lower() == ".csv" else "JSON"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage the device registry.", no_args_is_help=True)
    group.command("import")(import_devices)
    app.add_typer(group, name="devices")
