"""The registry endpoints: list, filter, get, 404, POST upsert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from ingest.registry import upsert_devices
from schemas.registry import Device


def make_device(**overrides: Any) -> Device:
    values: dict[str, Any] = {"device_id": "pole-1", "kind": "pole", "city": "alpha"}
    return Device.model_validate(values | overrides)


async def seed_registry(db: asyncpg.Connection) -> None:
    await upsert_devices(
        db,
        [
            make_device(device_id="pole-1", district="north", functions="lighting,camera"),
            make_device(device_id="pole-2", district="south"),
            make_device(device_id="sig-1", kind="signal", intersection="Main/1st"),
            make_device(device_id="pole-9", city="beta"),
        ],
    )


async def test_devices_list_filters_by_city_kind_and_district(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    by_city = await client.get("/devices", params={"city": "alpha"})
    by_kind = await client.get("/devices", params={"city": "alpha", "kind": "pole"})
    by_district = await client.get("/devices", params={"district": "south"})
    assert [d["device_id"] for d in by_city.json()["items"]] == ["pole-1", "pole-2", "sig-1"]
    assert [d["device_id"] for d in by_kind.json()["items"]] == ["pole-1", "pole-2"]
    assert [d["device_id"] for d in by_district.json()["items"]] == ["pole-2"]


async def test_devices_list_pages_with_total(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    page = (await client.get("/devices", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 4
    assert [d["device_id"] for d in page["items"]] == ["pole-9", "sig-1"]


async def test_devices_list_unknown_kind_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/devices", params={"kind": "tram"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "kind"]


async def test_devices_get_returns_registry_and_status(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    seen = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    await db.execute(
        "INSERT INTO device_status (device_id, online, last_seen, fw) VALUES ($1, true, $2, '2.1')",
        "pole-1",
        seen,
    )
    device = (await client.get("/devices/pole-1")).json()
    assert device["functions"] == ["lighting", "camera"]
    assert (device["online"], device["last_seen"], device["fw"]) == (
        True,
        "2026-11-30T08:00:00Z",
        "2.1",
    )


async def test_devices_get_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/devices/nope-1")
    assert response.status_code == 404
    assert "nope-1" in response.json()["detail"]


async def test_devices_post_upserts_as_api(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    body = [
        {"device_id": "pole-1", "kind": "pole", "city": "alpha", "name": "renamed"},
        {"device_id": "en-1", "kind": "energy", "city": "alpha", "site_type": "commercial"},
    ]
    response = await client.post("/devices", json=body)
    assert response.json() == {"upserted": 2}
    rows = await db.fetch(
        "SELECT device_id, name, registered_by FROM devices WHERE registered_by = 'api' ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [("en-1", None, "api"), ("pole-1", "renamed", "api")]


async def test_devices_post_invalid_record_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = [
        {"device_id": "pole-1", "kind": "pole", "city": "alpha"},
        {"device_id": "pole-2", "kind": "pole", "city": "alpha", "lat": 123},
    ]
    response = await client.post("/devices", json=body)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert (error["loc"], error["type"]) == (["body", 1, "lat"], "less_than_equal")
    assert await db.fetchval("SELECT count(*) FROM devices") == 0
