"""Health, start-up, events and dead letters."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.errors import DatabaseUnavailableError
from api.main import create_app
from core.settings import ApiSettings
from core.urls import DatabaseUrl
from ingest.registry import upsert_devices
from schemas.registry import Device

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEAD_URL = "postgresql://postgres@127.0.0.1:1/nothing"


@pytest.fixture
async def app(database_url: DatabaseUrl, db: asyncpg.Connection) -> AsyncIterator[FastAPI]:
    app = create_app(ApiSettings(database_url=str(database_url)))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


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


async def test_healthz_reports_database_and_storage_mode(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "storage_mode": "postgres"}


async def test_healthz_database_down_is_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with unreachable_database(app):
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


async def test_request_with_database_down_is_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with unreachable_database(app):
        response = await client.get("/devices")
    assert response.status_code == 503
    assert "database unreachable" in response.json()["detail"]


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


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    spec = (await client.get("/openapi.json")).json()
    assert docs.status_code == 200
    assert {"/devices/{device_id}/series", "/aggregates/{kind}", "/events"} <= set(spec["paths"])


async def seed_events(db: asyncpg.Connection) -> None:
    await upsert_devices(
        db,
        [
            Device(device_id="p1", kind="pole", city="alpha"),
            Device(device_id="s1", kind="signal", city="beta"),
        ],
    )
    await db.executemany(
        "INSERT INTO device_events (device_id, ts, type, code, severity, extra)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        [
            ("p1", T0, "door", "door_open", "warning", None),
            ("p1", T0 + timedelta(minutes=5), "fault", "lamp_failure", "critical", '{"a": 1}'),
            ("s1", T0 + timedelta(minutes=1), "fault", "green_conflict", "critical", None),
            ("s1", T0 + timedelta(hours=2), "mode_change", "flash", "info", None),
        ],
    )


async def test_events_newest_first_with_registry_city(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_events(db)
    events = (await client.get("/events", params={"limit": 2})).json()
    assert [(e["device_id"], e["code"], e["city"]) for e in events] == [
        ("s1", "flash", "beta"),
        ("p1", "lamp_failure", "alpha"),
    ]
    assert events[1]["extra"] == {"a": 1}
    assert events[1]["ts"] == "2026-11-30T08:05:00Z"


async def test_events_filter_by_city_type_severity_and_time(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_events(db)
    by_city = await client.get("/events", params={"city": "alpha", "type": "fault"})
    by_severity = await client.get(
        "/events",
        params={"severity": "critical", "from": "2026-11-30T08:00:30Z", "to": "2026-11-30T08:02Z"},
    )
    assert [e["code"] for e in by_city.json()] == ["lamp_failure"]
    assert [e["code"] for e in by_severity.json()] == ["green_conflict"]


async def test_events_unknown_severity_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/events", params={"severity": "apocalyptic"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "severity"]


async def insert_dead_letter(
    db: asyncpg.Connection, reason: str, payload: bytes, received_at: datetime
) -> None:
    await db.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, reason, detail, digest)"
        " VALUES ($1, 'citytel/v1/alpha/pole/p1/telemetry', $2, $3, 'why', $4)",
        received_at,
        payload,
        reason,
        hashlib.sha256(payload + reason.encode()).digest(),
    )


async def seed_dead_letters(db: asyncpg.Connection) -> None:
    await insert_dead_letter(db, "invalid_json", b"\xff\xfe not json", T0)
    await insert_dead_letter(db, "schema", b'{"ts": 1}', T0 + timedelta(minutes=1))
    await insert_dead_letter(db, "schema", b'{"ts": 2}', T0 + timedelta(minutes=2))


async def test_deadletters_show_payload_as_base64_and_utf8_text(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_dead_letters(db)
    letters = (await client.get("/deadletters")).json()
    newest, oldest = letters[0], letters[-1]
    assert (newest["payload_text"], newest["payload_size"]) == ('{"ts": 2}', 9)
    assert base64.b64decode(oldest["payload_base64"]) == b"\xff\xfe not json"
    assert oldest["payload_text"] is None


async def test_deadletters_filter_by_reason_and_since(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_dead_letters(db)
    params = {"reason": "schema", "since": "2026-11-30T08:02:00Z"}
    letters = (await client.get("/deadletters", params=params)).json()
    assert [letter["payload_text"] for letter in letters] == ['{"ts": 2}']


async def test_deadletters_unknown_reason_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/deadletters", params={"reason": "gremlins"})
    assert response.status_code == 422


async def test_deadletters_summary_counts_by_reason(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_dead_letters(db)
    summary = (await client.get("/deadletters/summary")).json()
    assert summary["total"] == 3
    assert [(r["reason"], r["count"]) for r in summary["reasons"]] == [
        ("schema", 2),
        ("invalid_json", 1),
    ]
    assert summary["reasons"][0]["last_received_at"] == "2026-11-30T08:02:00Z"
