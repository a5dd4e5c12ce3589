"""The collector's own figures in the database: one ``collector_stats`` row per interval.

The counters of :class:`~ingest.metrics.CollectorMetrics` (what ``/metrics`` serves)
are read every ``CITYTEL_INGEST_STATS_INTERVAL_S`` seconds and what changed since the
last row written becomes the next row, so Grafana can chart ingest without a
Prometheus. Reading the counters costs nothing to ingest (plain integers, same event
loop); the row is written on a connection of the upkeep task's own. A round that
cannot write leaves the snapshot where it was: the next row covers the longer interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ingest.metrics import CollectorMetrics, Histogram


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters at one instant (monotonic seconds ``at``)."""

    at: float
    received: int
    committed_rows: int
    duplicates: int
    dead_letters: int
    batches: int
    commit_counts: tuple[int, ...]
    commit_total_s: float

    @classmethod
    def of(cls, metrics: CollectorMetrics, at: float | None = None) -> Snapshot:
        return cls(
            at=time.monotonic() if at is None else at,
            received=metrics.received,
            committed_rows=sum(metrics.stored.values()),
            duplicates=sum(metrics.duplicates.values()),
            dead_letters=sum(metrics.dead_letters.values()),
            batches=metrics.batches,
            commit_counts=tuple(metrics.commit_seconds.counts),
            commit_total_s=metrics.commit_seconds.total,
        )


def bucket_quantile(q: float, bounds: tuple[float, ...], counts: tuple[int, ...]) -> float | None:
    """The ``q`` quantile of observations counted per histogram bucket (not cumulative).

    ``counts`` has one more entry than ``bounds`` (the +Inf bucket). Linear within the
    bucket that holds the rank, as Prometheus' ``histogram_quantile``; a rank in the
    +Inf bucket answers the highest finite bound. ``None`` without observations.
    """
    n = sum(counts)
    if n == 0:
        return None
    rank = q * n
    running = 0
    for index, count in enumerate(counts):
        if count and running + count >= rank:
            if index == len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - running) / count
        running += count
    return bounds[-1]


@dataclass(frozen=True, slots=True)
class StatsRow:
    """What a collector did between two snapshots."""

    interval_s: float
    received: int
    committed_rows: int
    duplicates: int
    dead_letters: int
    batches: int
    commit_avg_s: float | None
    commit_p50_s: float | None
    commit_p99_s: float | None

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, histogram: Histogram) -> StatsRow:
        pairs = zip(after.commit_counts, before.commit_counts, strict=True)
        counts = tuple(a - b for a, b in pairs)
        batches = after.batches - before.batches
        return cls(
            interval_s=max(after.at - before.at, 1e-3),
            received=after.received - before.received,
            committed_rows=after.committed_rows - before.committed_rows,
            duplicates=after.duplicates - before.duplicates,
            dead_letters=after.dead_letters - before.dead_letters,
            batches=batches,
            commit_avg_s=(after.commit_total_s - before.commit_total_s) / batches
            if batches
            else None,
            commit_p50_s=bucket_quantile(0.5, histogram.buckets, counts),
            commit_p99_s=bucket_quantile(0.99, histogram.buckets, counts),
        )


_INSERT = """\
INSERT INTO collector_stats (collector_id, ts, interval_s, received, committed_rows, duplicates,
                             dead_letters, batches, commit_avg_s, commit_p50_s, commit_p99_s,
                             queue_depth)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT DO NOTHING"""


class StatsRecorder:
    """Writes the collector's figures since the previous successful write."""

    def __init__(self, collector_id: str, metrics: CollectorMetrics) -> None:
        self.collector_id = collector_id
        self.metrics = metrics
        self._last = Snapshot.of(metrics)

    async def record(self, conn: asyncpg.Connection) -> StatsRow:
        now = Snapshot.of(self.metrics)
        row = StatsRow.between(self._last, now, self.metrics.commit_seconds)
        await conn.execute(
            _INSERT,
            self.collector_id,
            datetime.now(UTC),
            row.interval_s,
            row.received,
            row.committed_rows,
            row.duplicates,
            row.dead_letters,
            row.batches,
            row.commit_avg_s,
            row.commit_p50_s,
            row.commit_p99_s,
            self.metrics.queue_depth(),
        )
        self._last = now
        return row
