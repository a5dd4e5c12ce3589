"""Adversity: the collector killed, the broker restarted, the database cut, a shared load.

In every case the rows stored equal the valid messages sent, and the dead letters equal
the invalid ones: nothing lost, nothing stored twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from support import (
    BASE_MS,
    TcpProxy,
    collector_settings,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
)

from core.broker import MosquittoProcess, start_mosquitto
from core.urls import DatabaseUrl

COUNT_POLE = "SELECT count(*) FROM pole_telemetry"
COUNT_DEAD = "SELECT count(*) FROM dead_letters"
COUNT_STREAM = "SELECT count(*) FROM pole_telemetry WHERE seq IS NOT NULL"

pytestmark = pytest.mark.slow


def _stream(
    city: str, devices: list[str], count: int, *, junk_every: int = 0
) -> list[tuple[str, bytes]]:
    messages = []
    for i in range(count):
        device = devices[i % len(devices)]
        messages.append(pole_message(city, device, BASE_MS + i * 1000, seq=i))
        if junk_every and i % junk_every == 0:
            messages.append(
                (f"citytel/v1/{city}/pole/{device}/telemetry", b"{junk " + str(i).encode())
            )
    return messages


class CollectorProcess:
    """``python -m citytel collect`` as a child process, to be killed for real."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "citytel", "collect"], env=self.env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=30)


@pytest.fixture
def collector_env(
    database_url: DatabaseUrl, fresh_mosquitto: MosquittoProcess, city: str
) -> dict[str, str]:
    settings = collector_settings(database_url, fresh_mosquitto.url, city=city)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYTEL_")}
    env.update(
        {
            "CITYTEL_DATABASE_URL": str(database_url),
            "CITYTEL_MQTT_URL": fresh_mosquitto.url,
            "CITYTEL_INGEST_CLIENT_ID": settings.ingest_client_id,
            "CITYTEL_INGEST_GROUP": settings.ingest_group,
            "CITYTEL_INGEST_TOPIC_FILTER": settings.ingest_topic_filter,
            "CITYTEL_INGEST_METRICS_PORT": "0",
            "CITYTEL_INGEST_RATE_LIMIT_PER_S": str(settings.ingest_rate_limit_per_s),
            "CITYTEL_INGEST_BATCH_MAX_AGE_MS": "50",
            "CITYTEL_INGEST_BATCH_MAX_MESSAGES": "2000",
        }
    )
    return env


