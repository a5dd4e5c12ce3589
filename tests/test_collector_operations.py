"""Operating collectors: the per-device rate limit, the metrics port, retiring a member."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.request

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import (
    BASE_MS,
    collector_settings,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
)

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from ingest.retire import retire_collector

pytestmark = pytest.mark.timeout(60)


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return reply.read().decode()


async def test_collector_rate_limit_dead_letters_the_excess_and_counts_it(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    noisy, quiet = await register_poles(db, city, 2)
    # A bucket of 5 that refills once every 10 s: the 6th message of a burst is refused.
    settings = collector_settings(
        database_url,
        mosquitto.url,
        city=city,
        ingest_rate_limit_per_s=0.1,
        ingest_rate_limit_burst=5,
    )
    async with running_collector(settings) as collector:
        messages = [pole_message(city, noisy, BASE_MS + i) for i in range(20)]
        messages += [pole_message(city, quiet, BASE_MS + i) for i in range(3)]
        await asyncio.to_thread(publish_all, mosquitto.url, messages)
        await wait_for_count(db, "SELECT count(*) FROM dead_letters", 15)
        assert collector.metrics_port is not None
        metrics = await asyncio.to_thread(_get, collector.metrics_port, "/metrics")
    stored = await db.fetch(
        "SELECT device_id, count(*) AS n FROM pole_telemetry GROUP BY device_id ORDER BY 1"
    )
    assert {r["device_id"]: r["n"] for r in stored} == {noisy: 5, quiet: 3}
    refused = await db.fetch("SELECT device_id, reason FROM dead_letters")
    assert len(refused) == 15
    assert {(r["device_id"], r["reason"]) for r in refused} == {(noisy, "rate_limited")}
    assert 'citytel_dead_letters_total{reason="rate_limited"} 15' in metrics


async def test_collector_metrics_port_zero_picks_a_free_port_and_logs_it(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = collector_settings(database_url, mosquitto.url, city=city, ingest_metrics_port=0)
    with caplog.at_level(logging.INFO, logger="ingest.metrics"):
        async with running_collector(settings) as collector:
            port = collector.metrics_port
            assert port  # bound, not 0
            health = await asyncio.to_thread(_get, port, "/healthz")
    assert '"status":"ok"' in health
    assert f"metrics on http://127.0.0.1:{port}/metrics" in caplog.text


async def test_second_collector_on_a_busy_metrics_port_says_which_setting_to_change(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    first = collector_settings(database_url, mosquitto.url, city=city)
    async with running_collector(first) as collector:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYTEL_")}
        env |= {
            "CITYTEL_DATABASE_URL": str(database_url),
            "CITYTEL_MQTT_URL": mosquitto.url,
            "CITYTEL_INGEST_CLIENT_ID": "second-on-this-host",
            "CITYTEL_INGEST_METRICS_PORT": str(collector.metrics_port),
        }
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", "from citytel.cli import main; main()", "collect"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr  # no traceback
    assert "already in use" in lines[0] and "CITYTEL_INGEST_METRICS_PORT" in lines[0]


def _session_present(port: int, client_id: str, protocol: str) -> bool:
    """Does the broker still hold a session for ``client_id``? (Connect without a clean
    start and read CONNACK's flag; the session expiry of 0 leaves nothing behind.)"""
    v5 = protocol == "5"
    flags: list[bool] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else False,
    )
    client.on_connect = lambda *args: flags.append(args[2].session_present)
    if v5:
        client.connect(
            "127.0.0.1", port, clean_start=False, properties=Properties(PacketTypes.CONNECT)
        )
    else:
        client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not flags and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    assert flags, "no CONNACK"
    return flags[0]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_retired_collector_stores_its_share_and_leaves_the_group(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
    protocol: str,
) -> None:
    devices = await register_poles(db, city, 10)
    count = "SELECT count(*) FROM pole_telemetry"

    def messages(start: int, n: int) -> list[tuple[str, bytes]]:
        return [pole_message(city, devices[i % 10], BASE_MS + start + i) for i in range(n)]

    group = f"g{secrets.token_hex(4)}"
    settings = {"city": city, "ingest_group": group, "ingest_protocol": protocol}
    retiring = collector_settings(database_url, mosquitto.url, **settings)
    staying = collector_settings(database_url, mosquitto.url, **settings)
    async with running_collector(staying):
        async with running_collector(retiring):
            await asyncio.sleep(0.3)  # both subscribed
        # Stopped, the first member keeps its persistent session, and with it its share.
        await asyncio.to_thread(publish_all, mosquitto.url, messages(0, 200))
        report = await retire_collector(retiring, quiet_s=0.5)
        assert report.session_present and 0 < report.drained < 200, report
        assert await wait_for_count(db, count, 200, timeout_s=10) == 200
        # Out of the group: everything published now reaches the remaining collector.
        await asyncio.to_thread(publish_all, mosquitto.url, messages(200, 100))
        assert await wait_for_count(db, count, 300, timeout_s=10) == 300
    assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0
    assert not await asyncio.to_thread(
        _session_present, mosquitto.port, retiring.ingest_client_id, protocol
    )
