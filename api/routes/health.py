"""``GET /healthz``: the API is alive and the database answers."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from api.deps import Pool
from schemas.migrate import read_storage_mode

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 3.0


class Health(BaseModel):
    status: str
    database: str
    storage_mode: str | None = None


@router.get("/healthz", responses={503: {"model": Health}})
async def get_health(pool: Pool, response: Response) -> Health:
    """Liveness plus a round trip to the database; 503 when it does not answer."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), pool.acquire() as conn:
            mode = await read_storage_mode(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        logger.warning("health check: database unreachable: %s", exc)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="error", database="unreachable")
    return Health(status="ok", database="ok", storage_mode=mode)
