"""Keys this writer committed lately: which rows of a batch may be copied straight in.

A duplicate is nearly always a device retrying a message whose PUBACK it missed, seconds
after the original. Rows whose ``(device_id, ts)`` was in one of the last few committed
batches, or earlier in the same batch, are set apart for ``INSERT … ON CONFLICT DO
NOTHING`` (which still inserts them if the original was deleted meanwhile); the rest of a
batch can usually be copied straight into its table. What the cache cannot know (another
collector's rows, rows from before a restart) makes that copy fail, and the writer then
stages the whole batch.

The cache is a table of one-byte batch stamps indexed by the key's hash, not a set of
keys: it allocates nothing per row, so it cannot pin row objects in memory (a set of keys
kept tens of thousands of small objects alive across batches, scattered among
short-lived ones, and the collector's memory grew with it). Two keys sharing a slot only
send a new row down the ON CONFLICT path: a false "seen" costs a little speed, never a
row.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

Row = tuple[Any, ...]
_key = itemgetter(0, 1)  # (device_id, ts): the first two columns of every telemetry row
_STAMPS = 255  # stamps 1..255 cycle; 0 is "never"


class RecentKeys:
    """Which keys were committed in the last ``batches`` batches, per table (approximately)."""

    def __init__(self, batches: int = 8, slots_log2: int = 20) -> None:
        if not 0 < batches < _STAMPS:
            raise ValueError(f"batches must be 1..{_STAMPS - 1}")
        self._batches = batches
        self._mask = (1 << slots_log2) - 1
        self._slots = 1 << slots_log2
        self._stamps: dict[str, bytearray] = {}
        self._stamp: dict[str, int] = {}  # the stamp of the table's last committed batch

    def split(self, table: str, rows: Iterable[Row]) -> tuple[list[Row], list[Row], list[int]]:
        """(rows with a new key, sorted by key; the other rows; the batch's slots)."""
        stamps = self._stamps.get(table)
        current = self._stamp.get(table, 0)
        window = self._batches
        mask = self._mask
        in_batch: set[int] = set()
        fresh: list[Row] = []
        seen_before: list[Row] = []
        for row in rows:
            slot = hash(_key(row)) & mask
            if slot in in_batch:
                seen_before.append(row)
                continue
            in_batch.add(slot)
            stamp = stamps[slot] if stamps is not None else 0
            if stamp and (current - stamp) % _STAMPS < window:
                seen_before.append(row)
            else:
                fresh.append(row)
        # Key order: two collectors copying the same keys wait for each other in the same
        # order instead of deadlocking.
        fresh.sort(key=_key)
        return fresh, seen_before, list(in_batch)

    def slots(self, rows: Iterable[Row]) -> list[int]:
        """The slots of these rows' keys (for a batch that did not go through :meth:`split`)."""
        mask = self._mask
        return [hash(_key(row)) & mask for row in rows]

    def committed(self, table: str, slots: Iterable[int]) -> None:
        """Stamp a batch's slots once its transaction has committed."""
        stamps = self._stamps.get(table)
        if stamps is None:
            stamps = self._stamps[table] = bytearray(self._slots)
        stamp = self._stamp.get(table, 0) % _STAMPS + 1
        self._stamp[table] = stamp
        for slot in slots:
            stamps[slot] = stamp
