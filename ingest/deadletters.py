"""Dead letters: list them, and replay them after a registry or contract fix."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ingest.batch import Batch, Refusal, merge_batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.registry import load_registry
from ingest.resolve import UnknownDevicePolicy, resolve_pending
from ingest.writer import BatchWriter

if TYPE_CHECKING:
    from core.settings import IngestSettings

logger = logging.getLogger(__name__)

_SELECT = """
SELECT id, received_at, topic, reason, detail, device_id, replayed_at,
       substring(payload FROM 1 FOR $5) AS payload, octet_length(payload) AS size
FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::timestamptz IS NULL OR received_at >= $2)
  AND ($3 OR replayed_at IS NULL)
ORDER BY received_at DESC, id DESC
LIMIT $4
"""


async def list_dead_letters(
    conn: asyncpg.Connection,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    payload_max_bytes: int = 2**31 - 1,
) -> list[asyncpg.Record]:
    """Newest first; the payload cut to ``payload_max_bytes``, its full size in ``size``.

    The one listing query: ``citytel deadletters list`` and ``GET /deadletters`` use it.
    """
    return list(
        await conn.fetch(_SELECT, reason, since, include_replayed, limit, payload_max_bytes)
    )


@dataclass(slots=True)
class ReplayReport:
    examined: int = 0
    ingested: int = 0
    still_refused: dict[str, int] = field(default_factory=dict)


def replay_policy(settings: IngestSettings) -> DecodePolicy:
    """How a replay checks dead letters: the collector's size and clock limits, and no
    rate limit (a replay sends a device's backlog at once)."""
    return DecodePolicy(
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_future_s=settings.ingest_max_future_s,
    )


async def replay_dead_letters(
    dsn: str,
    *,
    policy: DecodePolicy,
    unknown_devices: UnknownDevicePolicy = "reject",
    reason: str | None = None,
    since: datetime | None = None,
    chunk: int = 1000,
    limit: int | None = None,
) -> ReplayReport:
    """Re-validate dead letters, oldest first; ingest those that now pass, exactly once.

    A dead letter that passes is written and marked ``replayed_at`` in the same
    transaction, so a second replay does not ingest it again. Those still refused stay
    as they are, with the reason and detail of their new refusal. ``limit`` bounds how
    many are examined (all when None), ``chunk`` how many are decoded per batch.
    """
    report = ReplayReport()
    writer = BatchWriter(dsn)
    conn = await writer.connect()
    registry = await load_registry(conn)
    decoder = MessageDecoder(policy, registry)
    last_id = 0
    try:
        while limit is None or report.examined < limit:
            size = chunk if limit is None else min(chunk, limit - report.examined)
            rows = await conn.fetch(
                "SELECT id, topic, payload FROM dead_letters WHERE id > $1 AND replayed_at IS NULL"
                " AND ($2::text IS NULL OR reason = $2)"
                " AND ($3::timestamptz IS NULL OR received_at >= $3) ORDER BY id LIMIT $4",
                last_id,
                reason,
                since,
                size,
            )
            if not rows:
                return report
            last_id = rows[-1]["id"]
            batch, passed = _replay_batch(rows, decoder, report)
            await resolve_pending(conn, batch, decoder, registry, unknown_devices)
            refused = _refused_ids(rows, batch)
            for refusal in batch.refusals:
                why = refusal.reason  # not `reason`: that is the filter of the next chunk
                report.still_refused[why] = report.still_refused.get(why, 0) + 1
            batch.refusals.clear()  # their rows exist already: updated below, not re-added
            passed = [i for i in passed if i not in refused]
            await writer.write(batch, mark_replayed=passed)
            await conn.executemany(
                "UPDATE dead_letters SET reason = $2, detail = $3 WHERE id = $1",
                [(row_id, r.reason, r.detail) for row_id, r in refused.items()],
            )
            report.ingested += len(passed)
        return report
    finally:
        await writer.close()


def _replay_batch(
    rows: list[Any], decoder: MessageDecoder, report: ReplayReport
) -> tuple[Batch, list[int]]:
    """Decode each dead letter on its own; collect the ones that now pass."""
    batch = Batch()
    passed: list[int] = []
    for row in rows:
        report.examined += 1
        single = Batch()
        decoder.decode(row["topic"], bytes(row["payload"]), single)
        if single.refusals:
            batch.refusals.extend(single.refusals)
            continue
        if single.pending:
            batch.pending.extend((t, p) for t, p in single.pending)
            batch.messages.append((row["topic"], bytes(row["payload"])))
            passed.append(row["id"])
            continue
        merge_batch(batch, single)
        passed.append(row["id"])
    return batch, passed


def _refused_ids(rows: list[Any], batch: Batch) -> dict[int, Refusal]:
    """The dead-letter rows refused again, with their new refusal."""
    refused = {(r.topic, r.payload): r for r in batch.refusals}
    return {
        row["id"]: refused[key]
        for row in rows
        if (key := (row["topic"], bytes(row["payload"]))) in refused
    }
