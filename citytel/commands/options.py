"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer

from core.logs import configure_logging
from core.settings import CommonSettings, load_settings

T = TypeVar("T")
S = TypeVar("S", bound=CommonSettings)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file (environment overrides it).",
        exists=True,
        dir_okay=False,
    ),
]


def settings_for(cls: type[S], config: Path | None, **overrides: Any) -> S:
    """Load settings (exit 2 with one line per bad value) and configure logging."""
    settings = load_settings(cls, config, **{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level)
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


CONNECT_TIMEOUT_S = 10.0


async def connect(settings: CommonSettings) -> asyncpg.Connection:
    """A connection to the settings' database; exit 1 with one line when there is none."""
    url = settings.require_database_url()
    try:
        return await asyncpg.connect(str(url), timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"cannot connect to {url.masked()}: {exc}", err=True)
        raise typer.Exit(1) from exc


async def on_database(
    settings: CommonSettings, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """``work`` on a connection of its own to the settings' database, closed after."""
    conn = await connect(settings)
    try:
        return await work(conn)
    finally:
        await conn.close()
