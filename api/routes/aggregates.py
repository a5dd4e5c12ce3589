"""Aggregates of one field over every device of a kind in a city (and district)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import queries
from api.deps import Aggregate, Db, Settings, WindowDep, check_point_budget, parse_bucket
from api.errors import InvalidQueryError
from api.params import Bucket, City, FieldList, Text
from api.routes.series import AggQuery, check_aggregate, parse_fields
from schemas.topics import Kind

router = APIRouter(prefix="/aggregates", tags=["telemetry"])


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


@router.get("/{kind}", responses={400: {"description": "over the point budget"}})
async def get_kind_aggregate(
    *,
    kind: Kind,
    db: Db,
    window: WindowDep,
    settings: Settings,
    field: Annotated[FieldList, Query(description="One telemetry field of the kind.")],
    city: City | None = None,
    district: Text | None = None,
    bucket: Annotated[Bucket, Query(description="Bucket size: 30s, 5m, 1h, 1d.")] = "1h",
    agg: AggQuery = "avg",
) -> KindAggregate:
    """One field aggregated per bucket over every reading of the kind's devices
    in a city (and district), with how many devices reported."""
    size = parse_bucket(bucket)
    check_point_budget(window, size, settings.api_point_budget)
    names = parse_fields(kind, field, param="field")
    if len(names) != 1:
        raise InvalidQueryError("field", "name exactly one field", rule="one_field", value=field)
    check_aggregate(kind, names, agg)
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
