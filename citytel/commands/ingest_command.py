"""``citytel collect``: run a collector, or retire one from the shared group."""

from __future__ import annotations

from typing import Annotated

import typer

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import IngestSettings
from ingest.errors import IngestError
from ingest.retire import DEFAULT_QUIET_S, retire_collector
from ingest.service import run_collector


def collect(
    config: ConfigOption = None,
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (stable across restarts).")
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="MQTT protocol: 5 or 3.1.1.")] = None,
    retire: Annotated[
        bool,
        typer.Option(
            help="Take this collector (its client id) out of the shared group for good: "
            "store what its session holds, then end the session. Stop it first."
        ),
    ] = False,
    quiet_s: Annotated[
        float, typer.Option(min=0.1, help="With --retire: seconds without a message = drained.")
    ] = DEFAULT_QUIET_S,
) -> None:
    """Subscribe to every device topic and store what arrives, acknowledging after commit."""
    settings = settings_for(
        IngestSettings, config, ingest_client_id=client_id, ingest_protocol=protocol
    )
    settings.require_mqtt_url()
    if not retire:
        run(run_collector(settings))
        return
    try:
        report = run(retire_collector(settings, quiet_s=quiet_s))
    except IngestError as exc:
        typer.echo(f"not retired: {exc}", err=True)
        raise typer.Exit(1) from exc
    held = "" if report.session_present else " (the broker held no session for it)"
    typer.echo(f"retired {report.client_id}: {report.drained} message(s) stored{held}")


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
