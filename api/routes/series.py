"""Telemetry of one device: its newest reading, and its time series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api import queries
from api.deps import (
    Aggregate,
    Db,
    DeviceDep,
    Settings,
    Window,
    WindowDep,
    check_point_budget,
    parse_bucket,
)
from api.errors import InvalidQueryError
from api.params import Bucket, FieldList
from schemas.payloads import TELEMETRY_COLUMNS, TELEMETRY_TABLES
from schemas.topics import Kind

router = APIRouter(tags=["telemetry"])

MAX_RAW_ROWS = 10_000
FieldsQuery = Annotated[
    FieldList | None,
    Query(description="Comma-separated telemetry fields of the device's kind; default all."),
]
AggQuery = Annotated[Aggregate, Query(description="Aggregate per bucket.")]


class Status(BaseModel):
    """The device's last status message; null before the first."""

    online: bool | None
    last_seen: datetime | None
    fw: str | None


class Latest(BaseModel):
    """The newest telemetry row (``ts`` and one key per contract field; null when the
    device never reported) and the device's status."""

    device_id: str
    kind: Kind
    status: Status
    reading: dict[str, Any] | None


class Series(BaseModel):
    """Points in time order; each has ``ts`` and one key per field.

    Bucketed points start at ``ts`` and also carry ``n``, the readings in the bucket.
    """

    device_id: str
    kind: Kind
    fields: list[str]
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    bucket: str | None
    agg: Aggregate | None
    sources: list[str] = Field(
        description="Relations read, oldest points first: the device's rollup for buckets"
        " whose raw rows are past retention, then the raw table."
    )
    truncated: bool
    points: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """Window, bucket (None for raw readings) and aggregate, within the point budget."""

    window: Window
    bucket: str | None
    size: timedelta | None
    agg: Aggregate


def get_series_request(
    window: WindowDep,
    settings: Settings,
    bucket: Annotated[Bucket | None, Query(description="Bucket size: 30s, 5m, 1h, 1d.")] = None,
    agg: AggQuery = "avg",
) -> SeriesRequest:
    """The series asked for, refused (400 ``point_budget``) before any query when too big."""
    size = parse_bucket(bucket) if bucket is not None else None
    check_point_budget(window, size, settings.api_point_budget)
    return SeriesRequest(window, bucket, size, agg)


SeriesRequestDep = Annotated[SeriesRequest, Depends(get_series_request)]


def parse_fields(kind: Kind, text: str | None, *, param: str = "fields") -> list[str]:
    """Requested fields, checked against the contract; all of the kind's when absent."""
    known = TELEMETRY_COLUMNS[kind]
    names = list(dict.fromkeys(p for p in (text or "").split(",") if p))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidQueryError(
            param,
            f"unknown {kind} field(s) {', '.join(unknown)}; known: {', '.join(known)}",
            rule="unknown_field",
            value=text,
        )
    return names or list(known)


def check_aggregate(kind: Kind, fields: list[str], agg: str) -> None:
    """Text fields (a signal's ``mode``) only have ``last``."""
    text = [f for f in fields if queries.column_type(kind, f) == "text"]
    if text and agg != "last":
        raise InvalidQueryError(
            "agg", f"field(s) {', '.join(text)} are text; only agg=last applies", rule="agg_type"
        )


@router.get("/devices/{device_id}/latest", responses={404: {"description": "unknown device"}})
async def get_latest(device: DeviceDep, db: Db) -> Latest:
    """The device's newest telemetry row and its status."""
    row = await queries.fetch_latest(db, Kind(device["kind"]), device["device_id"])
    return Latest(
        device_id=device["device_id"],
        kind=device["kind"],
        status=Status(online=device["online"], last_seen=device["last_seen"], fw=device["fw"]),
        reading=dict(row) if row is not None else None,
    )


@router.get(
    "/devices/{device_id}/series",
    responses={
        400: {"description": "over the point budget"},
        404: {"description": "unknown device"},
    },
)
async def get_series(
    *,
    request: SeriesRequestDep,
    device: DeviceDep,
    db: Db,
    fields: FieldsQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS, description="Raw rows only.")] = 1000,
) -> Series:
    """Raw readings (no ``bucket``) or ``date_bin`` buckets of one device's telemetry.

    Buckets older than the device's raw rows (past retention) come from its rollup
    when the bucket is a multiple of 15 minutes and every field has a rollup
    statistic for ``agg``; ``sources`` says what was read."""
    kind = Kind(device["kind"])
    names = parse_fields(kind, fields)
    what = (db, kind, device["device_id"], names)
    bounds = {"start": request.window.start, "end": request.window.end}
    if request.size is None:
        rows = await queries.fetch_raw_series(*what, **bounds, limit=limit + 1)
        points = [dict(r) for r in rows[:limit]]
        sources = [TELEMETRY_TABLES[kind]]
        return _series(device, names, request, points, sources, truncated=len(rows) > limit)
    check_aggregate(kind, names, request.agg)
    series = await queries.fetch_bucketed_series(
        *what, **bounds, bucket=request.size, agg=request.agg
    )
    points = [{"ts": r["bucket"], "n": r["n"], **{n: r[n] for n in names}} for r in series.rows]
    return _series(device, names, request, points, series.sources)


def _series(
    device: asyncpg.Record,
    names: list[str],
    request: SeriesRequest,
    points: list[dict[str, Any]],
    sources: list[str],
    *,
    truncated: bool = False,
) -> Series:
    return Series(
        device_id=device["device_id"],
        kind=device["kind"],
        fields=names,
        start=request.window.start,
        end=request.window.end,
        bucket=request.bucket,
        agg=request.agg if request.bucket is not None else None,
        sources=sources,
        truncated=truncated,
        points=points,
    )
