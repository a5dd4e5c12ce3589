"""The ``citytel`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import sys

import typer

from citytel.commands import (
    api_command,
    bench_command,
    config_command,
    dashboards_command,
    db_command,
    deadletters_command,
    demo_command,
    devices_command,
    ingest_command,
    keys_command,
    rollups_command,
    schemas_command,
    simulate_command,
)
from core.errors import ConfigError

app = typer.Typer(
    name="citytel",
    help="Smart-city IoT telemetry: MQTT devices to TimescaleDB/PostgreSQL, API and dashboards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    demo_command,
    ingest_command,
    api_command,
    simulate_command,
    db_command,
    devices_command,
    deadletters_command,
    keys_command,
    rollups_command,
    dashboards_command,
    schemas_command,
    config_command,
    bench_command,
):
    module.register(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        sys.exit(2)
