"""The app factory: lifespan with the asyncpg pool, error handlers, routers.

Every resource is mounted under ``/v1`` behind :func:`api.deps.require` (viewer at the
least), so no route there answers without a key; the probes stay at the root, open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, Depends, FastAPI

from api.deps import API_PREFIX, require, required_role
from api.errors import DatabaseUnavailableError
from api.handlers import install_error_handlers
from api.keys import Role, UsageRecorder
from api.routes import (
    aggregates,
    deadletters,
    devices,
    events,
    feeds,
    health,
    indicators,
    keys,
    plan,
    series,
    targets,
)
from core.settings import ApiSettings

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 5.0
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# indicators (the "now" routes) before plan, whose /indicators/{name} would catch "now".
V1_RESOURCES = (
    devices,
    series,
    aggregates,
    events,
    deadletters,
    indicators,
    plan,
    targets,
    feeds,
    keys,
)


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
        description="Every `/v1` route needs an API key (`Authorization: Bearer <key>` or "
        "`X-API-Key: <key>`); each operation names the role it needs in `x-required-role`. "
        'Errors are `{"error": {"code", "message", "details"?}}`.',
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.key_usage = UsageRecorder()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(_v1_router())
    _declare_roles(app)
    return app


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """An operation as mounted: full path, methods, and the role it requires."""

    path: str
    methods: frozenset[str]
    role: Role | None


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API operation of ``app`` with its effective dependencies (router ones too)."""
    try:  # FastAPI >= 0.16x keeps included routers as contexts
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older FastAPI flattens them into app.routes
        routes: Iterable[Any] = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    found = []
    for route in routes:
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            found.append(
                RouteInfo(route.path, frozenset(route.methods or ()), required_role(dependant))
            )
    return found


def _v1_router() -> APIRouter:
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require(Role.VIEWER))])
    for resource in V1_RESOURCES:
        v1.include_router(resource.router)
    return v1


def _declare_roles(app: FastAPI) -> None:
    """Name each operation's role in its OpenAPI entry (``x-required-role``), read from
    the dependencies that enforce it, so docs, clients and fuzzers see the same rule."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for route in api_routes(app):
            operations = schema["paths"].get(route.path, {})
            for method in route.methods:
                if route.role is not None and method.lower() in operations:
                    operations[method.lower()]["x-required-role"] = str(route.role)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
