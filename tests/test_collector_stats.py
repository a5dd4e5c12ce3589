"""The collector writes its own figures to collector_stats (no Prometheus needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
from ingest.maintenance import prune_rollups
from ingest.stats import bucket_quantile

SUMS = """\
SELECT coalesce(sum(received), 0) AS received, coalesce(sum(committed_rows), 0) AS rows,
       coalesce(sum(dead_letters), 0) AS dead, coalesce(sum(batches), 0) AS batches,
       count(*) FILTER (WHERE batches > 0 AND commit_p99_s >= commit_p50_s
                        AND commit_avg_s > 0) AS timed,
       count(*) FILTER (WHERE batches = 0 AND commit_p50_s IS NULL) AS idle
FROM collector_stats WHERE collector_id = $1"""


def test_bucket_quantile_interpolates_like_prometheus() -> None:
    bounds = (0.01, 0.1, 1.0)
    assert bucket_quantile(0.5, bounds, (0, 0, 0, 0)) is None
    # 10 batches: 4 up to 10 ms, 6 between 10 and 100 ms.
    assert bucket_quantile(0.5, bounds, (4, 6, 0, 0)) == pytest.approx(0.01 + 0.09 * 1 / 6)
    assert bucket_quantile(0.2, bounds, (4, 6, 0, 0)) == pytest.approx(0.005)
    # The rank in +Inf answers the highest finite bound.
    assert bucket_quantile(0.99, bounds, (0, 0, 9, 1)) == 1.0


async def test_collector_writes_its_figures_every_interval(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    poles = await register_poles(db, city, 2)
    settings = collector_settings(
        database_url, mosquitto.url, city=city, ingest_stats_interval_s=0.2
    )
    messages = [pole_message(city, poles[i % 2], BASE_MS + i * 1000) for i in range(40)]
    messages.append((f"citytel/v1/{city}/pole/{poles[0]}/telemetry", b"{not json"))
    async with running_collector(settings):
        publish_all(mosquitto.url, messages)
        await wait_for_count(db, "SELECT count(*) FROM pole_telemetry", 40)
        await wait_for_count(
            db, "SELECT coalesce(sum(received), 0) FROM collector_stats WHERE collector_id = $1",
            41, settings.ingest_client_id, timeout_s=10,
        )  # fmt: skip
        await wait_for_count(
            db, "SELECT count(*) FROM collector_stats WHERE collector_id = $1 AND batches = 0",
            1, settings.ingest_client_id, timeout_s=10,
        )  # fmt: skip
    row = await db.fetchrow(SUMS, settings.ingest_client_id)
    assert (row["received"], row["rows"], row["dead"]) == (41, 40, 1)
    assert row["batches"] >= 1 and row["timed"] >= 1 and row["idle"] >= 1
    gaps = await db.fetch(
        "SELECT interval_s FROM collector_stats WHERE collector_id = $1",
        settings.ingest_client_id,
    )
    assert all(0.1 < r["interval_s"] < 5 for r in gaps)


async def test_collector_stats_are_pruned_with_raw_data(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await db.executemany(
        "INSERT INTO collector_stats (collector_id, ts, interval_s, received, committed_rows,"
        " duplicates, dead_letters, batches, queue_depth) VALUES ('c', $1, 10, 1, 1, 0, 0, 1, 0)",
        [(now,), (now - timedelta(days=91),)],
    )
    await prune_rollups(db, retention_days=90, rollup_retention_days=1825)
    assert await db.fetchval("SELECT count(*) FROM collector_stats") == 1
