"""``citytel bench fuzz``: hostile input through the real decoder and, optionally, the writer.

Every input is decoded on its own and checked (:func:`bench.hostile_inputs.check_decode`):
no exception may escape, and each message must end as rows, dead letters or a pending
registry lookup. With a database, the decoded messages are also written in batches with
the collector's own :func:`ingest.isolate.write_batch` into a throwaway database, so a
value the decoder accepts but PostgreSQL or the driver cannot take shows up too.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from bench.hostile_inputs import (
    DEVICES,
    FUZZ_CITY,
    DecodeOutcome,
    HostileInputs,
    check_decode,
    registry,
)
from core.urls import DatabaseUrl
from ingest.batch import Batch, merge_batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.isolate import write_batch
from ingest.writer import BatchWriter
from schemas.payloads import TELEMETRY_TABLES
from schemas.scratch import scratch_database

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FuzzOptions:
    inputs: int = 100_000
    seed: int = 0
    admin_url: DatabaseUrl | None = None  # None: decode only
    batch_messages: int = 2000


@dataclass(slots=True)
class FuzzReport:
    outcome: DecodeOutcome
    decode_s: float = 0.0
    write_s: float = 0.0
    batches: int = 0
    rows_offered: int = 0
    rows_inserted: int = 0
    dead_letters_offered: int = 0
    write_errors: list[str] = field(default_factory=list)
    stored: dict[str, int] = field(default_factory=dict)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def escaped(self) -> int:
        """Exceptions that left the decoder or the writer: the property says 0."""
        return len(self.outcome.escaped) + len(self.write_errors)


def decode_only(options: FuzzOptions, on_progress: Progress | None = None) -> FuzzReport:
    """Decode ``options.inputs`` hostile inputs; no database."""
    decoder = MessageDecoder(DecodePolicy(), registry())
    report = FuzzReport(DecodeOutcome())
    started = time.perf_counter()
    stream = itertools.islice(HostileInputs(options.seed), options.inputs)
    for done, (topic, payload, maker) in enumerate(stream, 1):
        check_decode(decoder, topic, payload, report.outcome, maker)
        if on_progress is not None and done % 5000 == 0:
            on_progress(done, options.inputs)
    report.decode_s = time.perf_counter() - started
    return report


async def decode_and_write(options: FuzzOptions, on_progress: Progress | None = None) -> FuzzReport:
    """Decode hostile inputs and write them, batch by batch, into a throwaway database."""
    assert options.admin_url is not None
    async with scratch_database(options.admin_url, "citytel_fuzz") as url:
        conn = await asyncpg.connect(str(url))
        try:
            await conn.executemany(
                "INSERT INTO devices (device_id, kind, city) VALUES ($1, $2, $3)",
                [(d, str(kind), FUZZ_CITY) for d, kind in DEVICES.items()],
            )
            report = await _decode_and_write(str(url), options, on_progress)
            await _read_back(conn, report)
        finally:
            await conn.close()
    return report


async def _decode_and_write(
    dsn: str, options: FuzzOptions, on_progress: Progress | None
) -> FuzzReport:
    known = registry()
    decoder = MessageDecoder(DecodePolicy(), known)
    writer = BatchWriter(dsn)
    report = FuzzReport(DecodeOutcome())
    batch = Batch()
    stream = itertools.islice(HostileInputs(options.seed), options.inputs)
    try:
        for done, (topic, payload, maker) in enumerate(stream, 1):
            started = time.perf_counter()
            single = check_decode(decoder, topic, payload, report.outcome, maker)
            report.decode_s += time.perf_counter() - started
            merge_batch(batch, single)
            batch.messages.append((topic, payload))
            if len(batch.messages) >= options.batch_messages or done == options.inputs:
                await _write(writer, batch, decoder, known, report)
                batch = Batch()
            if on_progress is not None and done % 5000 == 0:
                on_progress(done, options.inputs)
    finally:
        await writer.close()
    return report


async def _write(
    writer: BatchWriter,
    batch: Batch,
    decoder: MessageDecoder,
    known: dict[str, object],
    report: FuzzReport,
) -> None:
    started = time.perf_counter()
    report.rows_offered += batch.row_count
    report.dead_letters_offered += len(batch.refusals)
    try:
        result = await write_batch(writer, batch, decoder, known, "reject")  # type: ignore[arg-type]
    except Exception as exc:  # the property under test: this must never happen
        report.write_errors.append(f"{type(exc).__name__}: {exc}"[:300])
        writer.discard_connection()
    else:
        report.rows_inserted += sum(result.inserted.values())
    report.batches += 1
    report.write_s += time.perf_counter() - started


async def _read_back(conn: asyncpg.Connection, report: FuzzReport) -> None:
    for table in (*TELEMETRY_TABLES.values(), "device_events", "device_status"):
        report.stored[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    rows = await conn.fetch("SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")
    report.dead_letters_by_reason.update({r["reason"]: r["n"] for r in rows})
