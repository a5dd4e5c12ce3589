"""Publish → committed latency, measured from outside the collector.

Method: every ``probe_every``-th message comes from the probe pole, with ``seq`` =
its index and ``ts`` = a base plus one millisecond per index (see
:mod:`bench.payloads`). The publisher records when it wrote each chunk of packets
(open loop, so that time is the message's send time). A poller queries the probe's
rows every few milliseconds on its own connection; a row is visible there exactly
when the transaction that wrote it has committed. A probe's latency is the start of
the first query that returned it minus its send time. This is an upper bound,
too high by at most one poll interval plus a query's round trip (a few ms); both
times come from the same monotonic clock, so no clock skew enters.

``received_at`` cannot be used: it is ``now()``, the *start* of the writing
transaction, not its commit.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from dataclasses import dataclass

import asyncpg

from bench.payloads import PROBE_DEVICE, MessageSet, probe_ts
from bench.sender import SendStats

POLL_INTERVAL_S = 0.005
_QUERY = "SELECT seq FROM pole_telemetry WHERE device_id = $1 AND ts >= $2"


@dataclass(slots=True)
class ProbeWatch:
    """Polls for probe rows; records when each was first seen."""

    message_set: MessageSet
    count: int
    seen: dict[int, float]

    @classmethod
    def for_messages(cls, message_set: MessageSet, count: int) -> ProbeWatch:
        return cls(message_set, count, {})

    @property
    def probes(self) -> list[int]:
        return list(range(0, self.count, self.message_set.probe_every))

    async def run(self, conn: asyncpg.Connection, *, timeout_s: float) -> None:
        """Poll until every probe of the first ``count`` messages was seen (or timeout)."""
        pending = self.probes
        low = 0
        deadline = time.monotonic() + timeout_s
        while low < len(pending) and time.monotonic() < deadline:
            issued = time.monotonic()
            since = probe_ts(self.message_set.probe_base, pending[low])
            for row in await conn.fetch(_QUERY, PROBE_DEVICE, since):
                self.seen.setdefault(row["seq"], issued)
            while low < len(pending) and pending[low] in self.seen:
                low += 1
            await asyncio.sleep(max(0.0, issued + POLL_INTERVAL_S - time.monotonic()))

    def latencies_ms(self, stats: SendStats) -> list[float]:
        """Per probe: first seen committed minus sent, in ms, sorted."""
        starts = [index for index, _ in stats.chunks]
        out = []
        for index, seen_at in self.seen.items():
            if index >= self.count:
                continue
            chunk = bisect.bisect_right(starts, index) - 1
            out.append((seen_at - stats.chunks[chunk][1]) * 1000)
        return sorted(out)


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of already sorted values; ``None`` when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
