"""Dead letters: listed with raw bytes and reason, replayed exactly once after a fix."""

from __future__ import annotations

import asyncpg
import orjson
from support import BASE_MS, collector_settings, pole_message, publish_all, running_collector
from support import wait_for_count as wait_count

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from ingest.deadletters import list_dead_letters, replay_dead_letters
from ingest.decode import DecodePolicy


async def test_replay_ingests_once_after_the_registry_is_fixed(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    messages = [pole_message(city, f"late-{i}", BASE_MS + i) for i in range(5)]
    broken = (f"citytel/v1/{city}/pole/late-0/telemetry", b"{still broken")
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        publish_all(mosquitto.url, [*messages, broken])
        assert await wait_count(db, "SELECT count(*) FROM dead_letters", 6) == 6
    listed = await list_dead_letters(db, reason="unknown_device")
    assert len(listed) == 6  # the registry is checked first: all six are unknown devices
    assert {bytes(r["payload"]) for r in listed} >= {payload for _, payload in messages}

    await db.executemany(
        "INSERT INTO devices (device_id, kind, city) VALUES ($1, 'pole', $2)",
        [(f"late-{i}", city) for i in range(5)],
    )
    report = await replay_dead_letters(str(database_url), policy=DecodePolicy())
    assert (report.examined, report.ingested) == (6, 5)
    assert report.still_refused == {"invalid_json": 1}
    assert await db.fetchval("SELECT reason FROM dead_letters WHERE replayed_at IS NULL") == (
        "invalid_json"
    )
    assert await db.fetchval("SELECT count(*) FROM pole_telemetry") == 5
    again = await replay_dead_letters(str(database_url), policy=DecodePolicy())
    assert (again.examined, again.ingested) == (1, 0)
    assert await db.fetchval("SELECT count(*) FROM pole_telemetry") == 5
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL") == 5


async def test_collector_metrics_and_health_endpoints(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    import asyncio  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from core.broker import free_port  # noqa: PLC0415

    port = free_port()
    settings = collector_settings(database_url, mosquitto.url, city=city, ingest_metrics_port=port)
    await db.execute("INSERT INTO devices (device_id, kind, city) VALUES ('m1', 'pole', $1)", city)
    async with running_collector(settings):
        publish_all(
            mosquitto.url,
            [pole_message(city, "m1", BASE_MS), (f"citytel/v1/{city}/pole/m1/telemetry", b"[")],
        )
        await wait_count(db, "SELECT count(*) FROM dead_letters", 1)

        def fetch(path: str) -> tuple[int, bytes]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return reply.status, reply.read()

        status, body = await asyncio.to_thread(fetch, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'citytel_rows_stored_total{table="pole_telemetry"} 1' in text
        assert 'citytel_dead_letters_total{reason="invalid_json"} 1' in text
        assert "citytel_commit_seconds_bucket" in text and "citytel_queue_depth" in text
        status, body = await asyncio.to_thread(fetch, "/healthz")
        assert status == 200 and orjson.loads(body)["mqtt"] == "connected"
