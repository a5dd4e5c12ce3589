"""Telemetry time series: one device's, and aggregates over a kind in a city."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import queries
from api.deps import (
    Aggregate,
    Db,
    DeviceDep,
    Window,
    WindowDep,
    check_bucketed_window,
    check_raw_window,
    parse_bucket,
)
from api.errors import InvalidQueryError
from schemas.payloads import TELEMETRY_COLUMNS
from schemas.topics import Kind

router = APIRouter(tags=["series"])

MAX_RAW_ROWS = 10_000
FieldsQuery = Annotated[
    str | None,
    Query(description="Comma-separated telemetry fields of the device's kind; default all."),
]
BucketQuery = Annotated[str | None, Query(description="Bucket size: 30s, 5m, 1h, 1d.")]
AggQuery = Annotated[Aggregate, Query(description="Aggregate per bucket.")]


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
    truncated: bool
    points: list[dict[str, Any]]


class AggregatePoint(BaseModel):
    ts: datetime
    value: float | int | bool | str | None
    n: int
    devices: int


class KindAggregate(BaseModel):
    kind: Kind
    field: str
    city: str | None
    district: str | None
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    bucket: str
    agg: Aggregate
    points: list[AggregatePoint]


def parse_fields(kind: Kind, text: str | None, *, param: str = "fields") -> list[str]:
    """Requested fields, checked against the contract; all of the kind's when absent."""
    known = TELEMETRY_COLUMNS[kind]
    names = list(dict.fromkeys(p.strip() for p in (text or "").split(",") if p.strip()))
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


@router.get("/devices/{device_id}/series", responses={404: {"description": "unknown device"}})
async def get_series(
    *,
    device: DeviceDep,
    db: Db,
    window: WindowDep,
    fields: FieldsQuery = None,
    bucket: BucketQuery = None,
    agg: AggQuery = "avg",
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS, description="Raw rows only.")] = 1000,
) -> Series:
    """Raw readings (no ``bucket``) or ``date_bin`` buckets of one device's telemetry."""
    kind = Kind(device["kind"])
    names = parse_fields(kind, fields)
    if bucket is None:
        return await _raw_series(db, device, names, window, limit)
    size = parse_bucket(bucket)
    check_aggregate(kind, names, agg)
    check_bucketed_window(window, size)
    rows = await queries.fetch_bucketed_series(
        db,
        kind,
        device["device_id"],
        names,
        start=window.start,
        end=window.end,
        bucket=size,
        agg=agg,
    )
    points = [{"ts": r["bucket"], "n": r["n"], **{n: r[n] for n in names}} for r in rows]
    return _series(device, names, window, points, bucket=bucket, agg=agg)


async def _raw_series(
    db: asyncpg.Connection, device: asyncpg.Record, names: list[str], window: Window, limit: int
) -> Series:
    check_raw_window(window)
    rows = await queries.fetch_raw_series(
        db,
        Kind(device["kind"]),
        device["device_id"],
        names,
        start=window.start,
        end=window.end,
        limit=limit + 1,
    )
    points = [dict(r) for r in rows[:limit]]
    return _series(device, names, window, points, truncated=len(rows) > limit)


def _series(
    device: asyncpg.Record,
    names: list[str],
    window: Window,
    points: list[dict[str, Any]],
    *,
    bucket: str | None = None,
    agg: Aggregate | None = None,
    truncated: bool = False,
) -> Series:
    return Series(
        device_id=device["device_id"],
        kind=device["kind"],
        fields=names,
        start=window.start,
        end=window.end,
        bucket=bucket,
        agg=agg,
        truncated=truncated,
        points=points,
    )


@router.get("/aggregates/{kind}")
async def get_kind_aggregate(
    *,
    kind: Kind,
    db: Db,
    window: WindowDep,
    field: Annotated[str, Query(description="One telemetry field of the kind.")],
    city: str | None = None,
    district: str | None = None,
    bucket: Annotated[str, Query(description="Bucket size: 30s, 5m, 1h, 1d.")] = "1h",
    agg: AggQuery = "avg",
) -> KindAggregate:
    """One field aggregated per bucket over every reading of the kind's devices
    in a city (and district), with how many devices reported."""
    names = parse_fields(kind, field, param="field")
    if len(names) != 1:
        raise InvalidQueryError("field", "name exactly one field", rule="one_field", value=field)
    size = parse_bucket(bucket)
    check_aggregate(kind, names, agg)
    check_bucketed_window(window, size)
    rows = await queries.fetch_kind_aggregate(
        db,
        kind,
        names[0],
        queries.DeviceFilter(city=city, district=district),
        start=window.start,
        end=window.end,
        bucket=size,
        agg=agg,
    )
    return KindAggregate(
        kind=kind,
        field=names[0],
        city=city,
        district=district,
        start=window.start,
        end=window.end,
        bucket=bucket,
        agg=agg,
        points=[_aggregate_point(r) for r in rows],
    )


def _aggregate_point(row: asyncpg.Record) -> AggregatePoint:
    return AggregatePoint(ts=row["bucket"], value=row["value"], n=row["n"], devices=row["devices"])
