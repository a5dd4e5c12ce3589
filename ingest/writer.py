"""Per-batch work: binary COPY straight into the tables, or into staging tables and then
INSERT … ON CONFLICT DO NOTHING when a batch holds a duplicate the writer could not know.

One transaction per batch. The caller acknowledges the batch's messages only after
:meth:`BatchWriter.write` returns, so a crash at any instant loses nothing: the
broker redelivers and the unique keys absorb the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import asyncpg

from ingest.batch import Batch, Refusal
from ingest.decode import EVENT_COPY_COLUMNS, refusal_digest, telemetry_copy_columns
from ingest.errors import DatabaseUnavailableError
from ingest.recent_keys import RecentKeys
from schemas.payloads import TELEMETRY_TABLES

logger = logging.getLogger(__name__)

# After a direct copy meets a duplicate the cache did not know, a table's next batches
# take the staged path: with two collectors sharing duplicates that saves failed copies.
STAGED_BATCHES_AFTER_DUPLICATE = 20

DEAD_LETTER_COPY_COLUMNS = ("topic", "payload", "reason", "detail", "device_id", "digest")

# A transaction that lost a lock conflict with another collector: retried at once.
CONFLICTS = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

# Errors after which the same batch is retried (on a new connection unless a conflict).
RETRYABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
)


# Raised by the client before the database sees a value (asyncpg's client-side DataError
# is a ValueError and an InterfaceError, which RETRYABLE lists): retrying the same batch
# would fail forever. The server's own DataError (SQLSTATE class 22) is a PostgresError.
UNENCODABLE = (ValueError, TypeError, OverflowError)


def refusal_of(exc: BaseException) -> tuple[str, str] | None:
    """How a failed batch write dead-letters its message: ``(reason, detail)``.

    ``None`` for failures worth retrying as they are (the database away, a lock
    conflict); the server refusing a value is ``schema``; anything else, including a
    value the client cannot encode, is ``internal``: the decoder let it through.
    """
    if isinstance(exc, UNENCODABLE):
        return "internal", f"could not encode for the database: {type(exc).__name__}: {exc}"
    if isinstance(exc, (DatabaseUnavailableError, *RETRYABLE)) or not isinstance(exc, Exception):
        return None
    if isinstance(exc, asyncpg.PostgresError):
        return "schema", f"database refused the message: {exc}"
    return "internal", f"writing raised {type(exc).__name__}: {exc}"


@dataclass(slots=True)
class WriteResult:
    """What one committed batch did."""

    inserted: dict[str, int] = field(default_factory=dict)
    staged: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_duplicates: int = 0
    commit_s: float = 0.0

    @property
    def duplicates(self) -> int:
        return sum(self.staged[t] - self.inserted.get(t, 0) for t in self.staged)


def _stage(table: str) -> str:
    return f"citytel_stage_{table}"


def _add(counts: dict[str, int], table: str, n: int) -> None:
    counts[table] = counts.get(table, 0) + n


class BatchWriter:
    """Owns one database connection, its staging tables, and the write of a batch."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._conn: asyncpg.Connection | None = None
        self._recent = RecentKeys()
        self._staged_only: dict[str, int] = {}  # table -> batches left on the staged path

    async def connect(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout_s,
                command_timeout=60,
                server_settings={"application_name": "citytel-collector"},
            )
        except RETRYABLE as exc:
            raise DatabaseUnavailableError(f"cannot connect: {exc}") from exc
        tables = [*TELEMETRY_TABLES.values(), "device_events", "dead_letters"]
        for table in tables:
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_stage(table)}"
                f" (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=5)
            self._conn = None

    def discard_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def write(self, batch: Batch, *, mark_replayed: Sequence[int] = ()) -> WriteResult:
        """Write the whole batch in one transaction; raise on failure (nothing committed)."""
        conn = await self.connect()
        result = WriteResult()
        started = time.perf_counter()
        committed: dict[str, list[int]] = {}
        try:
            async with conn.transaction():
                for kind, rows in batch.telemetry.items():
                    if rows:
                        table = TELEMETRY_TABLES[kind]
                        committed[table] = await self._write_telemetry(
                            conn, table, telemetry_copy_columns(kind), rows, result
                        )
                if batch.events:
                    await self._insert(
                        conn,
                        "device_events",
                        EVENT_COPY_COLUMNS,
                        batch.events,
                        key="(device_id, ts, type, code)",
                        result=result,
                    )
                if committed:
                    await _log_rollup_buckets(conn, batch)
                if batch.refusals:
                    await self._write_refusals(conn, batch.refusals, result)
                await self._write_device_state(conn, batch)
                if batch.unknown_fields:
                    await self._count_unknown_fields(conn, batch)
                if mark_replayed:
                    await conn.execute(
                        "UPDATE dead_letters SET replayed_at = now() WHERE id = ANY($1::bigint[])",
                        list(mark_replayed),
                    )
        except RETRYABLE as exc:
            if not isinstance(exc, CONFLICTS):  # after a conflict the connection is fine
                self.discard_connection()
            raise
        result.commit_s = time.perf_counter() - started
        for table, slots in committed.items():
            self._recent.committed(table, slots)
        return result

    async def _write_telemetry(
        self,
        conn: asyncpg.Connection,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        result: WriteResult,
    ) -> list[int]:
        """Copy new keys straight into the table, and stage the rest with ON CONFLICT.

        A direct copy fails only on a duplicate the cache of recent keys cannot know (a
        restart, another collector). Then the savepoint is rolled back, the whole batch
        takes the staged path, and so do the table's next few batches. Returns the slots of
        the batch's keys in the cache: all of them are in the table once it commits.
        """
        key = "(device_id, ts)"
        skip = self._staged_only.get(table, 0)
        if skip:
            self._staged_only[table] = skip - 1
            slots = self._recent.slots(rows)
        else:
            fresh, seen_before, slots = self._recent.split(table, rows)
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=fresh, columns=list(columns))
            except asyncpg.exceptions.UniqueViolationError:
                self._staged_only[table] = STAGED_BATCHES_AFTER_DUPLICATE
            except asyncpg.exceptions.CheckViolationError as exc:
                if "no partition" not in str(exc):
                    raise
            else:
                _add(result.staged, table, len(fresh))
                _add(result.inserted, table, len(fresh))
                if seen_before:
                    await self._insert(conn, table, columns, seen_before, key=key, result=result)
                return slots
        await self._insert(conn, table, columns, rows, key=key, result=result)
        return slots

    async def _insert(
        self,
        conn: asyncpg.Connection,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        *,
        key: str,
        result: WriteResult,
    ) -> None:
        stage = _stage(table)
        await conn.copy_records_to_table(stage, records=rows, columns=list(columns))
        inserted = await self._insert_creating_partitions(
            conn, table, stage, _staged_insert(table, stage, columns, key)
        )
        _add(result.staged, table, len(rows))
        _add(result.inserted, table, inserted)

    @staticmethod
    async def _insert_creating_partitions(
        conn: asyncpg.Connection, table: str, stage: str, statement: str
    ) -> int:
        """Insert; if a row's day has no partition yet (plain PostgreSQL), create it and retry."""
        try:
            async with conn.transaction():
                return int(await conn.fetchval(statement))
        except asyncpg.exceptions.CheckViolationError as exc:
            if "no partition" not in str(exc):
                raise
        created = await conn.fetchval(
            f"SELECT citytel_ensure_partitions('{table}'::regclass,"
            f" ARRAY(SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM {stage}))"
        )
        logger.info("created %s partition(s) of %s for incoming rows", created, table)
        return int(await conn.fetchval(statement))

    async def _write_refusals(
        self, conn: asyncpg.Connection, refusals: list[Refusal], result: WriteResult
    ) -> None:
        rows = [
            (r.topic, r.payload, r.reason, r.detail, r.device_id, refusal_digest(r))
            for r in refusals
        ]
        stage = _stage("dead_letters")
        await conn.copy_records_to_table(
            stage, records=rows, columns=list(DEAD_LETTER_COPY_COLUMNS)
        )
        column_list = ", ".join(DEAD_LETTER_COPY_COLUMNS)
        status = await conn.execute(
            f"INSERT INTO dead_letters ({column_list}) SELECT {column_list} FROM {stage}"
            " ORDER BY digest ON CONFLICT (digest) DO NOTHING"
        )
        inserted = int(status.rsplit(" ", 1)[-1])
        result.dead_letters += inserted
        result.dead_letter_duplicates += len(rows) - inserted

    @staticmethod
    async def _write_device_state(conn: asyncpg.Connection, batch: Batch) -> None:
        if batch.statuses:
            ids = sorted(batch.statuses)
            await conn.execute(
                """
                INSERT INTO device_status (device_id, online, status_ts, fw, updated_at)
                SELECT d, o, t, f, now()
                FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::text[]) AS u(d, o, t, f)
                ON CONFLICT (device_id) DO UPDATE SET
                    online = excluded.online, status_ts = excluded.status_ts,
                    fw = coalesce(excluded.fw, device_status.fw), updated_at = now()
                """,
                ids,
                [batch.statuses[i][0] for i in ids],
                [batch.statuses[i][1] for i in ids],
                [batch.statuses[i][2] for i in ids],
            )
        if batch.last_seen:
            await write_last_seen(conn, batch.last_seen)

    @staticmethod
    async def _count_unknown_fields(conn: asyncpg.Connection, batch: Batch) -> None:
        keys = sorted(batch.unknown_fields)
        await conn.execute(
            """
            INSERT INTO unknown_fields (kind, field, messages)
            SELECT k, f, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(k, f, n)
            ON CONFLICT (kind, field) DO UPDATE SET
                messages = unknown_fields.messages + excluded.messages, last_seen = now()
            """,
            [k for k, _ in keys],
            [f for _, f in keys],
            [batch.unknown_fields[k] for k in keys],
        )


