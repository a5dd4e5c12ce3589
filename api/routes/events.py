"""Device events (faults, mode changes, doors), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import queries
from api.deps import Db, TimeRangeDep
from api.params import City, DeviceId
from schemas.payloads import EventType, Severity
from schemas.topics import Kind

router = APIRouter(tags=["events"])

MAX_EVENTS = 1000


class EventOut(BaseModel):
    """An event; ``city`` and ``kind`` are null when the device left the registry."""

    device_id: str
    city: str | None
    kind: Kind | None
    ts: datetime
    type: str
    code: str
    severity: str
    message: str | None
    seq: int | None
    extra: dict[str, Any] | None
    received_at: datetime


@router.get("/events")
async def list_events(
    *,
    db: Db,
    time_range: TimeRangeDep,
    device_id: DeviceId | None = None,
    city: City | None = None,
    type: EventType | None = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
) -> list[EventOut]:
    """Events filtered by device, city, type, severity and ``from``/``to`` on ``ts``."""
    where = queries.EventFilter(
        device_id=device_id,
        city=city,
        type=str(type) if type else None,
        severity=str(severity) if severity else None,
        start=time_range.start,
        end=time_range.end,
    )
    return [
        EventOut.model_validate(dict(r)) for r in await queries.list_events(db, where, limit=limit)
    ]
