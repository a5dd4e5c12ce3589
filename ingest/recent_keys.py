"""Keys this writer committed lately: which rows of a batch may be copied straight in.

A duplicate is nearly always a device retrying a message whose PUBACK it missed, seconds
after the original. Rows whose ``(device_id, ts)`` is in a recent committed batch, or
earlier in the same batch, are set apart for ``INSERT … ON CONFLICT DO NOTHING`` (which
still inserts them if the original was deleted meanwhile); the rest of a batch can
usually be copied straight into its table. What the cache cannot know (another
collector's rows, rows from before a restart) makes that copy fail, and the writer then
stages the whole batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from operator import itemgetter
from typing import Any

Row = tuple[Any, ...]
_key = itemgetter(0, 1)  # (device_id, ts): the first two columns of every telemetry row


class RecentKeys:
    """The keys of the last ``batches`` committed batches, per table."""

    def __init__(self, batches: int = 8) -> None:
        self._batches = batches
        self._tables: dict[str, deque[set[Hashable]]] = {}

    def split(self, table: str, rows: Iterable[Row]) -> tuple[list[Row], list[Row], set[Hashable]]:
        """(rows with a new key, sorted by key; the other rows; every key of the batch)."""
        recent = self._tables.get(table, ())
        keys: set[Hashable] = set()
        fresh = []
        seen_before = []
        for row in rows:
            key = _key(row)
            if key in keys or any(key in committed for committed in recent):
                seen_before.append(row)
                continue
            keys.add(key)
            fresh.append(row)
        # Key order: two collectors copying the same keys wait for each other in the same
        # order instead of deadlocking.
        fresh.sort(key=_key)
        return fresh, seen_before, keys

    def committed(self, table: str, keys: set[Hashable]) -> None:
        """Remember the keys of a batch once its transaction has committed."""
        self._tables.setdefault(table, deque(maxlen=self._batches)).append(keys)