async def _log_rollup_buckets(conn: asyncpg.Connection, batch: Batch) -> None:
    """Tell the rollup refresher which 15-minute buckets got rows (in the batch's transaction)."""
    kinds: list[str] = []
    buckets: list[datetime] = []
    for kind, rows in batch.telemetry.items():
        if rows:
            starts = bucket_starts_15m(rows)
            kinds += [str(kind)] * len(starts)
            buckets += starts
    await conn.execute(
        "INSERT INTO rollup_invalidations (kind, bucket)"
        " SELECT * FROM unnest($1::text[], $2::timestamptz[])",
        kinds,
        buckets,
    )


def _staged_insert(table: str, stage: str, columns: Sequence[str], key: str) -> str:
    """Staged rows into ``table``, new keys only; per device, the repeats go to
    ``ingest_duplicates`` (for feed health). Returns the number inserted."""
    column_list = ", ".join(columns)
    return (
        f"WITH inserted AS (INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}"
        # Key order: two collectors inserting the same keys wait for each other in the
        # same order instead of deadlocking.
        f" ORDER BY {key.strip('()')} ON CONFLICT {key} DO NOTHING RETURNING device_id),"
        " kept AS (SELECT device_id, count(*) AS n FROM inserted GROUP BY device_id),"
        f" offered AS (SELECT device_id, count(*) AS n FROM {stage} GROUP BY device_id),"
        " logged AS (INSERT INTO ingest_duplicates (device_id, hour, duplicates)"
        " SELECT o.device_id, date_trunc('hour', now()), o.n - coalesce(k.n, 0)"
        " FROM offered o LEFT JOIN kept k ON k.device_id = o.device_id"
        " WHERE o.n > coalesce(k.n, 0))"
        " SELECT coalesce(sum(n), 0) FROM kept"
    )


