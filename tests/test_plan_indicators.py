"""Rollups and plan indicators over periods, against numbers worked out by hand
(tests/plan_scenario.py), on the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import orjson
import pytest
from plan_scenario import DAY1, DAY2, END, device, messages, register, store

from core.urls import DatabaseUrl
from ingest.rollups import RollupRefresher

INDICATOR = (
    "SELECT period_start, period_end, value, numerator, denominator, is_total"
    " FROM citytel_indicator($1, $2, $3, $4, $5, $6)"
)


@pytest.fixture
async def city_db(
    db: asyncpg.Connection, database_url: DatabaseUrl, city: str
) -> AsyncIterator[asyncpg.Connection]:
    """The scenario written through the collector's writer, rollups refreshed."""
    await register(db, city)
    await store(db, str(database_url), messages(city))
    report = await RollupRefresher().refresh(db)
    assert report.log_rows > 0 and not report.skipped
    assert await db.fetchval("SELECT count(*) FROM rollup_invalidations") == 0
    yield db


async def _points(
    db: asyncpg.Connection, name: str, city: str, district: str | None = None, period: str = "day"
) -> list[tuple[float | None, float | None, float | None]]:
    rows = await db.fetch(INDICATOR, name, city, district, DAY1, END, period)
    return [(r["value"], r["numerator"], r["denominator"]) for r in rows]


def _approx(rows: list[tuple[float | None, ...]]) -> list[tuple[object, ...]]:
    return [tuple(None if v is None else pytest.approx(v) for v in row) for row in rows]


async def test_device_rollups_hold_the_scenario_per_level(
    city_db: asyncpg.Connection, city: str
) -> None:
    day = await city_db.fetchrow(
        "SELECT * FROM pole_rollup_1d WHERE device_id = $1 AND bucket = $2",
        device(city, "p1"),
        DAY1,
    )
    assert day is not None, "daily buckets start at local midnight (Asia/Shanghai)"
    assert (day["samples"], day["lamp_samples"], day["lamp_on_samples"]) == (144, 144, 48)
    assert day["lamp_energy_kwh"] == pytest.approx(0.8)
    assert day["pm25_max_ugm3"] == 80.0
    assert day["pm25_avg_ugm3"] == pytest.approx((12 * 80 + 132 * 30) / 144)
    hours = await city_db.fetchval(
        "SELECT count(*) FROM pole_rollup_1h WHERE device_id = $1 AND bucket >= $2 AND bucket < $3",
        device(city, "p1"),
        DAY1,
        END,
    )
    assert hours == 36
    energy = await city_db.fetchrow(
        "SELECT * FROM energy_rollup_1d WHERE device_id = $1", device(city, "e1")
    )
    assert energy["bucket"] == DAY1
    assert (energy["pv_kwh"], energy["import_kwh"], energy["load_kwh"]) == (160, 397.5, 487.5)
    assert (energy["charge_kwh"], energy["discharge_kwh"], energy["export_kwh"]) == (40, 7.5, 40)
    assert (energy["balance_checked"], energy["balance_failed"]) == (96, 1)
    assert (energy["import_max_kw"], energy["net_load_max_kw"]) == (20, 50)
    s1 = await city_db.fetch(
        "SELECT bucket, adaptive_samples, fixed_time_samples FROM signal_rollup_1d"
        " WHERE device_id = $1 ORDER BY bucket",
        device(city, "s1"),
    )
    assert [tuple(r) for r in s1] == [(DAY1, 10, 0), (DAY2, 4, 6)]


async def test_area_rollups_sum_the_devices_of_a_district(city_db: asyncpg.Connection) -> None:
    rows = await city_db.fetch(
        "SELECT district, sum(samples) AS samples, sum(devices) AS device_hours"
        " FROM signal_area_1h GROUP BY district ORDER BY district"
    )
    assert [tuple(r) for r in rows] == [("north", 50, 5)]  # s5 in south never reported
    capped = await city_db.fetchval("SELECT sum(samples_capped) FROM pole_area_1h")
    assert capped == 216


