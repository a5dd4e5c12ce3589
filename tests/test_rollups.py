"""The rollup machinery: rendered SQL, the refresher's ranges, retention, the collector's task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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
from ingest.rollups import RollupRefresher, align, merge_ranges
from ingest.writer import bucket_starts_15m
from schemas.rollup_sql import render_files
from schemas.rollups import LEVELS, STATS
from schemas.topics import Kind

SQL = Path(__file__).parent.parent / "schemas" / "sql"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


def test_rendered_sql_files_are_current() -> None:
    for name, text in render_files().items():
        assert (SQL / name).read_text(encoding="utf-8") == text, (
            f"schemas/sql/{name} differs from schemas/rollups.py: run python -m schemas.rollup_sql"
            " (a migration already applied must not change: add a new one instead)"
        )


def test_every_merge_names_columns_of_its_kind() -> None:
    for kind, stats in STATS.items():
        names = {s.name for s in stats}
        for stat in stats:
            assert set(stat.args) <= names, (kind, stat.name)


def test_merge_ranges_joins_adjacent_buckets() -> None:
    starts = [T0 + 2 * Q, T0, T0 + Q, T0 + 5 * Q, T0]
    assert merge_ranges(starts, Q) == [(T0, T0 + 3 * Q), (T0 + 5 * Q, T0 + 6 * Q)]


def test_align_widens_to_hours_and_local_days() -> None:
    ranges = [(T0 + Q, T0 + 2 * Q), (T0 + 3 * Q, T0 + 4 * Q)]
    assert align(ranges, LEVELS[1], ZoneInfo("UTC")) == [(T0, T0 + timedelta(hours=1))]
    shanghai = align(ranges, LEVELS[2], ZoneInfo("Asia/Shanghai"))
    assert shanghai == [
        (datetime(2026, 11, 1, 16, tzinfo=UTC), datetime(2026, 11, 2, 16, tzinfo=UTC))
    ]
    # A day with a daylight-saving change is 25 hours long, and still one bucket.
    berlin = align(
        [(datetime(2026, 10, 25, 12, tzinfo=UTC), datetime(2026, 10, 25, 13, tzinfo=UTC))],
        LEVELS[2],
        ZoneInfo("Europe/Berlin"),
    )
    assert berlin == [
        (datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC))
    ]


def test_bucket_starts_from_min_and_max_or_every_row() -> None:
    def rows(*offsets_s: float) -> list[tuple[str, datetime]]:
        return [("d", T0 + timedelta(seconds=s)) for s in offsets_s]

    assert bucket_starts_15m(rows(1, 5, 899)) == [T0]
    assert bucket_starts_15m(rows(1, 901)) == [T0, T0 + Q]
    assert bucket_starts_15m(rows(0, 86400 * 3, 5)) == [T0, T0 + timedelta(days=3)]


async def test_refreshers_take_turns(db: asyncpg.Connection, database_url: DatabaseUrl) -> None:
    other = await asyncpg.connect(str(database_url))
    try:
        await other.execute("SELECT pg_advisory_lock($1)", 0x0C17_7E2)
        assert (await RollupRefresher().refresh(db)).skipped
        await other.execute("SELECT pg_advisory_unlock($1)", 0x0C17_7E2)
        assert not (await RollupRefresher().refresh(db)).skipped
    finally:
        await other.close()


async def test_prune_rollups_keeps_each_level_its_time(db: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    old, older = now - timedelta(days=100), now - timedelta(days=2000)
    for table in ("pole_rollup_15m", "pole_rollup_1h", "pole_rollup_1d"):
        await db.executemany(
            f"INSERT INTO {table} (device_id, bucket, samples) VALUES ('p', $1, 1)",
            [(now,), (old,), (older,)],
        )
    await db.executemany(
        "INSERT INTO pole_area_1h (city, district, bucket, devices) VALUES ('c', '', $1, 1)",
        [(now,), (old,), (older,)],
    )
    deleted = await prune_rollups(db, retention_days=90, rollup_retention_days=1825)
    assert deleted == 2 + 1 + 1 + 1  # 15m: old and older; 1h, 1d and area 1h: older
    counts = [
        await db.fetchval(f"SELECT count(*) FROM {t}")
        for t in ("pole_rollup_15m", "pole_rollup_1h", "pole_rollup_1d", "pole_area_1h")
    ]
    assert counts == [1, 2, 2, 2]


async def test_the_collector_refreshes_the_rollups(
    db: asyncpg.Connection, database_url: DatabaseUrl, mosquitto: MosquittoProcess, city: str
) -> None:
    (pole,) = await register_poles(db, city, 1)
    settings = collector_settings(
        database_url, mosquitto.url, city=city, ingest_rollup_refresh_s=0.2
    )
    async with running_collector(settings):
        publish_all(
            mosquitto.url, [pole_message(city, pole, BASE_MS + i * 1000) for i in range(30)]
        )
        samples = await wait_for_count(
            db, "SELECT coalesce(sum(samples), 0) FROM pole_rollup_1d", 30, timeout_s=15
        )
    assert samples == 30
    assert await db.fetchval("SELECT sum(samples) FROM pole_area_1h WHERE city = $1", city) == 30
    assert await db.fetchval("SELECT count(*) FROM rollup_invalidations") == 0


@pytest.mark.parametrize("kind", list(Kind))
async def test_refresh_range_recomputes_rows_written_without_the_collector(
    db: asyncpg.Connection, kind: Kind
) -> None:
    await db.execute(
        "INSERT INTO devices (device_id, kind, city) VALUES ('x1', $1, 'anywhere')", str(kind)
    )
    await db.execute(
        "SELECT citytel_ensure_partitions($1::regclass, ARRAY[$2::date])",
        f"{kind}_telemetry",
        T0.date(),
    )
    fill = {"pole": "lamp_on", "signal": "mode", "energy": "pv_kw"}[str(kind)]
    value = {"pole": True, "signal": "adaptive", "energy": 1.0}[str(kind)]
    await db.executemany(
        f"INSERT INTO {kind}_telemetry (device_id, ts, {fill}) VALUES ('x1', $1, $2)",
        [(T0 + timedelta(minutes=m), value) for m in range(0, 120, 10)],
    )
    await RollupRefresher().refresh_range(db, T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert await db.fetchval(f"SELECT sum(samples) FROM {kind}_rollup_1d") == 12
    assert await db.fetchval(f"SELECT count(*) FROM {kind}_rollup_1h") == 2
    assert await db.fetchval(f"SELECT sum(samples) FROM {kind}_area_15m") == 12
