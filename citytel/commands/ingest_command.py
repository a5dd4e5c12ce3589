"""``citytel collect``: run a collector."""

from __future__ import annotations

from typing import Annotated

import typer

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import IngestSettings
from ingest.service import run_collector


def collect(
    config: ConfigOption = None,
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (stable across restarts).")
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="MQTT protocol: 5 or 3.1.1.")] = None,
) -> None:
    """Subscribe to every device topic and store what arrives, acknowledging after commit."""
    settings = settings_for(
        IngestSettings, config, ingest_client_id=client_id, ingest_protocol=protocol
    )
    settings.require_mqtt_url()
    run(run_collector(settings))


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
