"""The metric views of 003_indicators.sql against hand-computed values on seeded rows.

Each test seeds and queries inside one transaction, so ``now()`` is the same instant
for the rows and the views, and boundary cases (exactly 3 intervals old, exactly
15 minutes old) are exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

PARTITIONS = """
SELECT citytel_ensure_partitions(t::regclass, ARRAY[
    (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date])
FROM unnest(ARRAY['pole_telemetry', 'signal_telemetry', 'energy_telemetry']) t
"""


@pytest.fixture
async def tx(db: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The test database in one transaction (one ``now()``), partitions for today."""
    await db.execute(PARTITIONS)
    async with db.transaction():
        yield db


async def add_device(
    db: asyncpg.Connection,
    device_id: str,
    kind: str,
    *,
    city: str = "alpha",
    district: str | None = None,
    interval_s: float = 60,
) -> None:
    await db.execute(
        "INSERT INTO devices (device_id, kind, city, district, interval_s)"
        " VALUES ($1, $2, $3, $4, $5)",
        device_id,
        kind,
        city,
        district,
        interval_s,
    )


async def set_status(
    db: asyncpg.Connection, device_id: str, *, online: bool, age_s: float | None
) -> None:
    """``last_seen`` = ``age_s`` seconds before now(); None: never heard."""
    await db.execute(
        "INSERT INTO device_status (device_id, online, last_seen) VALUES"
        " ($1, $2, CASE WHEN $3::float8 IS NULL THEN NULL"
        " ELSE now() - make_interval(secs => $3::float8) END)",
        device_id,
        online,
        age_s,
    )


async def add_mode(db: asyncpg.Connection, device_id: str, mode: str, *, age_s: float) -> None:
    await db.execute(
        "INSERT INTO signal_telemetry (device_id, ts, mode)"
        " VALUES ($1, now() - make_interval(secs => $3), $2)",
        device_id,
        mode,
        age_s,
    )


async def add_energy(db: asyncpg.Connection, device_id: str, *, age_s: float, **kw: Any) -> None:
    await db.execute(
        "INSERT INTO energy_telemetry (device_id, ts, pv_kw, wind_kw, grid_kw)"
        " VALUES ($1, now() - make_interval(secs => $2), $3, $4, $5)",
        device_id,
        age_s,
        kw.get("pv_kw"),
        kw.get("wind_kw"),
        kw.get("grid_kw"),
    )


# --- functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "intelligent"),
    [
        ("adaptive", True),
        ("coordinated", True),
        ("actuated", True),  # GB/T 20999 vehicle-actuated control counts by default
        ("fixed_time", False),
        ("manual", False),
        ("flash", False),
        ("all_red", False),
        ("off", False),
    ],
)
async def test_is_intelligent_timing_follows_the_default_set(
    db: asyncpg.Connection, mode: str, intelligent: bool
) -> None:
    sql = "SELECT citytel_is_intelligent_timing($1, $2)"
    assert await db.fetchval(sql, mode, "a-city-without-settings") is intelligent


async def test_is_intelligent_timing_follows_the_city_set(tx: asyncpg.Connection) -> None:
    await tx.execute(
        "INSERT INTO city_settings (city, intelligent_modes) VALUES ('strict', '{adaptive}')"
    )
    sql = "SELECT citytel_is_intelligent_timing($1, $2)"
    assert await tx.fetchval(sql, "adaptive", "strict") is True
    assert await tx.fetchval(sql, "actuated", "strict") is False
    assert await tx.fetchval(sql, "actuated", "jinan") is True


@pytest.mark.parametrize(
    ("age_s", "interval_s", "fresh"),
    [(0, 60, True), (179.5, 60, True), (180, 60, False), (1799, 600, True), (None, 60, False)],
)
async def test_is_fresh_within_three_intervals(
    db: asyncpg.Connection, age_s: float | None, interval_s: float, fresh: bool
) -> None:
    sql = (
        "SELECT citytel_is_fresh(CASE WHEN $1::float8 IS NULL THEN NULL"
        " ELSE now() - make_interval(secs => $1::float8) END, $2)"
    )
    assert await db.fetchval(sql, age_s, interval_s) is fresh


# --- signal-timing coverage -----------------------------------------------------------------


