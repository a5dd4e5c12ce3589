"""Request dependencies: the pooled connection, the device in the path, time windows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import asyncpg
from fastapi import Depends, Path, Query, Request
from pydantic import AwareDatetime

from api import queries
from api.errors import DatabaseUnavailableError, InvalidQueryError, NotFoundError

ACQUIRE_TIMEOUT_S = 5.0
DEFAULT_WINDOW = timedelta(days=1)
MAX_RAW_SPAN = timedelta(days=7)
MAX_BUCKETED_SPAN = timedelta(days=400)
MAX_BUCKETS = 10_000

Aggregate = Literal["avg", "min", "max", "sum", "last"]
_BUCKET_RE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_BUCKET_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def get_pool(request: Request) -> asyncpg.Pool:
    """The pool the lifespan opened."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]


async def get_db(pool: Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the pool for the duration of the request."""
    try:
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc}") from exc
    try:
        yield conn
    finally:
        await pool.release(conn)


Db = Annotated[asyncpg.Connection, Depends(get_db)]


async def get_device(
    device_id: Annotated[str, Path(description="Registry id of the device.")], db: Db
) -> asyncpg.Record:
    """The registry row (with status) of the path's device; the one place for the 404."""
    device = await queries.fetch_device(db, device_id)
    if device is None:
        raise NotFoundError(f"device {device_id!r} is not in the registry")
    return device


DeviceDep = Annotated[asyncpg.Record, Depends(get_device)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Optional bounds: ``start`` inclusive, ``end`` exclusive."""

    start: datetime | None
    end: datetime | None


def get_time_range(
    start: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Inclusive start, RFC 3339 with offset."),
    ] = None,
    end: Annotated[
        AwareDatetime | None,
        Query(alias="to", description="Exclusive end, RFC 3339 with offset."),
    ] = None,
) -> TimeRange:
    if start is not None and end is not None and start >= end:
        raise InvalidQueryError("from", "from must be before to", rule="time_range", value=start)
    return TimeRange(start, end)


TimeRangeDep = Annotated[TimeRange, Depends(get_time_range)]


@dataclass(frozen=True, slots=True)
class Window:
    """Closed bounds for telemetry queries: ``start`` inclusive, ``end`` exclusive."""

    start: datetime
    end: datetime

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def get_window(time_range: TimeRangeDep) -> Window:
    """The requested window; ``to`` defaults to now and ``from`` to one day before ``to``."""
    end = time_range.end or datetime.now(UTC)
    start = time_range.start or end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidQueryError(
            "from", "from must be before to (to defaults to now)", rule="time_range", value=start
        )
    return Window(start, end)


WindowDep = Annotated[Window, Depends(get_window)]


def parse_bucket(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` as a timedelta; :class:`InvalidQueryError` otherwise."""
    match = _BUCKET_RE.match(text)
    if match is None:
        raise InvalidQueryError(
            "bucket",
            "bucket must be a whole number and a unit s, m, h or d (e.g. 30s, 5m, 1h, 1d)",
            rule="bucket_format",
            value=text,
        )
    return timedelta(**{_BUCKET_UNITS[match[2]]: int(match[1])})


def check_raw_window(window: Window) -> None:
    if window.span > MAX_RAW_SPAN:
        raise InvalidQueryError(
            "from",
            f"raw rows span at most {MAX_RAW_SPAN.days} days; narrow from/to or set a bucket",
            rule="range_too_large",
        )


def check_bucketed_window(window: Window, bucket: timedelta) -> None:
    if window.span > MAX_BUCKETED_SPAN:
        raise InvalidQueryError(
            "from",
            f"aggregates span at most {MAX_BUCKETED_SPAN.days} days; narrow from/to",
            rule="range_too_large",
        )
    if window.span / bucket > MAX_BUCKETS:
        raise InvalidQueryError(
            "bucket",
            f"from/to holds more than {MAX_BUCKETS} buckets of this size; use a larger bucket",
            rule="too_many_buckets",
        )