async def test_signal_timing_coverage_per_day_and_total(
    city_db: asyncpg.Connection, city: str
) -> None:
    assert _approx(await _points(city_db, "signal_timing_coverage", city, "north")) == _approx(
        [(0.5, 2, 4), (0.25, 1, 4), (0.375, 3, 8)]
    )
    # The city counts s5 (south, silent) too: 2/5, 1/5, 3/10.
    assert _approx(await _points(city_db, "signal_timing_coverage", city)) == _approx(
        [(0.4, 2, 5), (0.2, 1, 5), (0.3, 3, 10)]
    )


async def test_signal_rates_and_mode_mix(city_db: asyncpg.Connection, city: str) -> None:
    assert _approx(await _points(city_db, "signal_coordinated_rate", city)) == _approx(
        [(0.0, 0, 30), (0.5, 10, 20), (0.2, 10, 50)]
    )
    assert _approx(await _points(city_db, "signal_mode_mix", city)) == _approx(
        [(0.5, 15, 30), (0.7, 14, 20), (0.58, 29, 50)]
    )
    mix = await city_db.fetch(
        "SELECT period_start, mode, samples, share FROM citytel_signal_mode_mix($1, NULL, $2, $3)"
        " WHERE samples > 0",
        city,
        DAY1,
        END,
    )
    assert {(r["period_start"], r["mode"]): r["samples"] for r in mix} == {
        (DAY1, "adaptive"): 10,
        (DAY1, "actuated"): 5,
        (DAY1, "flash"): 5,
        (DAY1, "fixed_time"): 10,
        (DAY2, "adaptive"): 4,
        (DAY2, "fixed_time"): 6,
        (DAY2, "coordinated"): 10,
    }


async def test_the_intelligent_set_is_data_per_city(city_db: asyncpg.Connection, city: str) -> None:
    await city_db.execute(
        "INSERT INTO city_settings (city, intelligent_modes) VALUES ($1, '{adaptive,coordinated}')",
        city,
    )
    report = await RollupRefresher().refresh(city_db)
    assert report.rebuilt_cities == [city]
    # day 1: s2 (actuated + flash) is no longer covered: 1/4; day 2 unchanged: 1/4.
    assert _approx(await _points(city_db, "signal_timing_coverage", city, "north")) == _approx(
        [(0.25, 1, 4), (0.25, 1, 4), (0.25, 2, 8)]
    )


async def test_pole_indicators(city_db: asyncpg.Connection, city: str) -> None:
    assert _approx(await _points(city_db, "pole_online_rate", city)) == _approx(
        [(0.5, 144, 288), (0.25, 72, 288), (0.375, 216, 576)]
    )
    assert _approx(await _points(city_db, "pole_lamp_on_night_rate", city)) == _approx(
        [(48 / 54, 48, 54), (1.0, 30, 30), (78 / 84, 78, 84)]
    )
    assert _approx(await _points(city_db, "pole_lighting_energy", city)) == _approx(
        [(0.8, None, None), (0.5, None, None), (1.3, None, None)]
    )
    assert _approx(await _points(city_db, "pole_pm25_exceedance_hours", city)) == _approx(
        [(2, 2, 24), (0, 0, 12), (2, 2, 36)]
    )


async def test_energy_indicators(city_db: asyncpg.Connection, city: str) -> None:
    expected = {
        "energy_renewable_generation": (160, None, None),
        "energy_self_consumption": (0.75, 120, 160),
        "energy_self_sufficiency": (90 / 487.5, 90, 487.5),
        "energy_storage_throughput": (47.5, None, None),
        "energy_peak_grid_import": (20, None, None),
        "energy_peak_shaving": (0.6, 30, 50),
        "energy_balance_failure_share": (1 / 96, 1, 96),
    }
    for name, day1 in expected.items():
        points = await _points(city_db, name, city)
        assert _approx([points[0], points[2]]) == _approx([day1, day1]), name
        assert points[1][0] in (0, None), (name, points[1])  # no energy data on day 2