async def seed_signals(db: asyncpg.Connection) -> None:
    """alpha: 5 registered signals; beta: 1 adaptive; one unregistered controller."""
    for device_id in ("s1", "s2", "s3", "s4", "s5"):
        await add_device(db, device_id, "signal")
    await add_device(db, "b1", "signal", city="beta")
    await add_mode(db, "s1", "adaptive", age_s=60)
    await add_mode(db, "s2", "adaptive", age_s=840)  # 14 min: still current
    await add_mode(db, "s3", "fixed_time", age_s=600)
    await add_mode(db, "s3", "coordinated", age_s=120)  # the newest mode counts
    await add_mode(db, "s4", "adaptive", age_s=300)
    await add_mode(db, "s4", "fixed_time", age_s=30)  # fell back to fixed time
    await add_mode(db, "s5", "adaptive", age_s=900)  # exactly 15 min: not current
    await add_mode(db, "s5", "coordinated", age_s=3600)
    await add_mode(db, "b1", "adaptive", age_s=60)
    await add_mode(db, "ghost", "adaptive", age_s=60)  # not in the registry


async def test_signal_current_mode_is_the_newest_within_15_minutes(
    tx: asyncpg.Connection,
) -> None:
    await seed_signals(tx)
    rows = await tx.fetch("SELECT device_id, mode FROM signal_current_mode ORDER BY 1")
    # "ghost" is not in the registry: without a reporting interval it has no current mode.
    assert [(r["device_id"], r["mode"]) for r in rows] == [
        ("b1", "adaptive"),
        ("s1", "adaptive"),
        ("s2", "adaptive"),
        ("s3", "coordinated"),
        ("s4", "fixed_time"),
    ]


async def test_signal_timing_coverage_counts_registered_intersections(
    tx: asyncpg.Connection,
) -> None:
    await seed_signals(tx)
    rows = await tx.fetch("SELECT * FROM signal_timing_coverage ORDER BY city")
    assert [dict(r) for r in rows] == [
        {
            "city": "alpha",
            "intersections": 5,
            "reporting": 4,  # s5's modes are 15 and 60 minutes old
            "intelligent": 3,  # s1, s2 adaptive; s3 coordinated; s4 fixed_time
            "coverage_pct": Decimal("60.00"),
            "target_pct": Decimal("40.0"),
        },
        {
            "city": "beta",
            "intersections": 1,
            "reporting": 1,
            "intelligent": 1,
            "coverage_pct": Decimal("100.00"),
            "target_pct": Decimal("40.0"),
        },
    ]


async def test_signal_timing_coverage_is_zero_when_no_controller_reports(
    tx: asyncpg.Connection,
) -> None:
    await add_device(tx, "s1", "signal")
    await add_device(tx, "s2", "signal")
    await add_mode(tx, "s1", "adaptive", age_s=16 * 60)
    row = await tx.fetchrow("SELECT * FROM signal_timing_coverage")
    assert (row["intersections"], row["reporting"], row["coverage_pct"]) == (2, 0, Decimal("0"))


# --- device and feed freshness, pole online rate -----------------------------------------------


async def seed_poles(db: asyncpg.Connection) -> None:
    await add_device(db, "p1", "pole", district="north")
    await add_device(db, "p2", "pole", district="north")
    await add_device(db, "p3", "pole")
    await add_device(db, "p4", "pole")
    await add_device(db, "p5", "pole", district="south", interval_s=600)
    await add_device(db, "s1", "signal", district="north")
    await add_device(db, "q1", "pole", city="beta", district="east")
    await set_status(db, "p1", online=True, age_s=30)  # online now
    await set_status(db, "p2", online=True, age_s=180)  # says online, but 3 x 60 s old
    await set_status(db, "p3", online=False, age_s=10)  # fresh, but reports offline
    # p4: registered, never heard
    await set_status(db, "p5", online=True, age_s=1200)  # 20 min < 3 x 600 s
    await set_status(db, "s1", online=True, age_s=5)  # not a pole
    await set_status(db, "q1", online=True, age_s=5)


async def test_device_freshness_flags_each_device(tx: asyncpg.Connection) -> None:
    await seed_poles(tx)
    rows = await tx.fetch(
        "SELECT device_id, age_s, fresh, online_now FROM device_freshness ORDER BY device_id"
    )
    assert [tuple(r) for r in rows] == [
        ("p1", 30.0, True, True),
        ("p2", 180.0, False, False),
        ("p3", 10.0, True, False),
        ("p4", None, False, False),
        ("p5", 1200.0, True, True),
        ("q1", 5.0, True, True),
        ("s1", 5.0, True, True),
    ]


