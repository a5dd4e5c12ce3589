"""``citytel rollups refresh|status``: the rollups behind indicators and dashboards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import IngestSettings
from ingest.rollups import RollupRefresher
from schemas.rollups import AREA_LEVELS, LEVELS, area_name, rollup_name
from schemas.topics import Kind

console = Console()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def refresh(
    config: ConfigOption = None,
    start: Annotated[
        datetime | None,
        typer.Option("--from", help="Recompute from here (ISO 8601; naive means UTC)."),
    ] = None,
    end: Annotated[
        datetime | None, typer.Option("--to", help="Recompute up to here (default: now).")
    ] = None,
    kind: Annotated[list[Kind] | None, typer.Option(help="Only these kinds.")] = None,
) -> None:
    """Refresh the rollups: what the collector logged, or everything in --from/--to.

    The collector refreshes every CITYTEL_INGEST_ROLLUP_REFRESH_S seconds on its own;
    use --from/--to after loading rows without the collector or changing a definition.
    """
    settings = settings_for(IngestSettings, config)
    lo, hi = _utc(start), _utc(end) or datetime.now(UTC) + timedelta(minutes=15)

    async def main() -> None:
        conn = await asyncpg.connect(str(settings.require_database_url()), timeout=10)
        refresher = RollupRefresher(rebuild_days=settings.retention_days)
        try:
            if lo is None:
                report = await refresher.refresh(conn)
                if report.skipped:
                    console.print("another refresher is running; nothing done")
                    return
                console.print(
                    f"{report.log_rows} log rows, {len(report.rebuilt_cities)} cities rebuilt,"
                    f" {report.seconds:.2f} s"
                )
                return
            with Progress(
                TextColumn("refreshing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("refresh", total=None)

                def on_progress(_: str, done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                await refresher.refresh_range(
                    conn, lo, hi, kinds=kind or tuple(Kind), on_progress=on_progress
                )
            console.print(f"rollups recomputed from {lo.isoformat()} to {hi.isoformat()}")
        finally:
            await conn.close()

    run(main())


def status(config: ConfigOption = None) -> None:
    """Rows and newest bucket of every rollup, and what waits in the refresh log."""
    settings = settings_for(IngestSettings, config)

    async def main() -> None:
        conn = await asyncpg.connect(str(settings.require_database_url()), timeout=10)
        try:
            pending = await conn.fetchrow(
                "SELECT count(*) AS n, min(recorded_at) AS oldest FROM rollup_invalidations"
            )
            table = Table("rollup", "rows", "newest bucket")
            names = [rollup_name(k, lvl) for k in Kind for lvl in LEVELS]
            names += [area_name(k, lvl) for k in Kind for lvl in AREA_LEVELS]
            for name in [*names, "signal_coverage_1d"]:
                row = await conn.fetchrow(
                    f"SELECT count(*) AS n, max(bucket) AS newest FROM {name}"
                )
                table.add_row(name, f"{row['n']:,}", str(row["newest"] or ""))
        finally:
            await conn.close()
        console.print(table)
        oldest = pending["oldest"]
        console.print(
            f"refresh log: {pending['n']:,} buckets waiting"
            + (f", oldest logged {oldest.isoformat()}" if oldest else "")
        )

    run(main())


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Rollups (per device and per area).", no_args_is_help=True)
    group.command("refresh")(refresh)
    group.command("status")(status)
    app.add_typer(group, name="rollups")