def bucket_starts_15m(rows: Sequence[tuple[Any, ...]]) -> list[datetime]:
    """The 15-minute buckets the rows' ``ts`` (column 1) fall in, for the rollup log.

    Most batches span a few seconds: min and max give the answer without a per-row step.
    """
    stamps = list(map(_ts, rows))
    first, last = _bucket_15m(min(stamps)), _bucket_15m(max(stamps))
    if last - first <= _BUCKET_15M:
        return [first] if first == last else [first, last]
    return sorted({_bucket_15m(ts) for ts in stamps})


_ts = itemgetter(1)
_BUCKET_15M = timedelta(minutes=15)


def _bucket_15m(ts: datetime) -> datetime:
    return datetime.fromtimestamp(ts.timestamp() // 900 * 900, UTC)


async def write_last_seen(conn: asyncpg.Connection, seen: dict[str, datetime]) -> None:
    """Move ``device_status.last_seen`` forward (never back), in key order."""
    ids = sorted(seen)
    await conn.execute(
        """
        INSERT INTO device_status (device_id, last_seen, updated_at)
        SELECT d, t, now() FROM unnest($1::text[], $2::timestamptz[]) AS u(d, t)
        ON CONFLICT (device_id) DO UPDATE SET
            last_seen = greatest(device_status.last_seen, excluded.last_seen),
            updated_at = now()
        """,
        ids,
        [seen[i] for i in ids],
    )


async def retry_until_written(
    write: Callable[[], Awaitable[WriteResult]],
    *,
    stopping: Callable[[], bool],
    on_failure: Callable[[Exception, int], None],
    on_recovery: Callable[[int], None],
    max_delay_s: float = 5.0,
) -> WriteResult | None:
    """Call ``write`` until it succeeds, backing off; ``None`` if asked to stop meanwhile."""
    delay = 0.2
    attempt = 0
    while True:
        try:
            result = await write()
        except CONFLICTS as exc:
            logger.info(
                "write conflict with another transaction (%s); retrying the batch",
                type(exc).__name__,
            )
            await asyncio.sleep(0.01)
            continue
        except (DatabaseUnavailableError, *RETRYABLE) as exc:
            attempt += 1
            on_failure(exc, attempt)
            if stopping():
                return None
            await asyncio.sleep(delay)
            delay = min(max_delay_s, delay * 2)
            continue
        if attempt:
            on_recovery(attempt)
        return result
