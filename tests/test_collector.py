"""The collector against a real Mosquitto and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import orjson
from support import (
    BASE_MS,
    collector_settings,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
    wait_until,
)

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl

COUNT_POLE = "SELECT count(*) FROM pole_telemetry"
COUNT_DEAD = "SELECT count(*) FROM dead_letters"


async def test_collector_stores_every_kind_and_channel(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    await db.executemany(
        "INSERT INTO devices (device_id, kind, city) VALUES ($1, $2, $3)",
        [
            ("p1", "pole", city),
            ("s1", "signal", city),
            ("e1", "energy", city),
            ("e2", "energy", city),
        ],
    )
    root = f"citytel/v1/{city}"
    messages = [
        (f"{root}/pole/p1/telemetry", orjson.dumps({"ts": BASE_MS, "lamp_on": True, "fw_x": 1})),
        (
            f"{root}/signal/s1/telemetry",
            orjson.dumps(
                [
                    {"ts": BASE_MS, "mode": "adaptive", "volume": 12},
                    {"ts": BASE_MS + 1000, "mode": "coordinated"},
                ]
            ),
        ),
        (
            f"{root}/energy/e1/telemetry",
            orjson.dumps(
                {
                    "ts": _local_time(BASE_MS),
                    "pv_kw": 50,
                    "load_kw": 80,
                    "grid_kw": 10,
                    "storage_kw": 20,
                }
            ),
        ),
        (
            f"{root}/energy/e2/telemetry",
            orjson.dumps({"ts": BASE_MS, "pv_kw": 50, "load_kw": 80, "grid_kw": 10}),
        ),
        (
            f"{root}/signal/s1/event",
            orjson.dumps(
                {"ts": BASE_MS, "type": "fault", "code": "lamp_failure", "severity": "critical"}
            ),
        ),
        (f"{root}/pole/p1/status", orjson.dumps({"ts": BASE_MS, "online": True, "fw": "2.1"})),
    ]
    async with running_collector(
        collector_settings(database_url, mosquitto.url, city=city)
    ) as collector:
        publish_all(mosquitto.url, messages)
        assert await wait_for_count(db, "SELECT count(*) FROM device_events", 1) == 1
        await wait_for_count(db, "SELECT count(*) FROM device_status WHERE online", 1)
    assert await db.fetchval(COUNT_POLE) == 1
    assert await db.fetchval("SELECT count(*) FROM signal_telemetry") == 2
    balance = dict(await db.fetch("SELECT device_id, balance_ok FROM energy_telemetry"))
    assert balance == {"e1": True, "e2": False}  # e2: 50 + 10 = 60 against 80 kW of load
    ts = await db.fetchval("SELECT ts FROM energy_telemetry WHERE device_id = 'e1'")
    assert ts == datetime.fromtimestamp(BASE_MS / 1000, UTC)
    status = await db.fetchrow(
        "SELECT online, fw, last_seen FROM device_status WHERE device_id='p1'"
    )
    assert status["online"] is True and status["fw"] == "2.1"
    assert status["last_seen"] == datetime.fromtimestamp(BASE_MS / 1000, UTC)
    assert orjson.loads(await db.fetchval("SELECT extra FROM pole_telemetry")) == {"fw_x": 1}
    assert (
        await db.fetchval(
            "SELECT messages FROM unknown_fields WHERE kind = 'pole.telemetry' AND field = 'fw_x'"
        )
        == 1
    )
    assert collector.metrics.stored["signal_telemetry"] == 2


async def test_collector_dead_letters_every_refusal_with_reason(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    await db.executemany(
        "INSERT INTO devices (device_id, kind, city) VALUES ($1, $2, $3)",
        [("p1", "pole", city), ("s1", "signal", "elsewhere")],
    )
    root = f"citytel/v1/{city}"
    future = int((datetime.now(UTC) + timedelta(hours=1)).timestamp() * 1000)
    cases = {
        "invalid_json": (f"{root}/pole/p1/telemetry", b'{"ts": 1,'),
        "schema": (f"{root}/pole/p1/telemetry", orjson.dumps({"ts": BASE_MS, "dim_pct": 140})),
        "bad_topic": (f"citytel/v1/{city}/tram/p1/telemetry", b"{}"),
        "too_large": (f"{root}/pole/p1/telemetry", b"[" + b" " * 300_000 + b"]"),
        "future_ts": (f"{root}/pole/p1/telemetry", orjson.dumps({"ts": future, "lamp_on": True})),
        "device_mismatch": (
            f"{root}/pole/p1/telemetry",
            orjson.dumps({"ts": BASE_MS, "device_id": "p9", "lamp_on": True}),
        ),
        "unknown_device": (
            f"{root}/pole/nobody/telemetry",
            orjson.dumps({"ts": BASE_MS, "lamp_on": True}),
        ),
        "registry_mismatch": (
            f"{root}/signal/s1/telemetry",
            orjson.dumps({"ts": BASE_MS, "mode": "flash"}),
        ),
    }
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        publish_all(mosquitto.url, cases.values())
        await wait_for_count(db, COUNT_DEAD, len(cases))
    rows = await db.fetch("SELECT reason, topic, payload, detail FROM dead_letters")
    by_reason = {r["reason"]: r for r in rows}
    assert sorted(by_reason) == sorted(cases)
    for reason, (topic, payload) in cases.items():
        row = by_reason[reason]
        assert row["topic"] == topic
        expected = payload[: 256 * 1024] if reason == "too_large" else payload
        assert bytes(row["payload"]) == expected, reason
    assert "dim_pct" in by_reason["schema"]["detail"]
    assert "less than or equal to 100" in by_reason["schema"]["detail"]
    assert await db.fetchval(COUNT_POLE) == 0


async def test_collector_refuses_one_object_of_a_gateway_batch(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    (device,) = await register_poles(db, city, 1)
    batch = [{"ts": BASE_MS + i, "noise_dba": 40 + i} for i in range(5)]
    batch[2]["noise_dba"] = "loud"
    topic = f"citytel/v1/{city}/pole/{device}/telemetry"
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        publish_all(mosquitto.url, [(topic, orjson.dumps(batch))])
        await wait_for_count(db, COUNT_DEAD, 1)
        await wait_for_count(db, COUNT_POLE, 4)
    row = await db.fetchrow("SELECT payload, detail FROM dead_letters")
    assert orjson.loads(row["payload"]) == batch[2]
    assert row["detail"].startswith("object 2 of 5: noise_dba")


async def test_collector_stores_a_duplicate_delivery_once_and_counts_it(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    (device,) = await register_poles(db, city, 1)
    messages = [pole_message(city, device, BASE_MS + i) for i in range(100)]
    async with running_collector(
        collector_settings(database_url, mosquitto.url, city=city)
    ) as collector:
        publish_all(mosquitto.url, messages + messages[:10])
        await wait_for_count(db, COUNT_POLE, 100)
        await _wait_metric(lambda: collector.metrics.received == 110)
    assert await db.fetchval(COUNT_POLE) == 100
    assert collector.metrics.duplicates["pole_telemetry"] == 10


async def test_collector_registers_unknown_devices_when_told(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    settings = collector_settings(
        database_url, mosquitto.url, city=city, ingest_unknown_devices="register"
    )
    async with running_collector(settings):
        publish_all(mosquitto.url, [pole_message(city, "newcomer", BASE_MS)])
        await wait_for_count(db, COUNT_POLE, 1)
    row = await db.fetchrow("SELECT kind, city, registered_by FROM devices")
    assert tuple(row) == ("pole", city, "auto")
    assert await db.fetchval(COUNT_DEAD) == 0


async def test_collector_sees_devices_imported_after_it_started(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        (device,) = await register_poles(db, city, 1)
        publish_all(mosquitto.url, [pole_message(city, device, BASE_MS)])
        assert await wait_for_count(db, COUNT_POLE, 1) == 1
    assert await db.fetchval(COUNT_DEAD) == 0


async def test_collector_survives_a_flood_of_malformed_messages(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    devices = await register_poles(db, city, 10)
    junk = [
        (f"citytel/v1/{city}/pole/{devices[i % 10]}/telemetry", b"\xff\xfe{" + str(i).encode())
        for i in range(5000)
    ]
    valid = [pole_message(city, devices[i % 10], BASE_MS + i) for i in range(1000)]
    mixed = [m for pair in zip(junk[:1000], valid, strict=True) for m in pair] + junk[1000:]
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        publish_all(mosquitto.url, mixed)
        assert await wait_for_count(db, COUNT_DEAD, 5000) == 5000
        assert await wait_for_count(db, COUNT_POLE, 1000) == 1000
    assert (
        await db.fetchval("SELECT count(*) FROM dead_letters WHERE reason <> 'invalid_json'") == 0
    )


async def test_collector_creates_partitions_for_old_data(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    (device,) = await register_poles(db, city, 1)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    before = midnight - timedelta(days=40, minutes=1)  # no partition exists that far back
    old = int(before.timestamp() * 1000)
    messages = [pole_message(city, device, old), pole_message(city, device, old + 120_000)]
    names = [f"pole_telemetry_p{d:%Y%m%d}" for d in (before, before + timedelta(minutes=2))]
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        publish_all(mosquitto.url, messages)
        assert await wait_for_count(db, COUNT_POLE, 2) == 2
    partitions = await db.fetch("SELECT relname FROM pg_class WHERE relname = ANY($1)", names)
    assert len(partitions) == 2


def _local_time(ms: int) -> str:
    """The instant as RFC 3339 with the +08:00 offset of our pilot cities."""
    china = timezone(timedelta(hours=8))
    return datetime.fromtimestamp(ms / 1000, china).isoformat()


async def _wait_metric(predicate: object) -> None:
    await wait_until(predicate, timeout_s=10)


async def test_collector_writes_last_seen_while_running_and_on_stop(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    devices = await register_poles(db, city, 3)
    seen = "SELECT count(*) FROM device_status WHERE last_seen IS NOT NULL"
    settings = collector_settings(
        database_url, mosquitto.url, city=city, ingest_last_seen_flush_s=0.5
    )
    async with running_collector(settings):
        publish_all(mosquitto.url, [pole_message(city, devices[0], BASE_MS)])
        assert await wait_for_count(db, seen, 1, timeout_s=5) == 1
        publish_all(
            mosquitto.url,
            [
                pole_message(city, devices[0], BASE_MS + 5000),
                pole_message(city, devices[1], BASE_MS),
            ],
        )
        await wait_for_count(db, COUNT_POLE, 3)
    # Whatever was still folded in memory is written when the collector stops.
    assert await db.fetchval(seen) == 2
    newest = await db.fetchval(
        "SELECT last_seen FROM device_status WHERE device_id = $1", devices[0]
    )
    assert newest == datetime.fromtimestamp((BASE_MS + 5000) / 1000, UTC)
