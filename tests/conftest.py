"""Shared fixtures: a fresh database per session, a private Mosquitto, clean tables per test."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.keys import Role, create_key
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
        "ingest_duplicates, signal_coverage_1d, api_keys",
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
async def app(database_url: DatabaseUrl, db: asyncpg.Connection) -> AsyncIterator[FastAPI]:
    """The API on the session database (tables emptied), its lifespan running."""
    app = create_app(ApiSettings(database_url=str(database_url)))
    async with app.router.lifespan_context(app):
        yield app


ApiKeyFactory = Callable[..., Awaitable[str]]
ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
def api_key(db: asyncpg.Connection) -> ApiKeyFactory:
    """``await api_key("operator")``: a new key of that role, as its holder would send it."""

    async def make(role: Role | str = Role.VIEWER, name: str | None = None) -> str:
        _, key = await create_key(db, Role(role), name)
        return key

    return make


@pytest.fixture
async def client_for(app: FastAPI) -> AsyncIterator[ClientFactory]:
    """``client_for(key)``: an in-process client sending ``key`` (none when None)."""
    clients: list[httpx.AsyncClient] = []

    def make(key: str | None, *, header: str = "bearer") -> httpx.AsyncClient:
        headers = {}
        if key is not None:
            headers = (
                {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
            )
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
        )
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture
async def client(client_for: ClientFactory, api_key: ApiKeyFactory) -> httpx.AsyncClient:
    """The API as an operator sees it (reads and registry writes)."""
    return client_for(await api_key(Role.OPERATOR, "tests"))


@pytest.fixture
async def viewer_client(client_for: ClientFactory, api_key: ApiKeyFactory) -> httpx.AsyncClient:
    return client_for(await api_key(Role.VIEWER))


@pytest.fixture
async def admin_client(client_for: ClientFactory, api_key: ApiKeyFactory) -> httpx.AsyncClient:
    return client_for(await api_key(Role.ADMIN))


@pytest.fixture
def anonymous_client(client_for: ClientFactory) -> httpx.AsyncClient:
    return client_for(None)


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
