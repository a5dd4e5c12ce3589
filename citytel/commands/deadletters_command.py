"""``citytel deadletters list|replay``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import IngestSettings
from ingest.batch import REASONS
from ingest.deadletters import list_dead_letters, replay_dead_letters, replay_policy
from ingest.decode import payload_excerpt

console = Console()
ReasonOption = Annotated[str | None, typer.Option(help=f"One of: {', '.join(REASONS)}.")]
SinceOption = Annotated[
    datetime | None, typer.Option(help="Only those received at or after (ISO 8601).")
]


def _check_reason(reason: str | None) -> None:
    if reason is not None and reason not in REASONS:
        raise typer.BadParameter(f"unknown reason {reason!r}; one of {', '.join(REASONS)}")


def list_command(
    config: ConfigOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    replayed: Annotated[bool, typer.Option(help="Include dead letters already replayed.")] = False,
) -> None:
    """List dead letters: when, topic, reason, detail and a payload excerpt."""
    _check_reason(reason)
    settings = settings_for(IngestSettings, config)

    async def main() -> None:
        conn = await asyncpg.connect(str(settings.require_database_url()), timeout=10)
        try:
            rows = await list_dead_letters(
                conn, reason=reason, since=since, include_replayed=replayed, limit=limit
            )
        finally:
            await conn.close()
        table = Table("id", "received_at", "reason", "topic", "detail", "payload")
        for r in rows:
            table.add_row(
                str(r["id"]),
                f"{r['received_at']:%Y-%m-%d %H:%M:%S}",
                r["reason"],
                r["topic"],
                (r["detail"] or "")[:120],
                payload_excerpt(r["payload"])[:80],
            )
        console.print(table)
        console.print(f"{len(rows)} dead letter(s)")

    run(main())


def replay(
    config: ConfigOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
) -> None:
    """Re-validate dead letters and ingest those that now pass, exactly once."""
    _check_reason(reason)
    s = settings_for(IngestSettings, config)
    report = run(
        replay_dead_letters(
            str(s.require_database_url()),
            policy=replay_policy(s),
            unknown_devices=s.ingest_unknown_devices,
            reason=reason,
            since=since,
        )
    )
    console.print(f"examined {report.examined}, ingested {report.ingested}")
    for why, count in sorted(report.still_refused.items()):
        console.print(f"  still refused: {why}: {count}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Refused messages, with their raw bytes and reason.", no_args_is_help=True
    )
    group.command("list")(list_command)
    group.command("replay")(replay)
    app.add_typer(group, name="deadletters")
