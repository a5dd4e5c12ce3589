"""Feed health: which devices reported what they should have, per device and summed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import plan_queries
from api.deps import Db, TimeRangeDep
from api.errors import PointBudgetError
from api.params import City
from schemas.topics import Kind

router = APIRouter(prefix="/feeds", tags=["feeds"])
MAX_SPAN = timedelta(days=400)


class FeedFigures(BaseModel):
    """``completeness`` = samples (at most what each device's interval allows per hour)
    / samples expected since ``installed_at``, over whole hours of the window. Dead
    letters and duplicates count by the hour they were received."""

    samples: int
    expected: float
    completeness: float | None
    dead_letters: int
    duplicates: int
    dead_letters_per_hour: float
    duplicates_per_hour: float


class DeviceFeed(FeedFigures):
    """One device."""

    device_id: str
    kind: Kind
    city: str
    district: str | None
    interval_s: float
    last_seen: datetime | None
    age_s: float | None
    fresh: bool


class FeedSummary(FeedFigures):
    """A city's devices of one kind, summed."""

    city: str
    kind: Kind
    devices: int
    fresh: int


def _window(time_range: TimeRangeDep) -> tuple[datetime, datetime]:
    end = time_range.end or datetime.now(UTC)
    start = time_range.start or end - timedelta(days=1)
    if end - start > MAX_SPAN:
        raise PointBudgetError(f"from/to spans more than {MAX_SPAN.days} days")
    return start, end


@router.get("/health")
async def device_health(
    *,
    db: Db,
    time_range: TimeRangeDep,
    city: City | None = None,
    kind: Kind | None = None,
    below: Annotated[
        float | None, Query(ge=0, le=1, description="Only devices less complete than this.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 1000,
) -> list[DeviceFeed]:
    """Per device, least complete first. ``from``/``to`` default to the last 24 hours."""
    start, end = _window(time_range)
    rows = await plan_queries.feed_health(
        db,
        start=start,
        end=end,
        city=city,
        kind=str(kind) if kind else None,
        below=below,
        limit=limit,
    )
    return [DeviceFeed.model_validate(dict(r)) for r in rows]


@router.get("/health/summary")
async def health_summary(
    *, db: Db, time_range: TimeRangeDep, city: City | None = None, kind: Kind | None = None
) -> list[FeedSummary]:
    """Per city and kind: devices, fresh devices, completeness, dead letters, duplicates."""
    start, end = _window(time_range)
    rows = await plan_queries.feed_health_summary(
        db, start=start, end=end, city=city, kind=str(kind) if kind else None
    )
    return [FeedSummary.model_validate(dict(r)) for r in rows]
