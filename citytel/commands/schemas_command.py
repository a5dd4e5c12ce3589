"""``citytel schemas export``: JSON Schema of contract v1 for device vendors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schemas.export import export_json_schemas


def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path(
        "schemas/json"
    ),
) -> None:
    """Write one JSON Schema file per message type of the contract."""
    for path in export_json_schemas(out):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The device contract.", no_args_is_help=True)
    group.command("export")(export)
    app.add_typer(group, name="schemas")
