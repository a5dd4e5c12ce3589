"""Probes (/healthz, /readyz), start-up, and the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from conftest import ADMIN_URL
from fastapi import FastAPI

from api.errors import DatabaseUnavailableError
from api.main import create_app
from core.settings import ApiSettings
from schemas.scratch import create_database, drop_database

DEAD_URL = "postgresql://postgres@127.0.0.1:1/nothing"


@asynccontextmanager
async def unreachable_database(app: FastAPI) -> AsyncIterator[None]:
    """Point the app at a pool whose server refuses connections, then restore it."""
    working = app.state.pool
    app.state.pool = await asyncpg.create_pool(DEAD_URL, min_size=0, timeout=1)
    try:
        yield
    finally:
        await app.state.pool.close()
        app.state.pool = working


async def test_healthz_reports_database_and_storage_mode(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "storage_mode": "postgres"}


async def test_readyz_is_200_when_migrations_are_current(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["storage_mode"]) == ("ready", "ok", "postgres")
    assert body["migrations"] >= 6


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/devices"])
async def test_database_down_is_503_in_the_error_shape(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    async with unreachable_database(app):
        response = await client.get(path)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert "database unreachable" in error["message"]


async def test_readyz_on_an_unmigrated_database_is_503_naming_what_is_pending() -> None:
    url = await create_database(ADMIN_URL, "citytel_test_empty")
    try:
        app = create_app(ApiSettings(database_url=str(url)))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as http,
        ):
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
    finally:
        await drop_database(ADMIN_URL, url)
    assert (health.status_code, health.json()["storage_mode"]) == (200, None)
    assert ready.status_code == 503
    error = ready.json()["error"]
    assert error["code"] == "not_ready"
    assert "006_api_keys" in error["message"] and "citytel db migrate" in error["message"]
    assert error["details"][0]["loc"] == ["migrations", "pending"]


async def test_readyz_names_a_migration_changed_since_applied(
    anonymous_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    checksum = await db.fetchval("SELECT checksum FROM schema_migrations WHERE version = 1")
    await db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    try:
        response = await anonymous_client.get("/readyz")
    finally:
        await db.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 1", checksum)
    assert response.status_code == 503
    assert response.json()["error"]["details"] == [
        {
            "loc": ["migrations", "changed"],
            "msg": "migrations changed since applied: 001_core",
            "type": "changed",
        }
    ]


async def test_startup_gives_up_after_timeout_with_logged_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(ApiSettings(database_url=DEAD_URL), startup_timeout_s=1.0)
    with (
        caplog.at_level(logging.WARNING, logger="api.main"),
        pytest.raises(DatabaseUnavailableError, match="not reachable after"),
    ):
        async with app.router.lifespan_context(app):
            pass
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) >= 2


async def test_openapi_docs_are_served_with_security_schemes(
    anonymous_client: httpx.AsyncClient,
) -> None:
    docs = await anonymous_client.get("/docs")
    spec = (await anonymous_client.get("/openapi.json")).json()
    assert docs.status_code == 200
    assert {"/v1/devices/{device_id}/series", "/v1/aggregates/{kind}", "/v1/events"} <= set(
        spec["paths"]
    )
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ctk_<id>_<secret>",
        "description": schemes["bearer"]["description"],
    }
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    devices = spec["paths"]["/v1/devices"]
    assert devices["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert (devices["get"]["x-required-role"], devices["post"]["x-required-role"]) == (
        "viewer",
        "operator",
    )
    assert not any(path.startswith(("/devices", "/events")) for path in spec["paths"])
