"""Poison input: no message may stop ingest (a real Mosquitto, a real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest
from support import (
    BASE_MS,
    collector_settings,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
)

import ingest.decode
from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from schemas.topics import Channel, Kind

COUNT_POLE = "SELECT count(*) FROM pole_telemetry"


def deep_extra_message(
    city: str, device_id: str, ts_ms: int, depth: int = 255
) -> tuple[str, bytes]:
    """About half a kilobyte of valid JSON: a reading whose unknown field nests ``depth`` levels.

    Before the depth bound, re-encoding the unknown field raised inside the MQTT
    callback and ingest stopped for every device behind that collector.
    """
    body = orjson.dumps({"ts": ts_ms, "lamp_on": True})[:-1] + b',"x":'
    return (
        f"citytel/v1/{city}/pole/{device_id}/telemetry",
        body + b"[" * depth + b"]" * depth + b"}",
    )


def _raise_on_marker(validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def validate_or_raise(item: Any) -> Any:
        if isinstance(item, dict) and "boom" in item:
            raise RuntimeError("a bug in the decoder")
        return validate(item)

    return validate_or_raise


@pytest.mark.allow_logged_exceptions  # the injected decoder bug is logged with its traceback
async def test_poison_messages_are_dead_letters_and_ingest_goes_on(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    fresh_mosquitto: MosquittoProcess,
    city: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = (Kind.POLE, Channel.TELEMETRY)
    monkeypatch.setitem(
        ingest.decode._VALIDATORS, key, _raise_on_marker(ingest.decode._VALIDATORS[key])
    )
    (pole,) = await register_poles(db, city, 1)
    settings = collector_settings(database_url, fresh_mosquitto.url, city=city)
    deep = deep_extra_message(city, pole, BASE_MS)
    assert 500 <= len(deep[1]) <= 600
    bug = pole_message(city, pole, BASE_MS + 1, boom=1)
    live = [deep, bug, *(pole_message(city, pole, BASE_MS + 10 + i) for i in range(50))]

    async with running_collector(settings) as collector:
        publish_all(fresh_mosquitto.url, live)
        assert await wait_for_count(db, COUNT_POLE, 50) == 50
        assert collector.source is not None and collector.source.connected
        await asyncio.sleep(0.2)
        assert collector.metrics.dead_letters == {"schema": 1, "internal": 1}
        metrics = collector.metrics.render()
    assert 'citytel_dead_letters_total{reason="internal"} 1' in metrics
    letters = dict(await db.fetch("SELECT reason, payload FROM dead_letters"))
    assert letters == {"schema": deep[1], "internal": bug[1]}
    detail = await db.fetchval("SELECT detail FROM dead_letters WHERE reason = 'internal'")
    assert detail.startswith("RuntimeError: a bug in the decoder")

    # The same while the collector is away: its session queues the poison for it.
    queued = [
        deep_extra_message(city, pole, BASE_MS + 100, depth=1000),
        pole_message(city, pole, BASE_MS + 101, boom=2),
        *(pole_message(city, pole, BASE_MS + 200 + i) for i in range(50)),
    ]
    publish_all(fresh_mosquitto.url, queued)
    async with running_collector(settings) as collector:
        assert await wait_for_count(db, COUNT_POLE, 100) == 100
        assert collector.source is not None and collector.source.connected
        await asyncio.sleep(0.2)
        assert collector.metrics.dead_letters == {"schema": 1, "internal": 1}
    assert await db.fetchval("SELECT count(*) FROM dead_letters") == 4
    # Nothing is left for a third start: every message was acknowledged.
    async with running_collector(settings) as collector:
        await asyncio.sleep(0.5)
        assert collector.metrics.received == 0
