"""Operating collectors: the per-device rate limit, the metrics port, retiring a member."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import urllib.request

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

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl

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
