"""``citytel demo`` end to end: messages flow, the API answers, Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from support import wait_for_count

from citytel.broker import MosquittoProcess, free_port
from citytel.urls import DatabaseUrl


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

        def health() -> bytes:
            url = f"http://127.0.0.1:{api_port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.read()

        assert b'"ok"' in await asyncio.to_thread(health)
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
