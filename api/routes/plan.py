"""Plan indicators over periods: the catalogue, and one indicator of a scope, per local
day, week or month, with its target and the gap (``citytel_indicator`` in the database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, StringConstraints

from api import plan_queries, queries
from api.deps import Db, Settings, TimeRangeDep
from api.errors import NotFoundError, PointBudgetError
from api.params import City, Text
from schemas.topics import Kind

router = APIRouter(prefix="/indicators", tags=["indicators"])

Period = Literal["day", "week", "month"]
IndicatorName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_PERIOD_DAYS = {"day": 1, "week": 7, "month": 31}
_DEFAULT_SPAN = {
    "day": timedelta(days=30),
    "week": timedelta(weeks=12),
    "month": timedelta(days=365),
}
MAX_SPAN = timedelta(days=3660)


class Target(BaseModel):
    """A plan target as stored."""

    id: int
    indicator: str
    scope_type: Literal["city", "province"]
    scope: str
    comparison: Literal[">=", "<="]
    value: float
    due: date
    note: str | None
    updated_at: datetime


class CatalogueEntry(BaseModel):
    """An indicator: what it measures, in which unit, how; and its targets."""

    name: str
    kind: Kind | None
    unit: str
    title: str
    definition: str
    targets: list[Target]


class TargetShown(BaseModel):
    value: float
    due: date


class Point(BaseModel):
    """One local period: ``value`` (null when its denominator is 0) and, for ratios and
    counts, the ``numerator`` and ``denominator`` it was computed from."""

    start: datetime
    end: datetime
    value: float | None
    numerator: int | float | None
    denominator: int | float | None


class MixPoint(Point):
    """A period of ``signal_mode_mix``: also the share of every run mode."""

    parts: dict[str, float | None]


class Total(BaseModel):
    """The indicator over the whole range; ``gap`` = value - target (null without one)."""

    value: float | None
    numerator: int | float | None
    denominator: int | float | None
    gap: float | None


class IndicatorSeries(BaseModel):
    indicator: str
    unit: str
    scope: dict[str, str]
    target: TargetShown | None
    points: list[Point | MixPoint]
    total: Total


async def get_entry(
    name: Annotated[IndicatorName, Path(description="An indicator of the catalogue.")], db: Db
) -> asyncpg.Record:
    entry = await plan_queries.catalogue_entry(db, name)
    if entry is None:
        raise NotFoundError(f"no indicator {name!r}; GET /v1/indicators lists them")
    return entry


EntryDep = Annotated[asyncpg.Record, Depends(get_entry)]


@router.get("")
async def list_catalogue(db: Db) -> list[CatalogueEntry]:
    """Every indicator: name, unit, definition and plan targets."""
    targets: dict[str, list[Target]] = {}
    for row in await plan_queries.list_targets(db):
        targets.setdefault(row["indicator"], []).append(Target.model_validate(dict(row)))
    return [
        CatalogueEntry.model_validate({**row, "targets": targets.get(row["name"], [])})
        for row in await plan_queries.list_catalogue(db)
    ]


@router.get("/{name}", responses={404: {"description": "unknown indicator or city"}})
async def get_indicator(
    *,
    entry: EntryDep,
    db: Db,
    settings: Settings,
    time_range: TimeRangeDep,
    city: City | None = None,
    district: Text | None = None,
    period: Annotated[Period, Query(description="Local day, week (from Monday) or month.")] = "day",
) -> IndicatorSeries:
    """The indicator per local period of the scope (a city, a district of it, or every
    city when ``city`` is absent) over ``from``/``to``, with the total over the range,
    the target that applies and the gap. ``to`` defaults to now, ``from`` to 30 days (12
    weeks, a year) before; both move out to local midnight."""
    end = time_range.end or datetime.now(UTC)
    start = time_range.start or end - _DEFAULT_SPAN[period]
    _check_budget(start, end, period, settings.api_point_budget)
    if city is not None and not await queries.city_registered(db, city):
        raise NotFoundError(f"city {city!r} has no registered devices")
    name = entry["name"]
    rows = await plan_queries.indicator_points(
        db, name, city=city, district=district, start=start, end=end, period=period
    )
    zone = ZoneInfo(await _time_zone(db, city))
    parts = {}
    if name == "signal_mode_mix":
        parts = await plan_queries.mode_mix(
            db, city=city, district=district, start=start, end=end, period=period
        )
    target = await plan_queries.applicable_target(db, name, city, end)
    points: list[Point | MixPoint] = [
        _point(r, zone, parts.get(r["period_start"]) if parts else None)
        for r in rows
        if not r["is_total"]
    ]
    total = next((r for r in rows if r["is_total"]), None)
    return IndicatorSeries(
        indicator=name,
        unit=entry["unit"],
        scope=await _scope(db, city, district),
        target=TargetShown(value=target["value"], due=target["due"]) if target else None,
        points=points,
        total=_total(total, target),
    )


def _check_budget(start: datetime, end: datetime, period: Period, budget: int) -> None:
    if end - start > MAX_SPAN:
        raise PointBudgetError(f"from/to spans more than {MAX_SPAN.days} days")
    periods = (end - start) / timedelta(days=_PERIOD_DAYS[period])
    if periods > budget:
        raise PointBudgetError(f"from/to holds about {periods:.0f} periods, over {budget}")


async def _time_zone(db: asyncpg.Connection, city: str | None) -> str:
    return str(
        await db.fetchval("SELECT (citytel_city_settings(coalesce($1::text, '*'))).time_zone", city)
    )


async def _scope(db: asyncpg.Connection, city: str | None, district: str | None) -> dict[str, str]:
    if city is None:
        scope = {"province": await plan_queries.default_province(db)}
    else:
        scope = {"city": city}
    if district is not None:
        scope["district"] = district
    return scope


def _number(value: float | None) -> int | float | None:
    """Counts as integers (5, not 5.0), everything else as it is."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value


def _point(row: asyncpg.Record, zone: ZoneInfo, parts: dict[str, float | None] | None) -> Point:
    values = {
        "start": row["period_start"].astimezone(zone),
        "end": row["period_end"].astimezone(zone),
        "value": row["value"],
        "numerator": _number(row["numerator"]),
        "denominator": _number(row["denominator"]),
    }
    if parts is not None:
        return MixPoint(**values, parts=parts)
    return Point(**values)


def _total(row: asyncpg.Record | None, target: asyncpg.Record | None) -> Total:
    if row is None:
        return Total(value=None, numerator=None, denominator=None, gap=None)
    value = row["value"]
    gap = None if value is None or target is None else value - target["value"]
    return Total(
        value=value,
        numerator=_number(row["numerator"]),
        denominator=_number(row["denominator"]),
        gap=gap,
    )
