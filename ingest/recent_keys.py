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
short-lived ones, and the collector's memory grew with it). A new key whose slot another
recent key stamped (about 2 % of rows at 8 batches of 5,000 rows) only goes down the ON
CONFLICT path: a false "seen" costs a little speed, never a row. Repeats within a batch
are found by exact key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress
from operator import itemgetter, ne, or_
from typing import Any

Row = tuple[Any, ...]
_key = itemgetter(0, 1)  # (device_id, ts): the first two columns of every telemetry row
_STAMPS = 255  # stamps 1..255 cycle; 0 is "never"
_INVERT = bytes([1, 0]) + bytes(254)  # translation table: 0 -> 1, 1 -> 0


class RecentKeys:
    """Which keys were committed in the last ``batches`` batches, per table (approximately)."""

    def __init__(self, batches: int = 8, slots_log2: int = 21) -> None:
        if not 0 < batches < _STAMPS:
            raise ValueError(f"batches must be 1..{_STAMPS - 1}")
        self._batches = batches
        self._mask = (1 << slots_log2) - 1
        self._slots = 1 << slots_log2
        self._stamps: dict[str, bytearray] = {}
        self._stamp: dict[str, int] = {}  # the stamp of the table's last committed batch
        self._translations: dict[int, bytes] = {}

    def split(self, table: str, rows: list[Row]) -> tuple[list[Row], list[Row], list[int]]:
        """(rows with a new key, sorted by key; the other rows; the batch's slots)."""
        keys = list(map(_key, rows))
        mask = self._mask
        slots = [hash(key) & mask for key in keys]
        stamps = self._stamps.get(table)
        if stamps is None:
            flags = bytes(len(slots))
        else:
            # Per row, 1 if its slot holds a stamp of the window: C loops, not Python ones.
            flags = bytes(map(stamps.__getitem__, slots)).translate(
                self._recent_stamps(self._stamp[table])
            )
        count = len(keys)
        # Each key's first row (built backwards, so the first row is the one that stays).
        first = dict(zip(reversed(keys), range(count - 1, -1, -1), strict=True))
        if len(first) == count and 1 not in flags:  # the usual batch: all new
            return sorted(rows, key=_key), [], slots
        # Per row, 1 if an earlier row of the batch has its key; then 1 if either says so.
        repeats = bytes(map(ne, map(first.__getitem__, keys), range(count)))
        marked = bytes(map(or_, flags, repeats))
        fresh = list(compress(rows, marked.translate(_INVERT)))
        seen_before = list(compress(rows, marked))
        # Key order: two collectors copying the same keys wait for each other in the same
        # order instead of deadlocking.
        fresh.sort(key=_key)
        return fresh, seen_before, slots

    def _recent_stamps(self, current: int) -> bytes:
        """A translation table: stamp -> 1 if it is one of the last ``batches``, else 0."""
        table = self._translations.get(current)
        if table is None:
            window = self._batches
            table = bytes(
                1 if stamp and (current - stamp) % _STAMPS < window else 0 for stamp in range(256)
            )
            self._translations[current] = table
        return table

    def slots(self, rows: Sequence[Row]) -> list[int]:
        """The slots of these rows' keys (for a batch that did not go through :meth:`split`)."""
        mask = self._mask
        return [hash(key) & mask for key in map(_key, rows)]

    def committed(self, table: str, slots: Iterable[int]) -> None:
        """Stamp a batch's slots once its transaction has committed."""
        stamps = self._stamps.get(table)
        if stamps is None:
            stamps = self._stamps[table] = bytearray(self._slots)
        stamp = self._stamp.get(table, 0) % _STAMPS + 1
        self._stamp[table] = stamp
        for slot in slots:
            stamps[slot] = stamp
