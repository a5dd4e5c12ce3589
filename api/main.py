"""The app factory: lifespan with the asyncpg pool, error handlers, routers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import ApiError, DatabaseUnavailableError, InvalidQueryError
from api.routes import deadletters, devices, events, health, indicators, series
from core.settings import ApiSettings

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 5.0
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )


async def open_pool(dsn: str, *, max_size: int, timeout_s: float) -> asyncpg.Pool:
    """Create the pool once the database answers; retry with logged back-off until timeout."""
    deadline = time.monotonic() + timeout_s
    delay = _BACKOFF_FIRST_S
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                command_timeout=COMMAND_TIMEOUT_S,
                timeout=CONNECT_TIMEOUT_S,
                init=_init_connection,
            )
        except _UNREACHABLE as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailableError(
                    f"database not reachable after {timeout_s:.0f}s ({attempt} attempts): {exc}"
                ) from exc
            delay = min(delay, remaining)
            logger.warning(
                "database not reachable (attempt %d): %s; retrying in %.1fs", attempt, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)


def create_app(settings: ApiSettings, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> FastAPI:
    """The API for ``settings``; the pool opens when the app's lifespan starts."""
    dsn = str(settings.require_database_url())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(
            dsn, max_size=settings.api_pool_max, timeout_s=startup_timeout_s
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="citytel API",
        summary="Devices, telemetry series, aggregates, indicators, events and dead letters "
        "of a city.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(ApiError, _render_api_error)
    for routes in (health, devices, series, events, deadletters, indicators):
        app.include_router(routes.router)
    return app


async def _render_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if isinstance(exc, InvalidQueryError):
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)
    if isinstance(exc, DatabaseUnavailableError):
        logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
