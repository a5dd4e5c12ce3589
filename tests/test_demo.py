"""``citytel demo`` end to end: messages flow, the API answers, Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
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

from citytel import demo_services
from core.broker import MosquittoProcess, free_port
from core.urls import DatabaseUrl


@pytest.mark.slow
async def test_demo_flows_serves_and_stops_cleanly(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    tmp_path: Path,
) -> None:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYTEL_")}
    env.update(
        CITYTEL_DATABASE_URL=str(database_url), CITYTEL_MQTT_URL=mosquitto.url, COLUMNS="200"
    )
    command = [
        sys.executable,
        "-m",
        "citytel",
        "demo",
        "--poles",
        "20",
        "--signals",
        "6",
        "--energy",
        "2",
        "--interval-s",
        "1",
        "--api-port",
        str(api_port),
        "--data-dir",
        str(tmp_path),
    ]
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = await asyncio.to_thread(
            subprocess.Popen, command, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        stored = await wait_for_count(db, "SELECT count(*) FROM pole_telemetry", 20, timeout_s=40)
        assert stored >= 20, log.read_text()

        def get(path: str, key: str | None = None) -> bytes:
            url = f"http://127.0.0.1:{api_port}{path}"
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.read()

        assert b'"ok"' in await asyncio.to_thread(get, "/healthz")
        key = re.search(r"API key: +(ctk_\S+)", log.read_text())
        assert key is not None, log.read_text()
        assert f'curl -H "Authorization: Bearer {key[1]}"' in log.read_text()
        devices = await asyncio.to_thread(get, "/v1/devices?city=jinan&limit=5", key[1])
        assert b'"device_id"' in devices
        assert (
            await db.fetchval(
                "SELECT intersections FROM signal_timing_coverage WHERE city = 'jinan'"
            )
            == 6
        )
    finally:
        demo.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(demo.wait, 30)
    output = log.read_text()
    assert code == 0, output
    assert "rows stored" in output and "stopped; nothing left running." in output


async def test_demo_embedded_broker_carries_messages_when_mosquitto_is_missing(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    city: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the mosquitto binary the demo falls back to amqtt (MQTT 3.1.1, no share)."""
    monkeypatch.setattr(demo_services, "mosquitto_binary", lambda: None)
    devices = await register_poles(db, city, 5)
    async with AsyncExitStack() as stack:
        broker = await demo_services.resolve_broker(stack, None, tmp_path)
        assert (broker.origin, broker.protocol) == ("embedded amqtt", "3.1.1")
        settings = collector_settings(
            database_url,
            str(broker.url),
            city=city,
            ingest_protocol=broker.protocol,
            ingest_group="",
        )
        async with running_collector(settings):
            messages = [pole_message(city, devices[i % 5], BASE_MS + i) for i in range(200)]
            await asyncio.to_thread(publish_all, str(broker.url), messages)
            stored = await wait_for_count(db, "SELECT count(*) FROM pole_telemetry", 200)
    assert stored == 200
