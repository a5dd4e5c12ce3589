"""The registry with each device's last known status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from api import queries
from api.deps import Db, DeviceDep
from ingest.registry import upsert_devices
from schemas.registry import Device
from schemas.topics import Kind

router = APIRouter(prefix="/devices", tags=["devices"])

MAX_PAGE = 1000
MAX_UPSERT = 10_000


class DeviceOut(BaseModel):
    """A registry row plus status (``online``, ``last_seen``, ``fw``; null before any)."""

    device_id: str
    kind: Kind
    city: str
    district: str | None
    name: str | None
    lat: float | None
    lon: float | None
    interval_s: float
    installed_at: datetime | None
    functions: list[str]
    intersection: str | None
    arterial: bool | None
    site_type: str | None
    pv_capacity_kw: float | None
    storage_capacity_kwh: float | None
    registered_by: str
    updated_at: datetime
    online: bool | None
    last_seen: datetime | None
    fw: str | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> DeviceOut:
        return cls.model_validate({**record, "functions": record["functions"] or []})


class DevicePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeviceOut]


class UpsertResult(BaseModel):
    upserted: int


@router.get("")
async def list_devices(
    *,
    db: Db,
    city: str | None = None,
    kind: Kind | None = None,
    district: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """Devices in device_id order, filtered by city, kind and district."""
    where = queries.DeviceFilter(city, str(kind) if kind else None, district)
    total, rows = await queries.list_devices(db, where, limit=limit, offset=offset)
    items = [DeviceOut.from_record(r) for r in rows]
    return DevicePage(total=total, limit=limit, offset=offset, items=items)


@router.get("/{device_id}", responses={404: {"description": "not in the registry"}})
async def get_device(device: DeviceDep) -> DeviceOut:
    """One device with its status."""
    return DeviceOut.from_record(device)


@router.post("")
async def post_devices(
    db: Db, devices: Annotated[list[Device], Body(max_length=MAX_UPSERT)]
) -> UpsertResult:
    """Insert or update registry records (all or none); ``registered_by`` becomes ``api``."""
    async with db.transaction():
        count = await upsert_devices(db, devices, registered_by="api")
    return UpsertResult(upserted=count)
