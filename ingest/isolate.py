"""A batch the database will not take: written one message at a time, the culprit dead-lettered.

A whole batch is one transaction, so one unstorable row would hold back every message
with it. When a write fails for a reason that retrying cannot fix (the server refuses a
value, the client cannot encode one, or anything unforeseen), each message is decoded
and written on its own; the ones that still fail become dead letters with the reason
:func:`ingest.writer.refusal_of` gives. Failures worth retrying (the database away)
propagate, and the caller retries the same batch.
"""

from __future__ import annotations

import logging

from ingest.batch import Batch
from ingest.decode import MessageDecoder
from ingest.registry import RegisteredDevice
from ingest.resolve import UnknownDevicePolicy, resolve_pending
from ingest.writer import BatchWriter, WriteResult, refusal_of

logger = logging.getLogger(__name__)


async def write_batch(
    writer: BatchWriter,
    batch: Batch,
    decoder: MessageDecoder,
    registry: dict[str, RegisteredDevice],
    unknown_devices: UnknownDevicePolicy,
) -> WriteResult:
    """Write ``batch`` in one transaction, or message by message if the database refuses it."""
    conn = await writer.connect()
    await resolve_pending(conn, batch, decoder, registry, unknown_devices)
    try:
        return await writer.write(batch)
    except Exception as exc:
        if refusal_of(exc) is None:
            raise  # the database is away or busy: the caller retries the same batch
        return await _write_one_by_one(
            writer, batch, decoder=decoder, registry=registry, unknown=unknown_devices, cause=exc
        )


async def _write_one_by_one(
    writer: BatchWriter,
    batch: Batch,
    *,
    decoder: MessageDecoder,
    registry: dict[str, RegisteredDevice],
    unknown: UnknownDevicePolicy,
    cause: Exception,
) -> WriteResult:
    logger.error(
        "database refused a batch of %d messages (%s: %s); writing one by one",
        len(batch.messages),
        type(cause).__name__,
        cause,
    )
    total = WriteResult()
    refusals = []
    for topic, payload in batch.messages:
        single = Batch()
        decoder.decode(topic, payload, single)
        conn = await writer.connect()
        await resolve_pending(conn, single, decoder, registry, unknown)
        try:
            result = await writer.write(single)
        except Exception as exc:
            refusal = refusal_of(exc)
            if refusal is None:
                raise
            reason, detail = refusal
            logger.warning("message on %s dead-lettered as %s: %s", topic[:200], reason, detail)
            single = Batch()
            decoder.refuse(single, topic, payload, reason, detail)
            result = await writer.write(single)
        refusals += single.refusals
        _add_result(total, result)
    batch.refusals = refusals  # what was dead-lettered in the end, for the counters
    return total


def _add_result(total: WriteResult, result: WriteResult) -> None:
    for table, n in result.inserted.items():
        total.inserted[table] = total.inserted.get(table, 0) + n
    for table, n in result.staged.items():
        total.staged[table] = total.staged.get(table, 0) + n
    total.dead_letters += result.dead_letters
    total.dead_letter_duplicates += result.dead_letter_duplicates
