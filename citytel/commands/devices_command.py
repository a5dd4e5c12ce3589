"""``citytel devices``: import the registry (CSV or JSON), write broker credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import asyncpg
import orjson
import typer

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import DatabaseSettings
from ingest.credentials import DEFAULT_COLLECTORS, write_credentials
from ingest.errors import CredentialsError, RegistryImportError
from ingest.registry import RegisteredDevice, import_devices_file, load_registry

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


async def _registry(dsn: str) -> dict[str, RegisteredDevice]:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        return await load_registry(conn)
    finally:
        await conn.close()


def credentials(
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for passwd, acl, devices.csv, collectors.csv (mode 0700).", file_okay=False
        ),
    ],
    device: Annotated[
        list[str] | None,
        typer.Option(help="Give this account (device id or collector) a new password; repeat."),
    ] = None,
    collector: Annotated[
        list[str] | None,
        typer.Option(help="A collector account (reads citytel/v1/#); repeat. Default: collector."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Broker accounts for every registered device, and the ACL that confines each.

    Keeps the passwords already in OUT, adds devices new in the registry, drops those
    gone from it, and renews only the passwords of --device. See docs/broker.md.
    """
    settings = settings_for(DatabaseSettings, config)
    try:
        registry = run(_registry(str(settings.require_database_url())))
        report = write_credentials(
            out, registry, collectors=collector or DEFAULT_COLLECTORS, rotate=device or ()
        )
    except CredentialsError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(2) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{out}: {len(registry)} device(s); new {len(report.created)}, "
        f"renewed {len(report.rotated)}, kept {len(report.kept) + len(report.hash_only)}, "
        f"dropped {len(report.dropped)}"
    )
    if report.hash_only:
        typer.echo(
            f"kept without a known password (not in the CSV files): {', '.join(report.hash_only)}",
            err=True,
        )


def _format(path: Path) -> str:
    return "CSV" if path.suffix.lower() == ".csv" else "JSON"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage the device registry.", no_args_is_help=True)
    group.command("import")(import_devices)
    group.command("credentials")(credentials)
    app.add_typer(group, name="devices")
