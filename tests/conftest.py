"""Shared fixtures: a fresh database per session, a private Mosquitto, clean tables per test."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.main import create_app
from core.broker import MosquittoProcess, start_mosquitto
from core.settings import ApiSettings
from core.urls import DatabaseUrl
from schemas.rollups import AREA_LEVELS, LEVELS, area_name, rollup_name
from schemas.scratch import scratch_database
from schemas.topics import Kind

ADMIN_URL = DatabaseUrl(
    os.environ.get("CITYTEL_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
# A server with TimescaleDB preloaded, when one is available (see docs/development.md).
TIMESCALE_ADMIN_URL = os.environ.get("CITYTEL_TEST_TIMESCALE_URL")

# Everything data-bearing; the catalogue, the targets and the city settings keep their seeds.
TRUNCATE = "TRUNCATE " + ", ".join(
    [
        "pole_telemetry, signal_telemetry, energy_telemetry, device_events, device_status",
        "devices, dead_letters, unknown_fields, rollup_invalidations, rollup_rebuilds",
        "ingest_duplicates, signal_coverage_1d",
        *(rollup_name(kind, level) for kind in Kind for level in LEVELS),
        *(area_name(kind, level) for kind in Kind for level in AREA_LEVELS),
        "collector_stats",
    ]
)


# Tables the migrations seed: each test starts from the seeds (a test may edit them).
SEEDED = ("city_settings", "indicator_targets")


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[DatabaseUrl]:
    """A fresh database for the session, migrated on plain PostgreSQL storage."""
    async with scratch_database(ADMIN_URL, "citytel_test") as url:
        conn = await asyncpg.connect(str(url))
        try:
            for table in SEEDED:
                await conn.execute(f"CREATE TABLE test_seed_{table} AS SELECT * FROM {table}")
        finally:
            await conn.close()
        yield url


@pytest.fixture
async def db(database_url: DatabaseUrl) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session database, with every table emptied first."""
    conn = await asyncpg.connect(str(database_url))
    for table in SEEDED:
        await conn.execute(f"TRUNCATE {table}; INSERT INTO {table} SELECT * FROM test_seed_{table}")
    await conn.execute(TRUNCATE)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def client(
    database_url: DatabaseUrl, db: asyncpg.Connection
) -> AsyncIterator[httpx.AsyncClient]:
    """The API, over an in-process transport, on the session database (tables emptied)."""
    app = create_app(ApiSettings(database_url=str(database_url)))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        yield http


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A private Mosquitto with the at-least-once configuration, on a free port."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A broker of this test's own, for tests that stop or restart it."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture
def city() -> str:
    """A city name unique to the test, so topics of tests never meet."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Commands configure logging as entry points do; undo that for the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class _ExceptionRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_log_exception(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that logs an unexpected exception (``logger.exception``)."""
    recorder = _ExceptionRecorder()
    logging.getLogger().addHandler(recorder)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(recorder)
    if recorder.records and not request.node.get_closest_marker("allow_logged_exceptions"):
        record = recorder.records[0]
        pytest.fail(f"logged exception in {record.name}: {record.getMessage()}")
