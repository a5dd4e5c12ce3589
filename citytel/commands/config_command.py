"""``citytel config show``: the effective settings, secrets masked."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from citytel.commands.options import ConfigOption
from core.settings import SERVICE_SETTINGS, load_settings, masked_settings

_SERVICES = {cls.__name__.removesuffix("Settings").lower(): cls for cls in SERVICE_SETTINGS}


def show(
    config: ConfigOption = None,
    service: Annotated[
        str, typer.Option(help=f"Which service's settings: {', '.join(_SERVICES)}.")
    ] = "ingest",
) -> None:
    """Show the effective settings of a service (environment, file, defaults); secrets masked."""
    if service not in _SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(_SERVICES)}")
    settings = load_settings(_SERVICES[service], config)
    table = Table("setting", "value", title=f"{service} settings")
    for name, value in masked_settings(settings).items():
        table.add_row(name, value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
    group.command("show")(show)
    app.add_typer(group, name="config")
