"""A batch: everything decoded from a run of messages, written in one transaction."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.reasons import DEAD_LETTER_REASONS
from schemas.topics import Kind

REASONS = DEAD_LETTER_REASONS


@dataclass(slots=True)
class Refusal:
    """One dead letter: the raw bytes refused and why."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    device_id: str | None = None


@dataclass(slots=True)
class Batch:
    """Rows by target table, dead letters, device state, and the messages to acknowledge."""

    telemetry: dict[Kind, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {kind: [] for kind in Kind}
    )
    events: list[tuple[Any, ...]] = field(default_factory=list)
    statuses: dict[str, tuple[bool, datetime, str | None]] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    unknown_fields: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Messages from devices the in-memory registry does not know: resolved by the writer.
    pending: list[tuple[str, bytes]] = field(default_factory=list)
    # Every message, so a batch the database refuses can be retried one message at a time.
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)
    generation: int = 0
    started: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.telemetry.values()) + len(self.events)


def keep_newest(into: dict[str, datetime], seen: Mapping[str, datetime]) -> None:
    """Merge ``seen`` into ``into``, keeping the newest ``ts`` per device."""
    for device_id, ts in seen.items():
        known = into.get(device_id)
        if known is None or ts > known:
            into[device_id] = ts


def merge_batch(into: Batch, single: Batch) -> None:
    """Add what ``single`` decoded to ``into`` (its messages and acks stay with the caller)."""
    for kind, rows in single.telemetry.items():
        into.telemetry[kind].extend(rows)
    into.events.extend(single.events)
    into.statuses.update(single.statuses)
    keep_newest(into.last_seen, single.last_seen)
    into.refusals.extend(single.refusals)
    into.unknown_fields.update(single.unknown_fields)
    into.pending.extend(single.pending)
