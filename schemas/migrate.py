"""The migrator: applies ``sql/NNN_name.sql`` files in order, once each.

A file may exist in one common form (``NNN_name.sql``) or per storage mode
(``NNN_name.postgres.sql`` and ``NNN_name.timescale.sql``). The storage mode is
chosen at the first migration (TimescaleDB when the extension can be created,
else plain PostgreSQL) and recorded, so later migrations follow the same path.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Literal

import asyncpg

from schemas.errors import MigrationError
from schemas.payloads import TELEMETRY_TABLES
from schemas.topics import Kind

logger = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(postgres|timescale))?\.sql$")
_LOCK_KEY = 0x0C17_7E1  # advisory lock serialising concurrent migrators

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS citytel_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"""


class StorageMode(StrEnum):
    TIMESCALE = "timescale"
    POSTGRES = "postgres"


StorageChoice = Literal["auto", "timescale", "postgres"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(slots=True)
class MigrationStatus:
    storage_mode: StorageMode | None
    applied: list[tuple[int, str]] = field(default_factory=list)
    pending: list[tuple[int, str]] = field(default_factory=list)
    changed: list[tuple[int, str]] = field(default_factory=list)
    server_version: str = ""
    timescale_version: str | None = None
    retention_days: int | None = None
    rollup_retention_days: int | None = None
    rollup_timezone: str | None = None


def load_migrations(mode: StorageMode) -> list[Migration]:
    """The migrations for ``mode``, in version order."""
    chosen: dict[int, Migration] = {}
    for entry in resources.files("schemas").joinpath("sql").iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        if variant is not None and variant != mode:
            continue
        if version in chosen:
            raise MigrationError(f"two migrations claim version {version:03d}")
        chosen[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [chosen[v] for v in sorted(chosen)]


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """True when the TimescaleDB extension is installed and preloaded on this server."""
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS avail,"
        " current_setting('shared_preload_libraries') AS preload"
    )
    return bool(row and row["avail"] and "timescaledb" in row["preload"])


async def read_storage_mode(conn: asyncpg.Connection) -> StorageMode | None:
    if await conn.fetchval("SELECT to_regclass('citytel_meta')") is None:
        return None
    value = await conn.fetchval("SELECT value FROM citytel_meta WHERE key = 'storage_mode'")
    return StorageMode(value) if value else None


async def _choose_mode(conn: asyncpg.Connection, choice: StorageChoice) -> StorageMode:
    recorded = await read_storage_mode(conn)
    if recorded is not None:
        if choice not in ("auto", recorded):
            raise MigrationError(
                f"database already uses {recorded} storage; cannot switch to {choice}"
            )
        return recorded
    if choice == "postgres":
        return StorageMode.POSTGRES
    if await timescale_available(conn):
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return StorageMode.TIMESCALE
    if choice == "timescale":
        raise MigrationError("TimescaleDB requested but the extension is not available/preloaded")
    return StorageMode.POSTGRES


DEFAULT_ROLLUP_TIMEZONE = "Asia/Shanghai"
DEFAULT_ROLLUP_RETENTION_DAYS = 1825


async def migrate(
    conn: asyncpg.Connection,
    *,
    retention_days: int = 90,
    storage: StorageChoice = "auto",
    rollup_retention_days: int = DEFAULT_ROLLUP_RETENTION_DAYS,
    rollup_timezone: str = DEFAULT_ROLLUP_TIMEZONE,
) -> list[Migration]:
    """Apply pending migrations; return the ones applied. Safe to run concurrently.

    ``rollup_timezone`` (the days of the daily rollups) is fixed by the migration that
    creates the rollups; later values are ignored (``db status`` shows the one in use).
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        mode = await _choose_mode(conn, storage)
        await conn.execute(
            "INSERT INTO citytel_meta (key, value) VALUES ('storage_mode', $1), "
            "('rollup_timezone', $2) ON CONFLICT (key) DO NOTHING",
            str(mode),
            rollup_timezone,
        )
        zone = await conn.fetchval("SELECT value FROM citytel_meta WHERE key = 'rollup_timezone'")
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done: list[Migration] = []
        for migration in load_migrations(mode):
            if migration.version in applied:
                continue
            logger.info("applying migration %03d_%s (%s)", migration.version, migration.name, mode)
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('citytel.retention_days', $1, true),"
                        " set_config('citytel.rollup_retention_days', $2, true),"
                        " set_config('citytel.rollup_timezone', $3, true)",
                        str(retention_days),
                        str(rollup_retention_days),
                        zone,
                    )
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} failed: {exc}"
                ) from exc
            done.append(migration)
        await apply_retention(conn, mode, retention_days, rollup_retention_days)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def apply_retention(
    conn: asyncpg.Connection,
    mode: StorageMode,
    retention_days: int,
    rollup_retention_days: int = DEFAULT_ROLLUP_RETENTION_DAYS,
) -> None:
    """Record the retention periods; on TimescaleDB, (re)set the policies to match.

    Raw data and 15-minute rollups are kept ``retention_days``; hourly and daily
    rollups ``rollup_retention_days``. On plain PostgreSQL the collector's maintenance
    applies them (ingest/maintenance.py).
    """
    previous = {
        r["key"]: r["value"]
        for r in await conn.fetch(
            "SELECT key, value FROM citytel_meta"
            " WHERE key IN ('retention_days', 'rollup_retention_days')"
        )
    }
    await conn.executemany(
        "INSERT INTO citytel_meta (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [
            ("retention_days", str(retention_days)),
            ("rollup_retention_days", str(rollup_retention_days)),
        ],
    )
    if mode is not StorageMode.TIMESCALE:
        return
    raw_changed = previous.get("retention_days") not in (None, str(retention_days))
    kept_changed = previous.get("rollup_retention_days") not in (None, str(rollup_retention_days))
    relations: list[tuple[str, int]] = []
    if raw_changed:
        relations += [(t, retention_days) for t in TELEMETRY_TABLES.values()]
        relations += [(f"{k}_rollup_15m", retention_days) for k in Kind]
    if kept_changed:
        relations += [
            (f"{k}_rollup_{level}", rollup_retention_days) for k in Kind for level in ("1h", "1d")
        ]
    for relation, days in relations:
        if await conn.fetchval("SELECT to_regclass($1)", relation) is None:
            continue
        await conn.execute(
            "SELECT remove_retention_policy($1::regclass, if_exists => true)", relation
        )
        await conn.execute(
            "SELECT add_retention_policy($1::regclass, make_interval(days => $2))",
            relation,
            days,
        )


async def migration_status(conn: asyncpg.Connection) -> MigrationStatus:
    """What is applied, what is pending, which storage mode is active."""
    mode = await read_storage_mode(conn)
    status = MigrationStatus(storage_mode=mode)
    status.server_version = await conn.fetchval("SHOW server_version")
    status.timescale_version = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    expected = load_migrations(mode or StorageMode.POSTGRES)
    if mode is None:
        status.pending = [(m.version, m.name) for m in expected]
        return status
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
    applied = {r["version"]: r for r in rows}
    status.applied = [(r["version"], r["name"]) for r in rows]
    for migration in expected:
        row = applied.get(migration.version)
        if row is None:
            status.pending.append((migration.version, migration.name))
        elif row["checksum"] != migration.checksum:
            status.changed.append((migration.version, migration.name))
    meta = {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM citytel_meta")}
    status.retention_days = int(meta["retention_days"]) if "retention_days" in meta else None
    kept = meta.get("rollup_retention_days")
    status.rollup_retention_days = int(kept) if kept else None
    status.rollup_timezone = meta.get("rollup_timezone")
    return status
