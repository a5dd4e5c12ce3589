"""Errors of the HTTP API. Each has a status and a machine code; ``api.handlers`` renders
every error, ours, FastAPI's and Starlette's, as one JSON shape:

``{"error": {"code": "...", "message": "...", "details": [...]}}``

``details`` is present when there is more to say than one line, e.g. one entry per
invalid parameter with ``loc``, ``msg`` and ``type``.
"""

from __future__ import annotations

from typing import Any

import asyncpg


class ApiError(Exception):
    """Base class: a request that cannot be answered as asked."""

    status_code = 500
    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class PointBudgetError(ApiError):
    """A series or aggregate would hold more points than a request may (400). Raised
    before any query runs."""

    status_code = 400
    code = "point_budget"


class InvalidCursorError(ApiError):
    """A pagination cursor that this API did not hand out (400)."""

    status_code = 400
    code = "invalid_cursor"


class UnauthenticatedError(ApiError):
    """No API key, or one that is malformed, unknown or revoked (401)."""

    status_code = 401
    code = "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(ApiError):
    """A valid key whose role does not allow the operation (403)."""

    status_code = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """The resource named in the path does not exist (404)."""

    status_code = 404
    code = "not_found"


class ConflictError(ApiError):
    """The request contradicts the current state, e.g. revoking a revoked key (409)."""

    status_code = 409
    code = "conflict"


class InvalidQueryError(ApiError):
    """A parameter is well-formed but breaks a rule of ours (422), in the same shape as
    FastAPI's validation errors: ``rule`` becomes the detail's ``type``."""

    status_code = 422
    code = "validation_error"

    def __init__(
        self, param: str, message: str, *, rule: str, value: Any = None, where: str = "query"
    ) -> None:
        detail = {"loc": [where, param], "msg": message, "type": rule}
        super().__init__(f"invalid request: {where}.{param}: {message}", details=[detail])
        self.param = param
        self.rule = rule
        self.value = value


class InvalidValueError(ApiError):
    """The database refused a value the request carried (422)."""

    status_code = 422
    code = "invalid_value"


class DatabaseUnavailableError(ApiError):
    """The database cannot be reached, at start-up or for a request (503)."""

    status_code = 503
    code = "database_unavailable"


class DatabaseTimeoutError(DatabaseUnavailableError):
    """A statement ran past its timeout (503)."""

    code = "database_timeout"


class NotReadyError(ApiError):
    """``/readyz``: the database answers but its schema is not the one this API expects
    (migrations pending or changed) (503)."""

    status_code = 503
    code = "not_ready"


# Errors that mean the database, not the request, is the problem.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.InsufficientResourcesError,
)


def database_error(exc: BaseException) -> ApiError | None:
    """What a foreseeable database error means for the client; None for the unexpected.

    Data exceptions (SQLSTATE class 22) and constraint violations come from values the
    request carried; the connection-level ones from the database being away.
    """
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        # The driver's own DataError: it could not encode an argument (e.g. out of range).
        return InvalidValueError(f"the database cannot store a value: {_first_line(exc)}")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return DatabaseTimeoutError(f"the database did not answer in time: {exc}")
    if isinstance(exc, UNREACHABLE_ERRORS):
        return DatabaseUnavailableError(f"database unreachable: {exc}")
    if isinstance(exc, asyncpg.UniqueViolationError | asyncpg.ExclusionViolationError):
        return ConflictError(f"conflicts with a stored row: {_first_line(exc)}")
    if isinstance(
        exc,
        asyncpg.DataError
        | asyncpg.IntegrityConstraintViolationError
        | asyncpg.CardinalityViolationError
        | asyncpg.ProgramLimitExceededError,
    ):
        return InvalidValueError(f"the database refused a value: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
