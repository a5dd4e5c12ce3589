"""A seeded fleet with faults through a real broker and collector: the database equals the
simulator's manifest, kind by kind and reason by reason."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from support import collector_settings, running_collector, wait_for_count

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from ingest.registry import upsert_devices
from schemas.topics import Kind
from simulators import FaultRates, Fleet, Manifest, SimulationOptions, run_simulation

FAULTS = FaultRates(duplicate=0.05, late=0.05, malformed=0.05, offline=0.03, skew=0.05, drop=0.02)


def _expected(manifest: Manifest, fleet: Fleet) -> tuple[Counter[str], int, Counter[str]]:
    report = manifest.to_dict()
    kinds = {d.device_id: str(d.kind) for d in fleet.devices}
    rows: Counter[str] = Counter()
    for device_id, channels in report["devices"].items():
        rows[kinds[device_id]] += channels["telemetry"]["valid"]
    events = report["by_channel"]["event"]["valid"]
    dead = Counter({k: v for k, v in report["totals"]["dead_letters"].items() if v})
    return rows, events, dead


@pytest.mark.slow
async def test_pipeline_stores_what_the_manifest_says(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    options = SimulationOptions(
        city=city,
        poles=60,
        signals=20,
        energy=6,
        seed=11,
        interval_s=10.0,
        duration_s=900,
        speed=None,
        faults=FAULTS,
        client_id=f"sim-{city}",
    )
    fleet = Fleet.generate(
        city,
        options.poles,
        options.signals,
        options.energy,
        options.seed,
        interval_s=options.interval_s,
    )
    await upsert_devices(db, list(fleet.devices))
    async with running_collector(collector_settings(database_url, mosquitto.url, city=city)):
        manifest = await asyncio.to_thread(run_simulation, options, mosquitto.url, fleet=fleet)
        rows, events, dead = _expected(manifest, fleet)
        total_rows = sum(rows.values())
        count_rows = (
            "SELECT (SELECT count(*) FROM pole_telemetry) + (SELECT count(*) FROM"
            " signal_telemetry) + (SELECT count(*) FROM energy_telemetry)"
        )
        assert await wait_for_count(db, count_rows, total_rows) == total_rows
        await wait_for_count(db, "SELECT count(*) FROM dead_letters", sum(dead.values()))
        await wait_for_count(db, "SELECT count(*) FROM device_events", events)
    for kind in Kind:
        stored = await db.fetchval(f"SELECT count(*) FROM {kind}_telemetry")
        assert stored == rows[str(kind)], kind
    assert await db.fetchval("SELECT count(*) FROM device_events") == events
    stored_dead = Counter(
        dict(await db.fetch("SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
    )
    assert stored_dead == dead
    assert sum(dead.values()) > 0 and manifest.totals["duplicates"] > 0
    statuses = await db.fetchval("SELECT count(*) FROM device_status WHERE status_ts IS NOT NULL")
    assert statuses == len(fleet.devices)
