"""The registry endpoints: list with cursor pages, get, POST upsert, PATCH, DELETE, latest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from support import insert_rows

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


def ids(response: httpx.Response) -> list[str]:
    return [d["device_id"] for d in response.json()["items"]]


async def test_devices_list_filters_by_city_kind_and_district(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    by_city = await client.get("/v1/devices", params={"city": "alpha"})
    by_kind = await client.get("/v1/devices", params={"city": "alpha", "kind": "pole"})
    by_district = await client.get("/v1/devices", params={"district": "south"})
    assert ids(by_city) == ["pole-1", "pole-2", "sig-1"]
    assert ids(by_kind) == ["pole-1", "pole-2"]
    assert ids(by_district) == ["pole-2"]


async def test_devices_list_pages_with_an_opaque_cursor(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    first = await client.get("/v1/devices", params={"limit": 3})
    cursor = first.json()["next_cursor"]
    last = await client.get("/v1/devices", params={"limit": 3, "cursor": cursor})
    assert ids(first) == ["pole-1", "pole-2", "pole-9"]
    assert "pole-9" not in cursor  # opaque, not the id itself
    assert (ids(last), last.json()["next_cursor"]) == (["sig-1"], None)


async def test_devices_list_exact_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    page = (await client.get("/v1/devices", params={"limit": 4})).json()
    assert (len(page["items"]), page["next_cursor"]) == (4, None)


@pytest.mark.parametrize(
    ("cursor", "status", "code"),
    [
        ("!!", 422, "validation_error"),  # not base64url: the parameter's pattern refuses it
        ("A", 400, "invalid_cursor"),  # not a whole base64 quantum
        ("____", 400, "invalid_cursor"),  # not UTF-8
        ("AAAA", 400, "invalid_cursor"),  # NUL bytes, not a device id
    ],
)
async def test_devices_list_foreign_cursor_is_refused(
    client: httpx.AsyncClient, cursor: str, status: int, code: str
) -> None:
    response = await client.get("/v1/devices", params={"cursor": cursor})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


async def test_devices_list_unknown_kind_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/devices", params={"kind": "tram"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "kind"]


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
    device = (await client.get("/v1/devices/pole-1")).json()
    assert device["functions"] == ["lighting", "camera"]
    assert (device["online"], device["last_seen"], device["fw"]) == (
        True,
        "2026-11-30T08:00:00Z",
        "2.1",
    )


async def test_devices_get_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/devices/nope-1")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and "nope-1" in error["message"]


async def test_devices_post_upserts_as_api(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    body = [
        {"device_id": "pole-1", "kind": "pole", "city": "alpha", "name": "renamed"},
        {"device_id": "en-1", "kind": "energy", "city": "alpha", "site_type": "commercial"},
    ]
    response = await client.post("/v1/devices", json=body)
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
    response = await client.post("/v1/devices", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert (error["details"][0]["loc"], error["details"][0]["type"]) == (
        ["body", 1, "lat"],
        "less_than_equal",
    )
    assert await db.fetchval("SELECT count(*) FROM devices") == 0


async def test_devices_post_repeated_id_is_422(client: httpx.AsyncClient) -> None:
    record = {"device_id": "pole-1", "kind": "pole", "city": "alpha"}
    response = await client.post("/v1/devices", json=[record, record])
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["type"] == "duplicate"


@pytest.mark.parametrize("field", ["district", "name", "intersection"])
async def test_devices_post_refuses_nul_in_every_text_field(
    client: httpx.AsyncClient, field: str
) -> None:
    record = {"device_id": "sig-1", "kind": "signal", "city": "alpha", field: "a\x00b"}
    response = await client.post("/v1/devices", json=[record])
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", 0, field]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
async def test_devices_post_refuses_numbers_that_are_not_finite(
    client: httpx.AsyncClient, number: bytes
) -> None:
    body = b'[{"device_id": "e1", "kind": "energy", "city": "a", "pv_capacity_kw": %s}]' % number
    response = await client.post(
        "/v1/devices", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", 0, "pv_capacity_kw"]


async def test_devices_patch_changes_only_what_it_names(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    response = await client.patch("/v1/devices/pole-1", json={"name": "Main St 1", "lat": 36.6})
    assert response.status_code == 200, response.text
    device = response.json()
    assert (device["name"], device["lat"], device["district"]) == ("Main St 1", 36.6, "north")
    assert device["functions"] == ["lighting", "camera"]
    cleared = (await client.patch("/v1/devices/pole-1", json={"district": None})).json()
    assert cleared["district"] is None and cleared["registered_by"] == "api"


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"kind": "signal"}, "immutable"),
        ({"device_id": "pole-7"}, "immutable"),
        ({"lat": 91}, "less_than_equal"),
        ({"intersection": "Main/2nd"}, "value_error"),  # not an attribute of a pole
        ({"interval_s": None}, "float_type"),
        ({"colour": "red"}, "extra_forbidden"),
    ],
)
async def test_devices_patch_is_validated_like_a_device(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, Any], error_type: str
) -> None:
    await seed_registry(db)
    response = await client.patch("/v1/devices/pole-1", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] == error_type
    assert await db.fetchval("SELECT registered_by FROM devices WHERE device_id = 'pole-1'") == (
        "import"
    )


async def test_devices_patch_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/v1/devices/nope-1", json={"name": "x"})
    assert response.status_code == 404


async def test_devices_delete_removes_registry_row_and_status_not_telemetry(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await db.execute("INSERT INTO device_status (device_id, online) VALUES ('pole-2', true)")
    at = datetime(2026, 11, 30, tzinfo=UTC)
    await insert_rows(db, "pole_telemetry", [{"device_id": "pole-2", "ts": at, "pm25_ugm3": 5.0}])
    response = await client.delete("/v1/devices/pole-2")
    assert response.status_code == 204
    assert (await client.get("/v1/devices/pole-2")).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM device_status WHERE device_id = 'pole-2'") == 0
    assert await db.fetchval("SELECT count(*) FROM pole_telemetry WHERE device_id = 'pole-2'") == 1
    assert (await client.delete("/v1/devices/pole-2")).status_code == 404


async def test_devices_latest_is_the_newest_row_with_status(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    rows = [
        ("pole-1", datetime(2026, 11, 29, 23, tzinfo=UTC), 1.0, False),
        ("pole-1", datetime(2026, 11, 30, 1, tzinfo=UTC), 2.0, True),
        ("pole-2", datetime(2026, 11, 30, 2, tzinfo=UTC), 3.0, True),
    ]
    keys = ("device_id", "ts", "pm25_ugm3", "lamp_on")
    await insert_rows(db, "pole_telemetry", [dict(zip(keys, r, strict=True)) for r in rows])
    await db.execute("INSERT INTO device_status (device_id, online, fw) VALUES ('pole-1', 't', 3)")
    body = (await client.get("/v1/devices/pole-1/latest")).json()
    assert body["status"] == {"online": True, "last_seen": None, "fw": "3"}
    reading = body["reading"]
    assert (reading["ts"], reading["pm25_ugm3"], reading["lamp_on"]) == (
        "2026-11-30T01:00:00Z",
        2.0,
        True,
    )
    quiet = (await client.get("/v1/devices/sig-1/latest")).json()
    assert quiet["reading"] is None and quiet["status"]["online"] is None