@pytest.fixture
def collector_process(collector_env: dict[str, str], tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(collector_env, tmp_path / "collector.log")
    yield process
    if process.process is not None and process.process.poll() is None:
        process.kill()


async def test_collector_killed_mid_stream_loses_nothing(
    db: asyncpg.Connection,
    fresh_mosquitto: MosquittoProcess,
    city: str,
    collector_process: CollectorProcess,
) -> None:
    devices = await register_poles(db, city, 50)
    collector_process.start()
    await _wait_until_subscribed(db, fresh_mosquitto, city, devices[0])
    messages = _stream(city, devices, 30_000, junk_every=100)
    publishing = asyncio.create_task(asyncio.to_thread(publish_all, fresh_mosquitto.url, messages))
    stored = await wait_for_count(db, COUNT_STREAM, 8_000)
    assert 8_000 <= stored < 30_000, "the kill must land mid-stream"
    collector_process.kill()
    await publishing
    collector_process.start()
    assert await wait_for_count(db, COUNT_STREAM, 30_000, timeout_s=60) == 30_000
    assert await wait_for_count(db, COUNT_DEAD, 300) == 300
    assert collector_process.terminate() == 0
    assert await db.fetchval(COUNT_STREAM) == 30_000
    assert await db.fetchval(COUNT_DEAD) == 300


async def _wait_until_subscribed(
    db: asyncpg.Connection, broker: MosquittoProcess, city: str, device: str
) -> None:
    """Publish probes (seq NULL) until one is stored: the collector's session exists."""
    for attempt in range(40):
        publish_all(broker.url, [pole_message(city, device, BASE_MS - 1 - attempt)])
        if await wait_for_count(db, COUNT_POLE, 1, timeout_s=0.5):
            return
    raise AssertionError("collector never subscribed")


async def test_collector_rides_out_a_broker_restart(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    fresh_mosquitto: MosquittoProcess,
    city: str,
) -> None:
    """A single collector (no share group): nothing is lost across a broker restart."""
    await _ride_out_broker_restart(db, database_url, fresh_mosquitto, city, group="")


@pytest.mark.xfail(
    strict=True,
    reason="Mosquitto 2.0.11 does not restore shared subscriptions from its persistence file:"
    " messages published after a restart and before the collectors resubscribe are not"
    " queued for them (docs/broker.md). Strict: if the broker fixes it, this test says so.",
)
async def test_shared_collectors_ride_out_a_broker_restart(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    fresh_mosquitto: MosquittoProcess,
    city: str,
) -> None:
    await _ride_out_broker_restart(db, database_url, fresh_mosquitto, city, group="collectors")


async def _ride_out_broker_restart(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    broker: MosquittoProcess,
    city: str,
    *,
    group: str,
) -> None:
    devices = await register_poles(db, city, 20)
    messages = _stream(city, devices, 20_000)
    fresh_mosquitto = broker
    settings = collector_settings(database_url, fresh_mosquitto.url, city=city, ingest_group=group)
    async with running_collector(settings) as collector:
        publish_all(fresh_mosquitto.url, messages[:10_000])
        fresh_mosquitto.restart()  # queued and in-flight messages survive in its persistence
        publish_all(fresh_mosquitto.url, messages[10_000:])
        assert await wait_for_count(db, COUNT_POLE, 20_000, timeout_s=8) == 20_000
        assert collector.source is not None and collector.source.connections >= 2
    assert await db.fetchval(COUNT_POLE) == 20_000


async def test_collector_rides_out_database_connection_cuts(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    devices = await register_poles(db, city, 20)
    messages = _stream(city, devices, 20_000, junk_every=200)
    parts = urlsplit(str(database_url))
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    proxied = str(database_url).replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    settings = collector_settings(
        DatabaseUrl(proxied), mosquitto.url, city=city, ingest_batch_max_messages=1000
    )
    try:
        async with running_collector(settings) as collector:
            publishing = asyncio.create_task(
                asyncio.to_thread(publish_all, mosquitto.url, messages)
            )
            await wait_for_count(db, COUNT_POLE, 2_000)
            for _ in range(5):  # cut mid-batch, several times
                proxy.cut()
                await asyncio.sleep(0.3)
            proxy.refusing = True  # the database is gone for a while
            proxy.cut()
            await asyncio.sleep(1.5)
            proxy.refusing = False
            await publishing
            assert await wait_for_count(db, COUNT_POLE, 20_000, timeout_s=60) == 20_000
            assert await wait_for_count(db, COUNT_DEAD, 100) == 100
            assert collector.metrics.db_retries > 0
    finally:
        await proxy.stop()
    assert await db.fetchval(COUNT_POLE) == 20_000
    assert await db.fetchval(COUNT_DEAD) == 100


async def test_two_collectors_share_one_subscription(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    devices = await register_poles(db, city, 20)
    first = collector_settings(database_url, mosquitto.url, city=city)
    second = collector_settings(
        database_url, mosquitto.url, city=city, ingest_group=first.ingest_group
    )
    async with running_collector(first) as one, running_collector(second) as two:
        publish_all(mosquitto.url, _stream(city, devices, 20_000))
        assert await wait_for_count(db, COUNT_POLE, 20_000, timeout_s=60) == 20_000
    assert one.metrics.received > 2_000 and two.metrics.received > 2_000
    assert one.metrics.received + two.metrics.received == 20_000


async def test_collector_away_gets_a_burst_larger_than_mosquittos_default_queue(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    fresh_mosquitto: MosquittoProcess,
    city: str,
) -> None:
    devices = await register_poles(db, city, 10)
    settings = collector_settings(database_url, fresh_mosquitto.url, city=city)
    async with running_collector(settings):
        pass  # the persistent session now exists; the collector goes away
    publish_all(fresh_mosquitto.url, _stream(city, devices, 5_000))
    async with running_collector(settings):
        assert await wait_for_count(db, COUNT_POLE, 5_000, timeout_s=30) == 5_000


async def test_mosquitto_default_queue_drops_what_our_config_keeps(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    tmp_path: Path,
    city: str,
) -> None:
    """Control for the test above: with Mosquitto's default queue the same burst is cut."""
    broker = start_mosquitto(tmp_path / "defaults", extra_config="max_queued_messages 1000\n")
    try:
        devices = await register_poles(db, city, 10)
        settings = collector_settings(database_url, broker.url, city=city)
        async with running_collector(settings):
            pass
        publish_all(broker.url, _stream(city, devices, 5_000))
        async with running_collector(settings):
            stored = await wait_for_count(db, COUNT_POLE, 5_000, timeout_s=3)
        assert stored < 5_000
    finally:
        broker.stop()
