"""A small city written by hand: two local days of signals, poles and one energy node.

Every expected number in the tests that use it is computed by hand in the comments
below, not by calling the code under test. Local time is Asia/Shanghai (UTC+8, the
default of a city without settings); day 1 is 2026-11-02, day 2 is 2026-11-03.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import orjson

from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.registry import load_registry
from ingest.writer import BatchWriter

CST = timezone(timedelta(hours=8))
DAY1 = datetime(2026, 11, 2, tzinfo=CST)
DAY2 = DAY1 + timedelta(days=1)
END = DAY2 + timedelta(days=1)

# --- signals (interval 300 s): s4 is registered and silent; s5 is in another district ---
# day 1: s1 10 x adaptive (local 06:00-06:45, i.e. the evening before in UTC) -> covered
#        s2 5 x actuated + 5 x flash -> 50 % intelligent -> covered
#        s3 10 x fixed_time -> not covered
# day 2: s1 4 x adaptive + 6 x fixed_time -> 40 % -> not covered; s2 silent
#        s3 10 x coordinated -> covered
# coverage: day 1 2/4 = 0.5, day 2 1/4 = 0.25, total 3/8 = 0.375 (district north)
# coordinated rate: day 1 0/30, day 2 10/20 = 0.5, total 10/50 = 0.2
# intelligent sample share: day 1 15/30 = 0.5, day 2 14/20 = 0.7, total 29/50 = 0.58
SIGNALS = {
    "s1": [
        (DAY1 + timedelta(hours=6), ["adaptive"] * 10),
        (DAY2 + timedelta(hours=9), ["adaptive"] * 4 + ["fixed_time"] * 6),
    ],
    "s2": [(DAY1 + timedelta(hours=12), ["actuated"] * 5 + ["flash"] * 5)],
    "s3": [
        (DAY1 + timedelta(hours=23), ["fixed_time"] * 10),
        (DAY2 + timedelta(hours=1), ["coordinated"] * 10),
    ],
    "s4": [],
}

# --- poles (interval 600 s, 144 expected a day): p1 reports, p2 is silent ---
# day 1: p1 every 10 minutes all day (144). Night is 20:00-05:00 local (54 samples):
#        lamp on with 100 W except 00:00-00:50 (6 samples) -> 48/54 at night;
#        lamp off by day. Lighting energy 48 x 100 W x 600 s = 0.8 kWh.
#        PM2.5 80 from 08:00 to 09:50 (2 hours), else 30 -> 2 exceedance hours of 24.
# day 2: p1 reports 00:00-11:50 (72): lamp on 00:00-04:50 (30 of 30 night samples),
#        energy 30 x 100 x 600 / 3.6e6 = 0.5 kWh; PM2.5 30 -> 0 of 12 hours.
# online rate: day 1 144/288 = 0.5, day 2 72/288 = 0.25, total 216/576 = 0.375
POLE_INTERVAL_S = 600.0


def _pole_day1(local: datetime) -> dict[str, object]:
    night = local.hour >= 20 or local.hour < 5
    lamp = night and local.hour != 0
    pm25 = 80.0 if 8 <= local.hour < 10 else 30.0
    return {"lamp_on": lamp, "lamp_power_w": 100.0 if lamp else 0.0, "pm25_ugm3": pm25}


def _pole_day2(local: datetime) -> dict[str, object]:
    lamp = local.hour < 5
    return {"lamp_on": lamp, "lamp_power_w": 100.0 if lamp else 0.0, "pm25_ugm3": 30.0}


# --- one energy node (interval 900 s, 96 samples on day 1 only) ---
# by day (10:00-13:45, 16 samples): pv 40, load 20, storage -10 (charging), grid -10
# at night (80 samples): load 20, grid 20 (import); at 19:00 load 50, storage +30,
# grid 20; at 03:00 load 20 but grid 10 only -> fails the balance check (1 of 96).
# kWh (x 0.25 h): pv 16 x 40 = 160; export 16 x 10 = 40; import 79 x 20 + 10 = 397.5;
# load 95 x 20 + 50 = 487.5; charge 16 x 10 = 40; discharge 30 x 0.25 = 7.5.
# self-consumption (160 - 40) / 160 = 0.75; self-sufficiency (487.5 - 397.5) / 487.5;
# storage throughput 47.5; peak import 20 kW; peak net load 50 -> shaving 30/50 = 0.6.
def _energy(local: datetime) -> dict[str, object]:
    if 10 <= local.hour < 14:
        return {"pv_kw": 40.0, "load_kw": 20.0, "storage_kw": -10.0, "grid_kw": -10.0}
    if local.hour == 19 and local.minute == 0:
        return {"pv_kw": 0.0, "load_kw": 50.0, "storage_kw": 30.0, "grid_kw": 20.0}
    if local.hour == 3 and local.minute == 0:
        return {"pv_kw": 0.0, "load_kw": 20.0, "storage_kw": 0.0, "grid_kw": 10.0}
    return {"pv_kw": 0.0, "load_kw": 20.0, "storage_kw": 0.0, "grid_kw": 20.0}


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def device(city: str, name: str) -> str:
    """The scenario's device ``name`` (s1, p1, e1, ...) in ``city``."""
    return f"{city}-{name}"


def messages(city: str) -> Iterator[tuple[str, bytes]]:
    root = f"citytel/v1/{city}"
    for name, runs in SIGNALS.items():
        for start, modes in runs:
            for i, mode in enumerate(modes):
                body = {"ts": _ms(start + timedelta(minutes=5 * i)), "mode": mode}
                yield f"{root}/signal/{device(city, name)}/telemetry", orjson.dumps(body)
    for i in range(144 + 72):
        local = DAY1 + timedelta(minutes=10 * i)
        fields = _pole_day1(local) if i < 144 else _pole_day2(local)
        body = {"ts": _ms(local), **fields}
        yield f"{root}/pole/{device(city, 'p1')}/telemetry", orjson.dumps(body)
    for i in range(96):
        local = DAY1 + timedelta(minutes=15 * i)
        body = {"ts": _ms(local), **_energy(local)}
        yield f"{root}/energy/{device(city, 'e1')}/telemetry", orjson.dumps(body)


async def register(db: asyncpg.Connection, city: str) -> None:
    rows = [(device(city, s), "signal", city, "north", 300.0) for s in SIGNALS]
    rows += [(device(city, "s5"), "signal", city, "south", 300.0)]
    rows += [(device(city, p), "pole", city, "north", POLE_INTERVAL_S) for p in ("p1", "p2")]
    rows += [(device(city, "e1"), "energy", city, "north", 900.0)]
    await db.executemany(
        "INSERT INTO devices (device_id, kind, city, district, interval_s)"
        " VALUES ($1, $2, $3, $4, $5)",
        rows,
    )


async def store(db: asyncpg.Connection, dsn: str, items: Iterator[tuple[str, bytes]]) -> None:
    """Decode and write like the collector (which also logs the buckets for the rollups)."""
    decoder = MessageDecoder(DecodePolicy(), await load_registry(db))
    batch = Batch()
    for topic, payload in items:
        decoder.decode(topic, payload, batch)
    assert not batch.refusals and not batch.pending, batch.refusals[:3]
    writer = BatchWriter(dsn)
    try:
        await writer.write(batch)
    finally:
        await writer.close()


UTC_DAY1 = DAY1.astimezone(UTC)
