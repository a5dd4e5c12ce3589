"""Aggregates of a kind over the devices of a city or district, from the area rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import plan_queries
from api.deps import Db, Settings, WindowDep, check_point_budget, parse_bucket
from api.errors import InvalidQueryError
from api.params import Bucket, City, FieldList, Text
from schemas.rollups import ROLLUP_STEP, area_merge
from schemas.topics import Kind

router = APIRouter(prefix="/aggregates", tags=["telemetry"])


class AreaAggregate(BaseModel):
    """Per bucket, the kind's statistics over the devices of the scope, read from
    ``source``. Every point has ``ts`` (the bucket's start; days are local days),
    ``devices`` (the most that reported at once) and the requested statistics
    (docs/rollups.md names them): counts and energy add up, means are over the
    samples, shares are of the summed counts, kW totals are coincident means."""

    kind: Kind
    city: str | None
    district: str | None
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    bucket: str
    source: str
    fields: list[str]
    points: list[dict[str, Any]]


def statistic_names(kind: Kind) -> list[str]:
    return [name for name, _ in area_merge(kind)]


@router.get("/{kind}", responses={400: {"description": "over the point budget"}})
async def get_area_aggregate(
    *,
    kind: Kind,
    db: Db,
    window: WindowDep,
    settings: Settings,
    city: City | None = None,
    district: Text | None = None,
    bucket: Annotated[
        Bucket, Query(description="A multiple of 15 minutes: 15m, 30m, 1h, 6h, 1d, 7d.")
    ] = "1h",
    fields: Annotated[
        FieldList | None, Query(description="Statistics to return (default: all of the kind).")
    ] = None,
) -> AreaAggregate:
    """The kind's statistics per bucket over every device of a city (and district), or
    of every city. Read from the area rollup that fits the bucket (15-minute or hourly;
    ``1d`` buckets are the scope's local days), so the cost does not grow with devices."""
    size = parse_bucket(bucket)
    if size % ROLLUP_STEP:
        raise InvalidQueryError(
            "bucket", "a multiple of 15 minutes (rollups start there)", rule="bucket_rollup"
        )
    check_point_budget(window, size, settings.api_point_budget)
    known = statistic_names(kind)
    wanted = known if fields is None else fields.split(",")
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise InvalidQueryError(
            "fields",
            f"unknown {kind} statistic(s) {', '.join(unknown)}; known: {', '.join(known)}",
            rule="unknown_field",
        )
    source, rows = await plan_queries.area_aggregate(
        db, kind, city=city, district=district, start=window.start, end=window.end, bucket=size
    )
    return AreaAggregate(
        kind=kind,
        city=city,
        district=district,
        start=window.start,
        end=window.end,
        bucket=bucket,
        source=source,
        fields=wanted,
        points=[{"ts": r["bucket"], **{f: r[f] for f in wanted}} for r in rows],
    )
