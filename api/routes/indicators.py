"""City indicators: signal-timing coverage, pole online rate, feed freshness, renewable
self-consumption, read from the metric views (``schemas/sql/003_indicators.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from api import queries
from api.deps import Db
from api.errors import NotFoundError
from api.params import City
from schemas.topics import Kind

# The current snapshot per city lives under /indicators/now; period indicators
# (/indicators, /indicators/{name}) are declared after these routes, so "now" wins.
router = APIRouter(prefix="/indicators", tags=["indicators"])


class SignalTimingCoverage(BaseModel):
    """View ``signal_timing_coverage``: registered signalized intersections whose
    controller's newest mode in the last 15 minutes is adaptive or coordinated."""

    intersections: int
    reporting: int
    intelligent: int
    coverage_pct: float
    target_pct: float


class PoleOnlineRate(BaseModel):
    """View ``pole_online_rate``: poles that say online and were heard within 3 intervals."""

    poles: int
    online: int
    online_pct: float


class FeedFreshness(BaseModel):
    """View ``feed_freshness``, one kind: fresh = heard within 3 reporting intervals.
    Ages are over the devices heard at least once (null when none was)."""

    kind: Kind
    devices: int
    fresh: int
    stale: int
    fresh_pct: float
    median_age_s: float | None
    max_age_s: float | None


class RenewableSelfConsumption(BaseModel):
    """View ``renewable_self_consumption``, last hour: ``sites`` that reported, of which
    ``generating_sites`` generated; ``self_consumption_pct`` is the mean over those
    (null when no site generated)."""

    sites: int
    generating_sites: int
    self_consumption_pct: float | None


class CityIndicators(BaseModel):
    """A city's indicators; an indicator is null when the city has no such devices
    (no registered signals or poles, no energy site reporting in the last hour)."""

    city: str
    signal_timing_coverage: SignalTimingCoverage | None
    pole_online_rate: PoleOnlineRate | None
    feed_freshness: list[FeedFreshness]
    renewable_self_consumption: RenewableSelfConsumption | None


async def get_city(
    city: Annotated[City, Path(description="City name, as in the registry.")], db: Db
) -> str:
    """The path's city, when it has registered devices; the one place for its 404."""
    if not await queries.city_registered(db, city):
        raise NotFoundError(f"city {city!r} has no registered devices")
    return city


CityDep = Annotated[str, Depends(get_city)]


def _by_city(rows: Sequence[asyncpg.Record]) -> dict[str, asyncpg.Record]:
    return {r["city"]: r for r in rows}


def _assemble(rows: queries.IndicatorRows) -> list[CityIndicators]:
    timing, poles = _by_city(rows.timing), _by_city(rows.poles)
    energy = _by_city(rows.self_consumption)
    result = []
    for city in rows.cities:
        t, p, e = timing.get(city), poles.get(city), energy.get(city)
        result.append(
            CityIndicators(
                city=city,
                signal_timing_coverage=SignalTimingCoverage.model_validate(dict(t)) if t else None,
                pole_online_rate=PoleOnlineRate.model_validate(dict(p)) if p else None,
                feed_freshness=[
                    FeedFreshness.model_validate(dict(r))
                    for r in rows.freshness
                    if r["city"] == city
                ],
                renewable_self_consumption=(
                    RenewableSelfConsumption.model_validate(dict(e)) if e else None
                ),
            )
        )
    return result


@router.get("/now")
async def list_indicators(db: Db, city: City | None = None) -> list[CityIndicators]:
    """Indicators now, of every city with registered devices (or only ``city``), by name."""
    return _assemble(await queries.fetch_indicators(db, city))


@router.get("/now/{city}", responses={404: {"description": "no registered devices in the city"}})
async def get_indicators(db: Db, city: CityDep) -> CityIndicators:
    """Indicators of one city now."""
    (indicators,) = _assemble(await queries.fetch_indicators(db, city))
    return indicators
