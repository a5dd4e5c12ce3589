"""One JSON shape for every error: ours, FastAPI's validation errors, Starlette's HTTP
errors, foreseeable database errors, and the unexpected (500 ``internal``, logged with
its traceback). See :mod:`api.errors` for the shape and the codes."""

from __future__ import annotations

import http
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import authorize_request, request_role
from api.errors import UNREACHABLE_ERRORS, ApiError, database_error

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}
_MAX_DETAILS = 50


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error shape: ``{"error": {"code", "message", "details"?}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = list(details)
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for error in (asyncpg.PostgresError, *UNREACHABLE_ERRORS):
        app.add_exception_handler(error, _database_error)
    app.add_middleware(CatchAllMiddleware)


def render_api_error(request: Request, exc: ApiError) -> JSONResponse:
    if exc.status_code >= 500:
        logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(
        exc.status_code, exc.code, exc.message, details=exc.details, headers=exc.headers
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return render_api_error(request, exc)


async def _refused_first(request: Request) -> JSONResponse | None:
    """401 or 403 for a /v1 request without a key of the right role, or None.

    FastAPI matches the path and decodes a JSON body before any dependency runs, so
    those refusals (404, 405, a body that is not JSON) could otherwise reach a caller
    without a key; they are checked here first, with the dependency's own checks."""
    role = request_role(request)
    if role is None:
        return None
    try:
        await authorize_request(request, role)
    except ApiError as refusal:
        return render_api_error(request, refusal)
    except (asyncpg.PostgresError, *UNREACHABLE_ERRORS) as exc:
        return await _database_error(request, exc)
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if refused := await _refused_first(request):
        return refused
    details = [_validation_detail(e) for e in exc.errors()[:_MAX_DETAILS]]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    message = f"invalid request: {where}: {first['msg']}{more}"
    return error_response(422, "validation_error", message, details=details)


def _validation_detail(error: dict[str, Any]) -> dict[str, Any]:
    """``loc``, ``msg`` and ``type`` of one pydantic error; the input is not echoed."""
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return {"loc": list(error.get("loc", ())), "msg": msg, "type": str(error.get("type"))}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if refused := await _refused_first(request):
        return refused
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    message = f"{detail}: {request.method} {request.url.path}"
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    translated = database_error(exc)
    if translated is None:
        return _internal_error(request, exc)
    return render_api_error(request, translated)


def _internal_error(request: Request | None, exc: BaseException) -> JSONResponse:
    where = f"{request.method} {request.url.path}" if request is not None else "request"
    logger.error("%s failed with an unexpected error", where, exc_info=exc)
    return error_response(500, "internal", "internal error; it has been logged")


def _phrase(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return f"HTTP {status_code}"


class CatchAllMiddleware:
    """Renders an exception no handler took as a 500 ``internal`` error in the JSON
    shape, logged once with its traceback; Starlette's own last resort would answer in
    plain text and re-raise it to the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for another response; the server closes the connection
                raise
            response = _internal_error(Request(scope), exc)
            await response(scope, receive, send)
