"""``citytel bench flood``: does a malformed flood from one device slow everyone else?

One collector process (``citytel collect``), a private Mosquitto and a throwaway
database, as in ``bench ingest``. The valid fleet publishes ``valid`` realistic messages
on one connection as fast as the broker takes them; in the flood runs, one registered
device publishes ``factor`` times as many malformed messages (invalid JSON, wrong types,
wrong shape, each payload distinct) on a connection of its own at the same time. Valid
throughput is the valid fleet's rows divided by the time from its first publish to its
last row visible in the tables. Three runs:

- ``valid``: no flood;
- ``flood``: with the flood, the collector's default settings (its per-device rate
  limit refuses most of the flood before parsing, as ``rate_limited``);
- ``flood_no_limit``: with the flood and the rate limit off (every malformed message
  is parsed and refused on its merits).

Every run also checks that every malformed message ended as a dead letter.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.database import prepared_database, reset, wait_for_rows
from bench.errors import BenchError
from bench.payloads import CITY, MessageSet, generate_messages
from bench.processes import CollectorProcess
from bench.sender import RawPublisher, SendStats, encode_publishes
from core.broker import MosquittoProcess, free_port, start_mosquitto
from core.urls import DatabaseUrl
from schemas.timestamps import format_rfc3339
from schemas.topics import Channel, Kind, build_topic

FLOOD_DEVICE = "bench-flood-pole"
SCENARIOS = ("valid", "flood", "flood_no_limit")
_POLL_S = 0.02
_DEAD_LETTERS_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class FloodOptions:
    admin_url: DatabaseUrl
    valid: int = 20_000
    factor: int = 10
    repeat: int = 1


@dataclass
class FloodBench:
    options: FloodOptions
    on_note: Callable[[str], None] = lambda text: None
    _workdir: Path = field(init=False)
    _conn: asyncpg.Connection = field(init=False)
    _db_url: DatabaseUrl = field(init=False)
    _set: MessageSet = field(init=False)

    async def run(self) -> dict[str, Any]:
        options = self.options
        # One probe message only: the probe device of bench ingest would exceed the limit.
        self._set = generate_messages(options.valid, probe_every=options.valid + 1)
        valid = encode_publishes(self._set.messages)
        flood = encode_publishes(malformed_messages(options.valid * options.factor))
        results: dict[str, Any] = {
            "valid_messages": len(valid),
            "valid_rows": self._set.unique,
            "flood_messages": len(flood),
            "cpus": os.cpu_count(),
            "runs": {},
        }
        with tempfile.TemporaryDirectory(prefix="citytel-flood-") as workdir:
            self._workdir = Path(workdir)
            async with prepared_database(options.admin_url, self._set) as (url, conn):
                self._db_url, self._conn = url, conn
                await conn.execute(
                    "INSERT INTO devices (device_id, kind, city) VALUES ($1, 'pole', $2)",
                    FLOOD_DEVICE,
                    CITY,
                )
                for scenario in SCENARIOS:
                    packets = flood if scenario != "valid" else []
                    results["runs"][scenario] = await self._scenario(scenario, valid, packets)
        base = results["runs"]["valid"]["valid_rate"]
        for scenario in SCENARIOS:
            run = results["runs"][scenario]
            run["ratio"] = round(run["valid_rate"] / base, 3) if base else None
        return results

    async def _scenario(
        self, scenario: str, valid: list[bytes], flood: list[bytes]
    ) -> dict[str, Any]:
        env = {"CITYTEL_INGEST_RATE_LIMIT_PER_S": "0"} if scenario == "flood_no_limit" else {}
        broker = await asyncio.to_thread(start_mosquitto, self._workdir / f"mosquitto-{scenario}")
        collector = self._collector(scenario, broker, env)
        try:
            collector.start()
            await collector.wait_healthy()
            await self._warm_up(collector, broker)
            runs = []
            for attempt in range(self.options.repeat):
                self.on_note(f"{scenario}: run {attempt + 1} of {self.options.repeat}")
                await reset(self._conn)
                runs.append(await self._measure(broker, valid, flood))
        finally:
            await asyncio.to_thread(collector.stop)
            await asyncio.to_thread(broker.stop)
        chosen = sorted(runs, key=lambda r: r["valid_rate"])[len(runs) // 2]  # the median run
        return {**chosen, "valid_rates": [r["valid_rate"] for r in runs]}

    def _collector(
        self, scenario: str, broker: MosquittoProcess, extra: dict[str, str]
    ) -> CollectorProcess:
        port = free_port()
        env = {
            **os.environ,
            "CITYTEL_DATABASE_URL": str(self._db_url),
            "CITYTEL_MQTT_URL": broker.url,
            "CITYTEL_INGEST_CLIENT_ID": f"bench-flood-{scenario}",
            "CITYTEL_INGEST_METRICS_PORT": str(port),
            "CITYTEL_LOG_LEVEL": "WARNING",
            **extra,
        }
        log_path = self._workdir / f"collector-{scenario}.log"
        return CollectorProcess(index=1, env=env, metrics_port=port, log_path=log_path)

    async def _warm_up(self, collector: CollectorProcess, broker: MosquittoProcess) -> None:
        """One status message stored: the collector is subscribed."""
        topic = build_topic(CITY, Kind.POLE, FLOOD_DEVICE, Channel.STATUS)
        body = orjson.dumps({"ts": format_rfc3339(datetime.now(UTC)), "online": True})
        with RawPublisher("127.0.0.1", broker.port, "bench-flood-warm-up") as publisher:
            deadline = time.monotonic() + 60
            while (await collector.progress()).count == 0:
                if time.monotonic() > deadline:
                    raise BenchError("the collector stored no warm-up message within 60s")
                await asyncio.to_thread(publisher.publish, encode_publishes([(topic, body)]))
                await asyncio.sleep(0.2)

    async def _measure(
        self, broker: MosquittoProcess, valid: list[bytes], flood: list[bytes]
    ) -> dict[str, Any]:
        fleet = RawPublisher("127.0.0.1", broker.port, "bench-fleet")
        flooder = RawPublisher("127.0.0.1", broker.port, "bench-flooder")
        await asyncio.gather(asyncio.to_thread(fleet.connect), asyncio.to_thread(flooder.connect))
        try:
            sending = [asyncio.ensure_future(asyncio.to_thread(fleet.publish, valid))]
            if flood:
                sending.append(asyncio.ensure_future(asyncio.to_thread(flooder.publish, flood)))
            last_row, refused_by_then = await self._wait_for_valid_rows(sending)
            stats: list[SendStats] = await asyncio.gather(*sending)
            dead_letters = await self._wait_for_dead_letters(len(flood))
        finally:
            await asyncio.gather(asyncio.to_thread(fleet.close), asyncio.to_thread(flooder.close))
        elapsed = last_row - stats[0].first_send
        return {
            "elapsed_s": round(elapsed, 3),
            "valid_rate": round(self._set.unique / elapsed, 1) if elapsed > 0 else 0.0,
            "flood_refused_meanwhile": refused_by_then,
            "flood_rate_meanwhile": round(refused_by_then / elapsed, 1) if elapsed > 0 else 0.0,
            "dead_letters_by_reason": dead_letters,
        }

    async def _wait_for_valid_rows(self, sending: list[asyncio.Future[Any]]) -> tuple[float, int]:
        """When the last valid row became visible, and the dead letters stored by then."""

        def check_publishers() -> None:
            for future in sending:
                if future.done() and future.exception() is not None:
                    raise BenchError(f"publisher failed: {future.exception()}")

        at, rows = await wait_for_rows(
            self._conn, self._set.unique, "valid rows", poll_s=_POLL_S, on_poll=check_publishers
        )
        return at, rows["dead_letters"]

    async def _wait_for_dead_letters(self, expected: int) -> dict[str, int]:
        """Every malformed message is a dead letter: the flood is refused, never lost."""
        deadline = time.monotonic() + _DEAD_LETTERS_WAIT_S
        while True:
            rows = await self._conn.fetch(
                "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason"
            )
            by_reason = {r["reason"]: int(r["n"]) for r in rows}
            if sum(by_reason.values()) >= expected:
                return by_reason
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{sum(by_reason.values())} of {expected} malformed messages dead-lettered"
                )
            await asyncio.sleep(0.1)


def malformed_messages(count: int) -> list[tuple[str, bytes]]:
    """``count`` distinct malformed payloads from :data:`FLOOD_DEVICE` (one topic)."""
    topic = build_topic(CITY, Kind.POLE, FLOOD_DEVICE, Channel.TELEMETRY)
    shapes = (
        b'{"ts": %d, "lamp_on": tru',  # invalid JSON
        b'{"ts": "at %d", "lamp_on": "yes", "dim_pct": -5}',  # wrong types and range
        b'"reading %d"',  # a JSON string, not an object
    )
    return [(topic, shapes[i % len(shapes)] % i) for i in range(count)]


def flood_summary(results: dict[str, Any]) -> list[str]:
    """The lines the command prints."""
    runs = results["runs"]
    lines = [
        f"{results['valid_messages']:,} valid messages ({results['valid_rows']:,} rows) from "
        f"the fleet; flood: {results['flood_messages']:,} malformed from {FLOOD_DEVICE}; "
        f"{results['cpus']} CPUs"
    ]
    for scenario in SCENARIOS:
        run = runs[scenario]
        rates = ", ".join(f"{rate:,.0f}" for rate in run["valid_rates"])
        flood = (
            f"; flood refused meanwhile {run['flood_rate_meanwhile']:,.0f}/s; dead letters "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(run["dead_letters_by_reason"].items()))
            if scenario != "valid"
            else ""
        )
        lines.append(
            f"{scenario:>15}: valid {run['valid_rate']:,.0f} msg/s (runs: {rates}), "
            f"ratio {run['ratio']:.2f}{flood}"
        )
    return lines
