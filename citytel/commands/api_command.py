"""``citytel api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from citytel.commands.options import ConfigOption, settings_for
from core.settings import ApiSettings


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default CITYTEL_API_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default CITYTEL_API_PORT).", min=0, max=65535)
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs); waits for the database at start-up."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from api.main import create_app  # noqa: PLC0415 - keep `citytel --help` light

    settings = settings_for(ApiSettings, config, api_host=host, api_port=port)
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None)


def register(app: typer.Typer) -> None:
    app.command("api")(serve)
