"""The migrator: idempotent, versioned, concurrent-safe, reports the storage mode."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from conftest import ADMIN_URL

from ingest.maintenance import maintain_partitions
from schemas.migrate import StorageMode, load_migrations, migrate, migration_status
from schemas.scratch import create_database, drop_database


async def test_migrate_is_idempotent_and_concurrent_safe() -> None:
    url = await create_database(ADMIN_URL, "citytel_migrate")
    try:
        conns = [await asyncpg.connect(str(url)) for _ in range(3)]
        applied = await asyncio.gather(*(migrate(c, storage="postgres") for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, len(load_migrations(StorageMode.POSTGRES))]
        assert await migrate(conns[0]) == []
        status = await migration_status(conns[0])
        assert status.storage_mode is StorageMode.POSTGRES
        assert not status.pending and not status.changed
        expected = [m.version for m in load_migrations(StorageMode.POSTGRES)]
        assert [v for v, _ in status.applied] == expected and len(expected) >= 4
        for conn in conns:
            await conn.close()
    finally:
        await drop_database(ADMIN_URL, url)


async def test_migrate_refuses_to_switch_storage_mode(database_url: object) -> None:
    conn = await asyncpg.connect(str(database_url))
    try:
        from schemas.errors import MigrationError  # noqa: PLC0415

        with pytest.raises(MigrationError, match="already uses postgres"):
            await migrate(conn, storage="timescale")
    finally:
        await conn.close()


async def test_maintenance_creates_ahead_and_drops_past_retention(db: asyncpg.Connection) -> None:
    from datetime import date  # noqa: PLC0415

    await db.execute(
        "SELECT citytel_ensure_partitions('pole_telemetry'::regclass, ARRAY['2026-01-01'::date])"
    )
    created, dropped = await maintain_partitions(
        db, ahead_days=2, retention_days=30, today=date(2026, 3, 1)
    )
    names = {
        r["relname"]
        for r in await db.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'pole_telemetry'::regclass"
        )
    }
    assert {
        "pole_telemetry_p20260228",
        "pole_telemetry_p20260301",
        "pole_telemetry_p20260303",
    } <= names
    assert "pole_telemetry_p20260101" not in names
    assert created >= 4 * 3 and dropped >= 1


async def test_db_status_command_reports_storage_mode(database_url: object) -> None:
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYTEL_")}
    env["CITYTEL_DATABASE_URL"] = str(database_url)
    env["COLUMNS"] = "200"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "citytel", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "storage: postgres (plain PostgreSQL: daily range partitions" in result.stdout
    assert "applied  003_indicators" in result.stdout
