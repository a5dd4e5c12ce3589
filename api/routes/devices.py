"""The registry with each device's last known status: list, read, write, delete."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator
from pydantic_core import PydanticCustomError

from api import queries
from api.deps import Db, DeviceDep, require
from api.errors import NotFoundError
from api.keys import Role
from api.params import City, Cursor, Text, decode_cursor, encode_cursor
from ingest.registry import upsert_devices
from schemas.registry import Device
from schemas.topics import Kind

router = APIRouter(prefix="/devices", tags=["devices"])
operator_only = [Depends(require(Role.OPERATOR))]

MAX_PAGE = 1000
MAX_UPSERT = 10_000
IMMUTABLE = ("device_id", "kind")


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
    """One page; ``next_cursor`` fetches the next one and is null on the last page."""

    items: list[DeviceOut]
    next_cursor: str | None


class UpsertResult(BaseModel):
    upserted: int


class _PatchBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_identity(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(name in data for name in IMMUTABLE):
            raise PydanticCustomError(
                "immutable",
                "device_id and kind cannot change; delete the device and register it anew",
            )
        return data


def _patch_fields() -> dict[str, Any]:
    """Every mutable ``Device`` field, optional, with the contract's own constraints."""
    fields: dict[str, Any] = {}
    for name, info in Device.model_fields.items():
        if name in IMMUTABLE:
            continue
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = (annotation | None, None)
    return fields


DevicePatch = create_model(  # type: ignore[call-overload]
    "DevicePatch",
    __base__=_PatchBase,
    __doc__="Registry attributes to change; absent ones stay, null clears an optional one.",
    **_patch_fields(),
)


@router.get("")
async def list_devices(
    *,
    db: Db,
    city: City | None = None,
    kind: Kind | None = None,
    district: Text | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page.")] = None,
) -> DevicePage:
    """Devices in device_id order, filtered by city, kind and district, a page at a time."""
    where = queries.DeviceFilter(city, str(kind) if kind else None, district)
    after = decode_cursor(cursor) if cursor is not None else None
    rows = await queries.list_devices(db, where, after=after, limit=limit + 1)
    items = [DeviceOut.from_record(r) for r in rows[:limit]]
    more = len(rows) > limit
    return DevicePage(items=items, next_cursor=encode_cursor(items[-1].device_id) if more else None)


@router.get("/{device_id}", responses={404: {"description": "not in the registry"}})
async def get_device(device: DeviceDep) -> DeviceOut:
    """One device with its status."""
    return DeviceOut.from_record(device)


@router.post("", dependencies=operator_only)
async def post_devices(
    db: Db, devices: Annotated[list[Device], Body(max_length=MAX_UPSERT)]
) -> UpsertResult:
    """Insert or update registry records (all or none); ``registered_by`` becomes ``api``."""
    repeated = [d for d, n in Counter(d.device_id for d in devices).items() if n > 1]
    if repeated:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "device_id"),
                    "msg": f"device_id {', '.join(repeated[:10])} appears more than once",
                    "type": "duplicate",
                }
            ]
        )
    async with db.transaction():
        count = await upsert_devices(db, devices, registered_by="api")
    return UpsertResult(upserted=count)


@router.patch(
    "/{device_id}",
    dependencies=operator_only,
    responses={404: {"description": "not in the registry"}},
)
async def patch_device(device: DeviceDep, db: Db, patch: DevicePatch) -> DeviceOut:  # type: ignore[valid-type]
    """Change registry attributes; the result must be a valid ``Device`` of its kind."""
    device_id = device["device_id"]
    async with db.transaction():
        current = await queries.lock_registry_row(db, device_id)
        if current is None:
            raise NotFoundError(f"device {device_id!r} is not in the registry")
        merged = {**current, **patch.model_dump(exclude_unset=True)}  # type: ignore[attr-defined]
        try:
            updated = Device.model_validate(merged)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        await upsert_devices(db, [updated], registered_by="api")
    row = await queries.fetch_device(db, device_id)
    assert row is not None  # written above, in this connection
    return DeviceOut.from_record(row)


@router.delete(
    "/{device_id}",
    dependencies=operator_only,
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "not in the registry"}},
)
async def delete_device(device: DeviceDep, db: Db) -> Response:
    """Remove the device from the registry, with its status; its telemetry stays."""
    if not await queries.delete_device(db, device["device_id"]):
        raise NotFoundError(f"device {device['device_id']!r} is not in the registry")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
