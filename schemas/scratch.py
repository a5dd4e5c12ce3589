"""Throwaway databases for tests and benchmarks: created fresh, migrated, dropped."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from core.urls import DatabaseUrl
from schemas.migrate import StorageChoice, migrate


async def create_database(admin: DatabaseUrl, prefix: str) -> DatabaseUrl:
    """A new empty database ``<prefix>_<random>`` on ``admin``'s server."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(str(admin), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.with_database(name)


async def drop_database(admin: DatabaseUrl, url: DatabaseUrl) -> None:
    conn = await asyncpg.connect(str(admin), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(
    admin: DatabaseUrl,
    prefix: str,
    *,
    storage: StorageChoice = "postgres",
    retention_days: int = 90,
) -> AsyncIterator[DatabaseUrl]:
    """A migrated database for the block's duration; dropped afterwards whatever happens."""
    url = await create_database(admin, prefix)
    try:
        conn = await asyncpg.connect(str(url), timeout=10)
        try:
            await migrate(conn, storage=storage, retention_days=retention_days)
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(admin, url)
