"""Probes, open to all: ``/healthz`` (alive, the database answers) and ``/readyz``
(the database answers and its schema is the one this API expects)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Pool
from api.errors import UNREACHABLE_ERRORS, DatabaseUnavailableError, NotReadyError
from schemas.migrate import MigrationStatus, migration_status, read_storage_mode

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 3.0
_UNAVAILABLE = {503: {"description": "the database does not answer (error shape)"}}


class Health(BaseModel):
    status: str
    database: str
    storage_mode: str | None = None


class Readiness(BaseModel):
    status: str
    database: str
    storage_mode: str | None
    migrations: int


@router.get("/healthz", responses=_UNAVAILABLE)
async def get_health(pool: Pool) -> Health:
    """Liveness plus a round trip to the database; 503 when it does not answer."""
    async with _probe(pool) as conn:
        mode = await read_storage_mode(conn)
    return Health(status="ok", database="ok", storage_mode=mode)


@router.get(
    "/readyz",
    responses={503: {"description": "database unreachable, or migrations pending or changed"}},
)
async def get_readiness(pool: Pool) -> Readiness:
    """Ready to serve: the database answers and every migration is applied unchanged."""
    async with _probe(pool) as conn:
        status = await migration_status(conn)
    problems = _schema_problems(status)
    if problems:
        raise NotReadyError("not ready: " + "; ".join(p["msg"] for p in problems), details=problems)
    return Readiness(
        status="ready",
        database="ok",
        storage_mode=status.storage_mode,
        migrations=len(status.applied),
    )


def _schema_problems(status: MigrationStatus) -> list[dict[str, object]]:
    """One detail per kind of mismatch: migrations pending, or changed since applied."""
    hints = {"pending": "pending (run `citytel db migrate`)", "changed": "changed since applied"}
    found = {"pending": status.pending, "changed": status.changed}
    return [
        {
            "loc": ["migrations", kind],
            "msg": f"migrations {hints[kind]}: " + ", ".join(f"{v:03d}_{n}" for v, n in items),
            "type": kind,
        }
        for kind, items in found.items()
        if items
    ]


@asynccontextmanager
async def _probe(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection, the block within the probe timeout; 503 when the database
    does not answer."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), pool.acquire() as conn:
            yield conn
    except (*UNREACHABLE_ERRORS, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc}") from exc
