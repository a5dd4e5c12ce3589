"""One error shape for every status, database errors translated in one place, and an
unexpected exception rendered as 500 ``internal`` and logged with its traceback."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

import api.queries
from api.errors import database_error


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "\n" not in error["message"]
    return dict(error)


async def test_400_point_budget(client: httpx.AsyncClient) -> None:
    params = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    response = await client.get("/v1/devices/p1/series", params=params)
    assert_error_shape(response, 400, "point_budget")


async def test_401_and_403(
    anonymous_client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
) -> None:
    assert_error_shape(await anonymous_client.get("/v1/events"), 401, "unauthenticated")
    assert_error_shape(await viewer_client.get("/v1/keys"), 403, "forbidden")


async def test_404_for_a_resource_and_for_an_unknown_path(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.get("/v1/devices/nope"), 404, "not_found")
    assert_error_shape(await client.get("/v1/nothing-here"), 404, "not_found")
    assert_error_shape(await client.get("/devices"), 404, "not_found")  # unversioned is gone


async def test_405_method_not_allowed(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.put("/v1/events"), 405, "method_not_allowed")


async def test_409_conflict(admin_client: httpx.AsyncClient) -> None:
    key_id = (await admin_client.post("/v1/keys", json={"role": "viewer"})).json()["id"]
    await admin_client.delete(f"/v1/keys/{key_id}")
    assert_error_shape(await admin_client.delete(f"/v1/keys/{key_id}"), 409, "conflict")


async def test_422_lists_every_invalid_parameter(client: httpx.AsyncClient) -> None:
    params = {"kind": "tram", "limit": "0", "city": "Bad City", "district": "a\x00"}
    error = assert_error_shape(
        await client.get("/v1/devices", params=params), 422, "validation_error"
    )
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("query", "kind"),
        ("query", "limit"),
        ("query", "city"),
        ("query", "district"),
    }
    assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])  # input not echoed
    assert error["message"].startswith("invalid request: query.")


async def test_422_for_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/devices", content=b"[{", headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/devices", {"city": "a\x00"}),
        ("/v1/devices", {"district": "north\x00"}),
        ("/v1/devices", {"limit": str(2**64)}),
        ("/v1/devices", {"offset": str(2**64), "limit": "1"}),  # offset is gone: ignored
        ("/v1/events", {"device_id": "p\x001"}),
        ("/v1/events", {"from": "1764460800"}),
        ("/v1/events", {"limit": "-1"}),
        ("/v1/devices/p%001", {}),
        ("/v1/aggregates/pole", {"fields": "pm25_avg_ugm3\x00"}),
        ("/v1/indicators/now/al%00pha", {}),
        ("/v1/aggregates/pole", {"fields": "pm25_avg_ugm3", "district": "\x00"}),
        ("/v1/deadletters", {"since": "9999-12-31T23:59:59Z"}),
    ],
)
async def test_inputs_postgresql_cannot_take_are_refused_not_500(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code < 500, response.text
    if "offset" not in params:
        assert_error_shape(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (asyncpg.DataError("invalid byte sequence for encoding UTF8: 0x00"), 422, "invalid_value"),
        (asyncpg.NumericValueOutOfRangeError("bigint out of range"), 422, "invalid_value"),
        (asyncpg.CheckViolationError("violates check constraint"), 422, "invalid_value"),
        (asyncpg.UniqueViolationError("duplicate key"), 409, "conflict"),
        (asyncpg.QueryCanceledError("statement timeout"), 503, "database_timeout"),
        (asyncpg.ConnectionDoesNotExistError("closed"), 503, "database_unavailable"),
        (asyncpg.TooManyConnectionsError("too many"), 503, "database_unavailable"),
        (ConnectionResetError("reset"), 503, "database_unavailable"),
        (TimeoutError(), 503, "database_unavailable"),
    ],
)
async def test_database_errors_are_translated_in_one_place(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    code: str,
) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(api.queries, "list_devices", failing)
    assert_error_shape(await client.get("/v1/devices"), status, code)


def test_a_driver_encoding_error_is_an_invalid_value() -> None:
    from asyncpg.exceptions._base import DataError as ClientDataError  # noqa: PLC0415

    translated = database_error(ClientDataError("invalid input for query argument $1"))
    assert translated is not None and translated.code == "invalid_value"
    assert database_error(asyncpg.SyntaxOrAccessError("syntax error")) is None


@pytest.mark.allow_logged_exceptions
async def test_an_unexpected_error_is_500_internal_and_logged_with_traceback(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(api.queries, "list_devices", broken)
    with caplog.at_level(logging.ERROR, logger="api.handlers"):
        response = await client.get("/v1/devices")
    error = assert_error_shape(response, 500, "internal")
    assert "surprise" not in error["message"]  # no internals to the client
    (record,) = [r for r in caplog.records if r.name == "api.handlers"]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "GET /v1/devices" in record.getMessage()


@pytest.mark.allow_logged_exceptions
async def test_an_unexpected_database_error_is_500_internal(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise asyncpg.UndefinedTableError('relation "devices" does not exist')

    monkeypatch.setattr(api.queries, "list_devices", broken)
    assert_error_shape(await client.get("/v1/devices"), 500, "internal")
