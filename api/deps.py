"""Request dependencies: the pooled connection, the caller's key and role, the device in
the path, time windows and the point budget."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api import queries
from api.errors import (
    UNREACHABLE_ERRORS,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidQueryError,
    NotFoundError,
    PointBudgetError,
    UnauthenticatedError,
)
from api.keys import Principal, Role, UsageRecorder, authenticate_key, parse_key
from api.params import Bucket, DeviceId, Instant
from core.settings import ApiSettings

API_PREFIX = "/v1"
ACQUIRE_TIMEOUT_S = 5.0
DEFAULT_WINDOW = timedelta(days=1)
MAX_RAW_SPAN = timedelta(days=7)
MAX_BUCKETED_SPAN = timedelta(days=400)

Aggregate = Literal["avg", "min", "max", "sum", "last"]
_BUCKET_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


Settings = Annotated[ApiSettings, Depends(get_settings)]


def get_pool(request: Request) -> asyncpg.Pool:
    """The pool the lifespan opened."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]


@asynccontextmanager
async def pooled_connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` for the block; 503 when none can be had."""
    try:
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    except (*UNREACHABLE_ERRORS, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc}") from exc
    try:
        yield conn
    finally:
        await pool.release(conn)


async def get_db(pool: Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the pool for the duration of the request."""
    async with pooled_connection(pool) as conn:
        yield conn


Db = Annotated[asyncpg.Connection, Depends(get_db)]

# --- who is calling: API keys and roles -------------------------------------------------

_KEY_FORMAT = "ctk_<id>_<secret>, as `citytel keys create` or POST /v1/keys printed it"
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="ctk_<id>_<secret>",
    description=f"An API key in `Authorization: Bearer <key>`: {_KEY_FORMAT}.",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description=f"An API key in the `X-API-Key` header: {_KEY_FORMAT}.",
)


def get_usage_recorder(request: Request) -> UsageRecorder:
    recorder: UsageRecorder = request.app.state.key_usage
    return recorder


async def authenticate(
    db: Db,
    usage: Annotated[UsageRecorder, Depends(get_usage_recorder)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The principal of the request's API key (Bearer or X-API-Key); 401 without one."""
    return await _principal(db, usage, bearer, header)


async def _principal(
    db: asyncpg.Connection,
    usage: UsageRecorder,
    bearer: HTTPAuthorizationCredentials | None,
    header: str | None,
) -> Principal:
    presented = bearer.credentials if bearer is not None else header
    if not presented:
        raise UnauthenticatedError(
            "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
        )
    key = parse_key(presented)
    principal = None if key is None else await authenticate_key(db, key)
    if principal is None:
        raise UnauthenticatedError("the API key is not valid (unknown, malformed or revoked)")
    await usage.record(db, principal.key_id)
    return principal


RoleCheck = Callable[..., Coroutine[Any, Any, Principal]]
_REQUIRED_ROLES: dict[RoleCheck, Role] = {}


@functools.cache
def require(role: Role) -> RoleCheck:
    """The dependency that lets through keys of ``role`` or above: the one role check.

    Cached, so each role has one dependency and FastAPI runs it once per request.
    """

    async def check_role(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return _check_role(principal, role)

    _REQUIRED_ROLES[check_role] = role
    return check_role


def _check_role(principal: Principal, role: Role) -> Principal:
    if not principal.role.allows(role):
        raise ForbiddenError(
            f"this operation needs the {role} role; key {principal.key_id} is {principal.role}"
        )
    return principal


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def required_role(dependant: Dependant) -> Role | None:
    """The highest role a route's dependencies require; None for an open route."""
    found: list[Role] = []
    pending = [dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call in _REQUIRED_ROLES:
            found.append(_REQUIRED_ROLES[dependant.call])
        pending.extend(dependant.dependencies)
    return max(found, key=lambda r: r.rank, default=None)


def request_role(request: Request) -> Role | None:
    """The role a request's path needs: its route's, and at least viewer under /v1
    (an unknown /v1 path too); None outside /v1."""
    if not request.url.path.startswith(f"{API_PREFIX}/"):
        return None
    dependant = getattr(request.scope.get("route"), "dependant", None)
    found = required_role(dependant) if dependant is not None else None
    return found if found is not None and found.allows(Role.VIEWER) else Role.VIEWER


async def authorize_request(request: Request, role: Role) -> Principal:
    """The checks of :func:`require` for a request FastAPI answers before dependencies
    run (a path that matches nothing, a body that is not JSON): its key, then its role."""
    bearer, header = await _bearer(request), await _api_key_header(request)
    async with pooled_connection(get_pool(request)) as conn:
        principal = await _principal(conn, get_usage_recorder(request), bearer, header)
    return _check_role(principal, role)


# --- the device in the path -------------------------------------------------------------


async def get_device(
    device_id: Annotated[DeviceId, Path(description="Registry id of the device.")], db: Db
) -> asyncpg.Record:
    """The registry row (with status) of the path's device; the one place for the 404."""
    device = await queries.fetch_device(db, device_id)
    if device is None:
        raise NotFoundError(f"device {device_id!r} is not in the registry")
    return device


DeviceDep = Annotated[asyncpg.Record, Depends(get_device)]

# --- time windows, buckets and the point budget ----------------------------------------


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Optional bounds: ``start`` inclusive, ``end`` exclusive."""

    start: datetime | None
    end: datetime | None


def get_time_range(
    start: Annotated[
        Instant | None,
        Query(alias="from", description="Inclusive start, RFC 3339 with offset."),
    ] = None,
    end: Annotated[
        Instant | None,
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


def parse_bucket(text: Bucket) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` as a timedelta (the type checked the form)."""
    return timedelta(**{_BUCKET_UNITS[text[-1]]: int(text[:-1])})


def check_point_budget(window: Window, bucket: timedelta | None, budget: int) -> None:
    """Refuse (400 ``point_budget``) a request that would return too many points, before
    any query runs: raw readings over more than 7 days, buckets over more than 400
    days, or more buckets than ``budget``."""
    if bucket is None:
        if window.span > MAX_RAW_SPAN:
            raise _over_budget(
                "from", f"raw readings span at most {MAX_RAW_SPAN.days} days; set a bucket"
            )
        return
    if window.span > MAX_BUCKETED_SPAN:
        raise _over_budget("from", f"buckets span at most {MAX_BUCKETED_SPAN.days} days")
    points = window.span / bucket
    if points > budget:
        raise _over_budget(
            "bucket",
            f"from/to holds {points:.0f} buckets of this size, more than the budget of {budget}"
            "; use a larger bucket or a shorter window",
        )


def _over_budget(param: str, message: str) -> PointBudgetError:
    return PointBudgetError(
        message, details=[{"loc": ["query", param], "msg": message, "type": "point_budget"}]
    )