async def test_pole_online_rate_needs_online_status_and_a_fresh_feed(
    tx: asyncpg.Connection,
) -> None:
    await seed_poles(tx)
    by_district = await tx.fetch(
        "SELECT * FROM pole_online_rate_by_district ORDER BY city, district"
    )
    assert [tuple(r) for r in by_district] == [
        ("alpha", "", 2, 0, Decimal("0.00")),
        ("alpha", "north", 2, 1, Decimal("50.00")),
        ("alpha", "south", 1, 1, Decimal("100.00")),
        ("beta", "east", 1, 1, Decimal("100.00")),
    ]
    rows = await tx.fetch("SELECT * FROM pole_online_rate ORDER BY city")
    assert [tuple(r) for r in rows] == [
        ("alpha", 5, 2, Decimal("40.00")),
        ("beta", 1, 1, Decimal("100.00")),
    ]


async def test_feed_freshness_per_city_and_kind(tx: asyncpg.Connection) -> None:
    await seed_poles(tx)
    rows = await tx.fetch("SELECT * FROM feed_freshness WHERE city = 'alpha' ORDER BY kind")
    assert [dict(r) for r in rows] == [
        {
            "city": "alpha",
            "kind": "pole",
            "devices": 5,
            "fresh": 3,  # p1, p3 (offline, but its feed is fresh), p5
            "stale": 2,  # p2 (exactly 3 intervals old), p4 (never heard)
            "fresh_pct": Decimal("60.00"),
            "median_age_s": 105.0,  # of 10, 30, 180, 1200 s: p4 has no age
            "max_age_s": 1200.0,
        },
        {
            "city": "alpha",
            "kind": "signal",
            "devices": 1,
            "fresh": 1,
            "stale": 0,
            "fresh_pct": Decimal("100.00"),
            "median_age_s": 5.0,
            "max_age_s": 5.0,
        },
    ]


# --- renewable self-consumption -----------------------------------------------------------------


async def test_renewable_self_consumption_per_site_over_the_last_hour(
    tx: asyncpg.Connection,
) -> None:
    for site in ("e1", "e3", "e4", "e5"):
        await add_device(tx, site, "energy")
    await add_device(tx, "f1", "energy", city="beta")
    for minute in (5, 20, 35, 50):  # 12 kW generated, 3 kW exported
        await add_energy(tx, "e1", age_s=minute * 60, pv_kw=10, wind_kw=2, grid_kw=-3)
    await add_energy(tx, "e1", age_s=2 * 3600, pv_kw=10, wind_kw=2, grid_kw=-12)  # too old
    await add_energy(tx, "e3", age_s=60, pv_kw=4, grid_kw=5)  # importing: all used on site
    await add_energy(tx, "e4", age_s=60, pv_kw=2, grid_kw=-5)  # battery exports too: 0 %
    # Export counts per reading: -4 then +4 kW is 2 kW exported on average, not 0.
    await add_energy(tx, "e5", age_s=60, pv_kw=8, grid_kw=-4)
    await add_energy(tx, "e5", age_s=120, pv_kw=8, grid_kw=4)
    await add_energy(tx, "f1", age_s=60, pv_kw=5, grid_kw=-1)
    rows = await tx.fetch(
        "SELECT city, device_id, renewable_kw, export_kw, self_consumption_pct"
        " FROM renewable_self_consumption ORDER BY device_id"
    )
    assert [tuple(r) for r in rows] == [
        ("alpha", "e1", 12.0, 3.0, Decimal("75.00")),
        ("alpha", "e3", 4.0, 0.0, Decimal("100.00")),
        ("alpha", "e4", 2.0, 5.0, Decimal("0.00")),
        ("alpha", "e5", 8.0, 2.0, Decimal("75.00")),
        ("beta", "f1", 5.0, 1.0, Decimal("80.00")),
    ]


async def test_renewable_self_consumption_has_no_value_without_generation(
    tx: asyncpg.Connection,
) -> None:
    await add_device(tx, "e1", "energy")
    await add_energy(tx, "e1", age_s=60, pv_kw=0, wind_kw=0, grid_kw=4)  # night
    row = await tx.fetchrow(
        "SELECT renewable_kw, self_consumption_pct FROM renewable_self_consumption"
    )
    assert row["renewable_kw"] == 0.0
    assert row["self_consumption_pct"] is None
