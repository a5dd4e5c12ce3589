"""``citytel db migrate|status``: the versioned schema and which storage mode is active."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from citytel.commands.options import ConfigOption, connect, on_database, run, settings_for
from core.settings import DatabaseSettings
from schemas.migrate import migrate as apply_migrations
from schemas.migrate import migration_status

console = Console()


def migrate(
    config: ConfigOption = None,
    storage: Annotated[
        str | None, typer.Option(help="auto (TimescaleDB when available), postgres or timescale.")
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option(help="Keep raw telemetry this long.")
    ] = None,
) -> None:
    """Apply pending migrations (idempotent; safe to run from several hosts at once)."""
    settings = settings_for(
        DatabaseSettings, config, storage=storage, retention_days=retention_days
    )

    async def main() -> None:
        conn = await connect(settings)
        try:
            applied = await apply_migrations(
                conn,
                retention_days=settings.retention_days,
                storage=settings.storage,
                rollup_retention_days=settings.rollup_retention_days,
                rollup_timezone=settings.rollup_timezone,
            )
            status = await migration_status(conn)
        finally:
            await conn.close()
        for migration in applied:
            console.print(f"applied {migration.version:03d}_{migration.name}")
        console.print(
            f"schema up to date ({len(status.applied)} migrations), storage: {status.storage_mode}"
        )

    run(main())


def status(config: ConfigOption = None) -> None:
    """Show applied and pending migrations and the active storage mode."""
    settings = settings_for(DatabaseSettings, config)

    async def main() -> int:
        st = await on_database(settings, migration_status)
        mode = st.storage_mode or "none (not migrated)"
        detail = {
            "timescale": f"TimescaleDB {st.timescale_version}: hypertables, compression,"
            " retention policies",
            "postgres": "plain PostgreSQL: daily range partitions kept by the collector",
        }.get(str(st.storage_mode), "")
        console.print(f"server: PostgreSQL {st.server_version}")
        console.print(f"storage: {mode}" + (f" ({detail})" if detail else ""))
        if st.retention_days:
            console.print(
                f"retention: raw and 15-minute rollups {st.retention_days} days, hourly and"
                f" daily rollups {st.rollup_retention_days} days; daily rollups in"
                f" {st.rollup_timezone}"
            )
        for version, name in st.applied:
            console.print(f"  applied  {version:03d}_{name}")
        for version, name in st.pending:
            console.print(f"  [yellow]pending  {version:03d}_{name}[/yellow]")
        for version, name in st.changed:
            console.print(f"  [red]changed since applied  {version:03d}_{name}[/red]")
        return 1 if st.pending or st.changed else 0

    raise typer.Exit(run(main()))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Database schema.", no_args_is_help=True)
    group.command("migrate")(migrate)
    group.command("status")(status)
    app.add_typer(group, name="db")