async def test_periods_follow_local_weeks_and_months(
    city_db: asyncpg.Connection, city: str
) -> None:
    rows = await city_db.fetch(
        INDICATOR, "signal_timing_coverage", city, "north", DAY1, END, "week"
    )
    # 2026-11-02 is a Monday: both days fall in one local week.
    assert [(r["period_start"], r["period_end"], r["numerator"]) for r in rows] == [
        (DAY1, END, 3),
        (DAY1, END, 3),
    ]
    month = await city_db.fetch(
        INDICATOR, "pole_online_rate", city, None, DAY1 - timedelta(days=5), END, "month"
    )
    assert [(r["period_start"].astimezone(DAY1.tzinfo).day, r["is_total"]) for r in month] == [
        (28, False),  # 2026-10-28 (the from), cut to the October month's end
        (1, False),
        (28, True),
    ]


async def test_late_data_is_included_at_the_next_refresh(
    city_db: asyncpg.Connection, database_url: DatabaseUrl, city: str
) -> None:
    late = [
        (
            f"citytel/v1/{city}/signal/{device(city, 's4')}/telemetry",
            orjson.dumps(
                {"ts": int((DAY1 + timedelta(hours=3)).timestamp() * 1000), "mode": "adaptive"}
            ),
        )
    ]
    await store(city_db, str(database_url), iter(late))
    before = await _points(city_db, "signal_timing_coverage", city, "north")
    assert before[0][1] == 2  # not refreshed yet
    await RollupRefresher().refresh(city_db)
    after = await _points(city_db, "signal_timing_coverage", city, "north")
    assert _approx(after) == _approx([(0.75, 3, 4), (0.25, 1, 4), (0.5, 4, 8)])
    late_rollup = "SELECT adaptive_samples FROM signal_rollup_1d WHERE device_id = $1"
    assert await city_db.fetchval(late_rollup, device(city, "s4")) == 1


async def test_target_and_unknown_indicator(city_db: asyncpg.Connection, city: str) -> None:
    target = await city_db.fetchrow(
        "SELECT value, due, scope_type FROM citytel_indicator_target('signal_timing_coverage', $1)",
        city,
    )
    assert (target["value"], str(target["due"]), target["scope_type"]) == (
        0.4,
        "2023-12-31",
        "province",
    )
    with pytest.raises(asyncpg.InvalidParameterValueError, match="unknown indicator"):
        await city_db.fetch(INDICATOR, "nope", city, None, DAY1, END, "day")


async def test_feed_health_per_device(
    city_db: asyncpg.Connection, database_url: DatabaseUrl, city: str
) -> None:
    await store(city_db, str(database_url), messages(city))  # everything again: duplicates
    rows = await city_db.fetch(
        "SELECT * FROM citytel_feed_health($1, $2, $3, 'pole')", DAY1, DAY2, city
    )
    health = {r["device_id"].rsplit("-", 1)[1]: r for r in rows}
    assert (health["p1"]["samples"], health["p1"]["expected"]) == (144, 144)
    assert health["p1"]["completeness"] == pytest.approx(1.0)
    assert health["p2"]["completeness"] == 0
    # Duplicates and dead letters count by the hour they were received: now.
    now = await city_db.fetchval("SELECT now()")
    recent = await city_db.fetch(
        "SELECT device_id, duplicates, duplicates_per_hour FROM citytel_feed_health($1, $2, $3)",
        now - timedelta(hours=1),
        now + timedelta(hours=1),
        city,
    )
    duplicates = {
        r["device_id"].rsplit("-", 1)[1]: (r["duplicates"], r["duplicates_per_hour"])
        for r in recent
    }
    assert duplicates["p1"][0] == 216 and duplicates["e1"][0] == 96
    assert duplicates["p1"][1] == pytest.approx(216 / 3)  # whole hours: now-1h .. now+1h
    assert duplicates["p2"] == (0, 0)


async def test_a_device_counts_from_its_installation_day(
    city_db: asyncpg.Connection, city: str
) -> None:
    # p2 (silent) installed on day 2 at 15:30 local: day 1 expects only p1's 144 samples.
    await city_db.execute(
        "UPDATE devices SET installed_at = $1 WHERE device_id = $2",
        DAY2 + timedelta(hours=15, minutes=30),
        device(city, "p2"),
    )
    assert _approx(await _points(city_db, "pole_online_rate", city)) == _approx(
        [(1.0, 144, 144), (0.25, 72, 288), (216 / 432, 216, 432)]
    )
