"""A simulated day of two pilot cities, written as the collector writes it, rollups refreshed.

The fleet simulator (simulators/) generates the day up to ``now`` into memory; every
message is decoded and written by the collector's own decoder and writer, devices'
last_seen too, and the rollups are refreshed from the writer's log. On top of the
simulation: a critical ``green_conflict`` fault received now, a few malformed messages
(dead letters), a registered pole that never reports, and two collectors' figures in
``collector_stats``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import orjson

from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.registry import load_registry, upsert_devices
from ingest.rollups import RollupRefresher
from ingest.writer import BatchWriter, write_last_seen
from schemas.registry import Device
from schemas.topics import Kind
from simulators import FaultRates, Fleet, MemorySink, SimulationOptions, run_simulation

CITIES = ("jinan", "qingdao")
POLES, SIGNALS, ENERGY = 12, 6, 3
INTERVAL_S = 300.0
FAULTY_SIGNAL = "jinan-sig-0001"
# Registered, never heard: grey on the map, first among the stalest devices.
SILENT_POLE = Device(
    device_id="jinan-pole-silent", kind=Kind.POLE, city="jinan", district="lixia",
    lat=36.66, lon=117.01, interval_s=INTERVAL_S,
)  # fmt: skip


def _simulate(city: str, seed: int, now: datetime) -> tuple[Fleet, list[tuple[bytes, bytes]]]:
    options = SimulationOptions(
        city=city,
        poles=POLES,
        signals=SIGNALS,
        energy=ENERGY,
        seed=seed,
        interval_s=INTERVAL_S,
        duration_s=86400,
        speed=None,
        faults=FaultRates(malformed=0.003),
    )
    fleet = Fleet.generate(city, POLES, SIGNALS, ENERGY, seed, interval_s=INTERVAL_S)
    sink = MemorySink()
    run_simulation(options, "mqtt://127.0.0.1:1", sink=sink, now=now, fleet=fleet)
    return fleet, [(topic, payload) for topic, payload, _ in sink.messages]


def _green_conflict(now: datetime) -> tuple[bytes, bytes]:
    body = {
        "ts": int(now.timestamp() * 1000) - 1000,
        "type": "fault",
        "code": "green_conflict",
        "severity": "critical",
        "message": "conflicting greens on approaches N and E",
    }
    return f"citytel/v1/jinan/signal/{FAULTY_SIGNAL}/event".encode(), orjson.dumps(body)


async def _collector_stats(conn: asyncpg.Connection, now: datetime) -> None:
    """Two collectors' rows every 10 s over the last hour (as ingest/stats.py writes them)."""
    await conn.execute(
        """
        INSERT INTO collector_stats (collector_id, ts, interval_s, received, committed_rows,
                                     duplicates, dead_letters, batches, commit_avg_s,
                                     commit_p50_s, commit_p99_s, queue_depth)
        SELECT c, $1::timestamptz - n * INTERVAL '10 seconds', 10, 500 + n % 7, 490, 2, 8,
               20, 0.03, 0.025, 0.09 + (n % 5) / 100.0, n % 50
        FROM unnest(ARRAY['citytel-collector-1', 'citytel-collector-2']) c,
             generate_series(0, 359) n
        """,
        now,
    )


async def write_day(conn: asyncpg.Connection, dsn: str, now: datetime) -> Batch:
    """Register and write the day; return the batch written (for expectations)."""
    messages: list[tuple[bytes, bytes]] = []
    for seed, city in enumerate(CITIES, start=7):
        fleet, sent = _simulate(city, seed, now)
        await upsert_devices(conn, fleet.devices)
        messages += sent
    await upsert_devices(conn, [SILENT_POLE])
    messages.append(_green_conflict(now))
    decoder = MessageDecoder(DecodePolicy(), await load_registry(conn))
    batch = Batch()
    for topic, payload in messages:
        decoder.decode(topic.decode(), payload, batch)
    assert batch.refusals, "the simulation's malformed messages become dead letters"
    writer = BatchWriter(dsn)
    try:
        await writer.write(batch)
    finally:
        await writer.close()
    await write_last_seen(conn, batch.last_seen)
    await _collector_stats(conn, now)
    report = await RollupRefresher().refresh(conn)
    assert report.log_rows and not report.skipped
    # Raw partitions for the days before the simulation, for the raw-read bound test.
    await conn.execute(
        "SELECT citytel_ensure_partitions(t::regclass, ARRAY(SELECT (now() - d * INTERVAL"
        " '1 day')::date FROM generate_series(0, 10) d))"
        " FROM unnest(ARRAY['pole_telemetry', 'signal_telemetry', 'energy_telemetry']) t"
    )
    return batch


def day_range(now: datetime) -> tuple[datetime, datetime]:
    """A range that holds the whole simulated day."""
    return now - timedelta(days=2), now + timedelta(minutes=1)
