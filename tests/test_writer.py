"""The batch writer's two paths: a direct COPY for new keys, staged ON CONFLICT for the rest.

Whatever path a row takes, the table must end up as if every row had gone through
``INSERT … ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from support import BASE_MS, register_poles

from core.urls import DatabaseUrl
from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.isolate import write_batch
from ingest.recent_keys import RecentKeys
from ingest.registry import load_registry
from ingest.writer import STAGED_BATCHES_AFTER_DUPLICATE, BatchWriter
from schemas.topics import Kind

COUNT = "SELECT count(*) FROM pole_telemetry"


async def _batch(db: asyncpg.Connection, city: str, messages: list[tuple[str, int]]) -> Batch:
    """Pole telemetry for (device id, ms after BASE_MS) pairs, decoded like the collector."""
    decoder = MessageDecoder(DecodePolicy(), await load_registry(db))
    batch = Batch()
    for device_id, offset_ms in messages:
        payload = orjson.dumps({"ts": BASE_MS + offset_ms, "lamp_on": True})
        decoder.decode(f"citytel/v1/{city}/pole/{device_id}/telemetry", payload, batch)
    assert not batch.refusals and not batch.pending
    return batch


@pytest.fixture
async def writer(database_url: DatabaseUrl) -> AsyncIterator[BatchWriter]:
    """A fresh writer: its own connection, an empty cache of recent keys."""
    batch_writer = BatchWriter(str(database_url))
    try:
        yield batch_writer
    finally:
        await batch_writer.close()


async def test_duplicates_within_and_across_batches_are_stored_once(
    db: asyncpg.Connection, writer: BatchWriter, city: str
) -> None:
    a, b = await register_poles(db, city, 2)
    first = await writer.write(await _batch(db, city, [(a, 0), (b, 0), (a, 0)]))
    assert (first.inserted["pole_telemetry"], first.duplicates) == (2, 1)
    second = await writer.write(await _batch(db, city, [(a, 0), (a, 1000), (b, 1000)]))
    assert (second.inserted["pole_telemetry"], second.duplicates) == (2, 1)
    assert await db.fetchval(COUNT) == 4


async def test_a_row_deleted_after_commit_is_stored_again_when_resent(
    db: asyncpg.Connection, writer: BatchWriter, city: str
) -> None:
    (a,) = await register_poles(db, city, 1)
    await writer.write(await _batch(db, city, [(a, 0)]))
    await db.execute("DELETE FROM pole_telemetry")
    # The writer remembers the key, but that only routes the row to ON CONFLICT.
    result = await writer.write(await _batch(db, city, [(a, 0)]))
    assert result.inserted["pole_telemetry"] == 1
    assert await db.fetchval(COUNT) == 1


async def test_a_duplicate_the_writer_cannot_know_falls_back_to_staging(
    db: asyncpg.Connection, database_url: DatabaseUrl, writer: BatchWriter, city: str
) -> None:
    a, b = await register_poles(db, city, 2)
    other = BatchWriter(str(database_url))
    try:
        await other.write(await _batch(db, city, [(a, 0)]))  # like another collector
        result = await writer.write(await _batch(db, city, [(b, 0), (a, 0), (b, 1000)]))
        assert (result.inserted["pole_telemetry"], result.duplicates) == (2, 1)
        assert writer._staged_only["pole_telemetry"] == STAGED_BATCHES_AFTER_DUPLICATE
        # The staged path works the same for the batches that follow.
        result = await writer.write(await _batch(db, city, [(a, 0), (a, 2000)]))
        assert (result.inserted["pole_telemetry"], result.duplicates) == (1, 1)
        assert await db.fetchval(COUNT) == 4
    finally:
        await other.close()


async def test_a_day_without_a_partition_is_created_on_the_direct_path(
    db: asyncpg.Connection, writer: BatchWriter, city: str
) -> None:
    (a,) = await register_poles(db, city, 1)
    old_ms = int((datetime.now(UTC) - timedelta(days=40)).timestamp() * 1000) - BASE_MS
    result = await writer.write(await _batch(db, city, [(a, old_ms), (a, 0)]))
    assert result.inserted["pole_telemetry"] == 2
    assert "pole_telemetry" not in writer._staged_only  # not a duplicate: no back-off


def test_recent_keys_remember_a_window_of_batches_and_lose_no_row() -> None:
    cache = RecentKeys(batches=2, slots_log2=16)
    first = [("p1", 1), ("p2", 1), ("p1", 1)]
    fresh, seen, slots = cache.split("t", first)
    assert (fresh, seen) == ([("p1", 1), ("p2", 1)], [("p1", 1)])
    cache.committed("t", slots)
    assert cache.split("t", [("p1", 1), ("p3", 1)])[:2] == ([("p3", 1)], [("p1", 1)])
    cache.committed("t", cache.slots([("p9", 9)]))
    assert cache.split("t", [("p1", 1)])[1] == [("p1", 1)]  # still within 2 batches
    cache.committed("t", cache.slots([("p9", 10)]))
    assert cache.split("t", [("p1", 1)])[0] == [("p1", 1)]  # forgotten: copied directly
    # A tiny table: slots collide, so new rows may be moved to the ON CONFLICT side, and
    # no row is ever lost from both.
    tiny = RecentKeys(batches=8, slots_log2=2)
    tiny.committed("t", range(4))  # every one of its 4 slots stamped by the last batch
    rows = [(f"p{i}", i) for i in range(50)]
    fresh, seen, _ = tiny.split("t", rows)
    assert sorted(fresh + seen) == sorted(rows) and len(seen) == 50  # every slot stamped


class _PoisonedDecoder(MessageDecoder):
    """Lets messages marked ``"bad"`` through with a value the database cannot take: one the
    driver cannot encode, or one the server refuses (a NUL escape in ``extra``)."""

    def __init__(self, *args: object, poison: str) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.poison = poison

    def decode(self, topic_name: str, payload: bytes, batch: Batch) -> None:
        super().decode(topic_name, payload, batch)
        rows = batch.telemetry[Kind.POLE]
        if b'"bad"' in payload and rows:
            if self.poison == "unencodable":
                rows[-1] = (*rows[-1][:4], "not a number", *rows[-1][5:])  # dim_pct
            else:
                rows[-1] = (*rows[-1][:-1], '{"bad": "\\u0000"}')  # extra


@pytest.mark.parametrize("poison", ["unencodable", "refused_by_server"])
async def test_a_batch_the_database_will_not_take_is_split_and_only_the_culprit_dead_lettered(
    db: asyncpg.Connection, writer: BatchWriter, city: str, poison: str
) -> None:
    (pole,) = await register_poles(db, city, 1)
    registry = await load_registry(db)
    decoder = _PoisonedDecoder(DecodePolicy(), registry, poison=poison)
    topic = f"citytel/v1/{city}/pole/{pole}/telemetry"
    messages = [(topic, orjson.dumps({"ts": BASE_MS + i, "lamp_on": True})) for i in range(5)]
    messages.append((topic, orjson.dumps({"ts": BASE_MS + 5, "lamp_on": True, "bad": 1})))
    batch = Batch()
    for name, payload in messages:
        decoder.decode(name, payload, batch)
        batch.messages.append((name, payload))
    result = await write_batch(writer, batch, decoder, registry, "reject")
    assert await db.fetchval(COUNT) == 5
    reason, detail = await db.fetchrow("SELECT reason, detail FROM dead_letters")
    assert (result.inserted["pole_telemetry"], result.dead_letters) == (5, 1)
    if poison == "unencodable":
        assert reason == "internal" and detail.startswith("could not encode for the database")
    else:
        assert reason == "schema" and detail.startswith("database refused the message")
    assert [r.reason for r in batch.refusals] == [reason]
