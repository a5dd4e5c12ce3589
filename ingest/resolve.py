"""Devices the collector's in-memory registry does not know: look them up, register or refuse."""

from __future__ import annotations

import logging
from typing import Literal

import asyncpg

from ingest.batch import Batch
from ingest.decode import MessageDecoder
from ingest.registry import RegisteredDevice, load_registry
from schemas.topics import parse_topic

logger = logging.getLogger(__name__)

UnknownDevicePolicy = Literal["reject", "register"]


async def resolve_pending(
    conn: asyncpg.Connection,
    batch: Batch,
    decoder: MessageDecoder,
    registry: dict[str, RegisteredDevice],
    policy: UnknownDevicePolicy,
) -> None:
    """Decode the batch's messages from unknown devices now that the database was asked."""
    if not batch.pending:
        return
    topics = {name: parse_topic(name) for name, _ in batch.pending}
    wanted = {t.device_id for t in topics.values()}
    registry.update(await load_registry(conn, wanted))
    missing = wanted - registry.keys()
    if missing and policy == "register":
        first = {}
        for topic in topics.values():
            first.setdefault(topic.device_id, topic)
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, city, registered_by) VALUES ($1, $2, $3, 'auto')"
            " ON CONFLICT (device_id) DO NOTHING",
            [(d, str(first[d].kind), first[d].city) for d in sorted(missing)],
        )
        logger.info("registered %d unknown device(s) automatically", len(missing))
        registry.update(await load_registry(conn, missing))
    pending, batch.pending = batch.pending, []
    for name, payload in pending:
        device_id = topics[name].device_id
        if device_id in registry:
            decoder.decode(name, payload, batch)
        else:
            decoder.refuse(
                batch,
                name,
                payload,
                "unknown_device",
                f"device {device_id} is not in the registry",
                device_id,
            )
