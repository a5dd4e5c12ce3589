"""Events and dead letters: listing, summary, replay."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
from support import BASE_MS

from ingest.registry import upsert_devices
from schemas.registry import Device

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


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
    events = (await client.get("/v1/events", params={"limit": 2})).json()
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
    by_city = await client.get("/v1/events", params={"city": "alpha", "type": "fault"})
    window = {"from": "2026-11-30T08:00:30Z", "to": "2026-11-30T08:02:00Z"}
    by_severity = await client.get("/v1/events", params={"severity": "critical", **window})
    assert [e["code"] for e in by_city.json()] == ["lamp_failure"]
    assert [e["code"] for e in by_severity.json()] == ["green_conflict"]


async def test_events_unknown_severity_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", params={"severity": "apocalyptic"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "severity"]


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
    letters = (await client.get("/v1/deadletters")).json()
    newest, oldest = letters[0], letters[-1]
    assert (newest["payload_text"], newest["payload_size"]) == ('{"ts": 2}', 9)
    assert base64.b64decode(oldest["payload_base64"]) == b"\xff\xfe not json"
    assert oldest["payload_text"] is None


async def test_deadletters_filter_by_reason_and_since(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_dead_letters(db)
    params = {"reason": "schema", "since": "2026-11-30T08:02:00Z"}
    letters = (await client.get("/v1/deadletters", params=params)).json()
    assert [letter["payload_text"] for letter in letters] == ['{"ts": 2}']


async def test_deadletters_unknown_reason_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/deadletters", params={"reason": "gremlins"})
    assert response.status_code == 422


async def test_deadletters_summary_counts_by_reason(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await seed_dead_letters(db)
    summary = (await client.get("/v1/deadletters/summary")).json()
    assert summary["total"] == 3
    assert [(r["reason"], r["count"]) for r in summary["reasons"]] == [
        ("schema", 2),
        ("invalid_json", 1),
    ]
    assert summary["reasons"][0]["last_received_at"] == "2026-11-30T08:02:00Z"


async def test_deadletters_replay_ingests_what_now_passes(
    client: httpx.AsyncClient, db: asyncpg.Connection, city: str
) -> None:
    for i in range(3):
        payload = orjson.dumps({"ts": BASE_MS + i, "lamp_on": True})
        await db.execute(
            "INSERT INTO dead_letters (topic, payload, reason, digest)"
            " VALUES ($1, $2, 'unknown_device', $3)",
            f"citytel/v1/{city}/pole/late-{i}/telemetry",
            payload,
            hashlib.sha256(payload).digest(),
        )
    await insert_dead_letter(db, "invalid_json", b"{broken", T0)  # from p1 of alpha
    registered = [Device(device_id=f"late-{i}", kind="pole", city=city) for i in (0, 1)]
    await upsert_devices(db, [*registered, Device(device_id="p1", kind="pole", city="alpha")])

    first = await client.post("/v1/deadletters/replay", json={"limit": 2})
    rest = await client.post("/v1/deadletters/replay")
    again = await client.post("/v1/deadletters/replay", json={"reason": "unknown_device"})
    assert first.json() == {"examined": 2, "ingested": 2, "still_refused": {}}
    assert rest.json() == {
        "examined": 2,
        "ingested": 0,
        "still_refused": {"unknown_device": 1, "invalid_json": 1},
    }
    assert again.json() == {"examined": 1, "ingested": 0, "still_refused": {"unknown_device": 1}}
    assert await db.fetchval("SELECT count(*) FROM pole_telemetry") == 2


async def test_deadletters_replay_body_is_validated(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/deadletters/replay", json={"since": 1700000000})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "since"]
