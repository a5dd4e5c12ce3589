"""Helpers for tests that publish to a broker and run collectors."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.broker import TlsFiles
from core.settings import IngestSettings, load_settings
from core.urls import DatabaseUrl, MqttUrl
from ingest.service import Collector

# Yesterday 08:00 UTC: recent, so retention (90 days by default) never drops test rows.
BASE_MS = int(
    (
        datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)
    ).timestamp()
    * 1000
)


def publish_all(
    url: str,
    messages: Iterable[tuple[str, bytes]],
    *,
    qos: int = 1,
    retain: bool = False,
    timeout_s: float = 60.0,
    ca_file: str | None = None,
) -> int:
    """Publish and wait until the broker has acknowledged every message."""
    mqtt_url = MqttUrl(url)
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"test-pub-{secrets.token_hex(4)}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if mqtt_url.username:
        client.username_pw_set(mqtt_url.username, mqtt_url.password)
    if mqtt_url.tls:
        client.tls_set(ca_certs=ca_file)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(mqtt_url.host, mqtt_url.port)
    client.loop_start()
    infos: list[paho.MQTTMessageInfo] = []
    try:
        for topic, payload in messages:
            if len(infos) >= 30000:  # paho packet ids wrap at 65535
                infos[-30000].wait_for_publish(timeout_s)
            infos.append(client.publish(topic, payload, qos=qos, retain=retain))
        for info in infos[-30000:]:
            info.wait_for_publish(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(infos)


def connect_result(
    url: str, *, ca_file: str | None = None, protocol: int = MQTTProtocolVersion.MQTTv5
) -> paho.ReasonCode | None:
    """The broker's CONNACK reason for the account in ``url`` (``None``: no answer in 5 s)."""
    mqtt_url = MqttUrl(url)
    codes: list[paho.ReasonCode] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    if mqtt_url.tls:
        client.tls_set(ca_certs=ca_file)
    if mqtt_url.username:
        client.username_pw_set(mqtt_url.username, mqtt_url.password)
    client.on_connect = lambda *args: codes.append(args[3])
    client.connect(mqtt_url.host, mqtt_url.port)
    try:  # no network thread: it would sleep in its reconnect back-off after a refusal
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            client.loop(timeout=0.05)
    finally:
        client.disconnect()
    return codes[0] if codes else None


def make_certificates(folder: Path) -> TlsFiles:
    """A CA (``folder/ca.crt``) and a server certificate for 127.0.0.1 it signed (openssl)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        str(folder / name)
        for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=citytel test CA", "-keyout", ca_key, "-out", ca,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", key, "-out", csr,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", str(folder / "san.ext"), "-out", cert,
    )  # fmt: skip
    return TlsFiles(certfile=Path(cert), keyfile=Path(key))


def pole_message(city: str, device_id: str, ts_ms: int, **fields: Any) -> tuple[str, bytes]:
    body = {"ts": ts_ms, "lamp_on": True, "dim_pct": 80, "pm25_ugm3": 35.5, **fields}
    return f"citytel/v1/{city}/pole/{device_id}/telemetry", orjson.dumps(body)


def collector_settings(
    database_url: DatabaseUrl, mqtt_url: str, *, city: str | None = None, **overrides: Any
) -> IngestSettings:
    """Settings for a collector of this test: own client id and share group, fast batches."""
    values: dict[str, Any] = {
        "database_url": str(database_url),
        "mqtt_url": mqtt_url,
        "ingest_client_id": f"test-{secrets.token_hex(4)}",
        "ingest_group": f"g{secrets.token_hex(4)}",
        "ingest_metrics_port": 0,
        "ingest_batch_max_age_ms": 50,
        "ingest_maintenance_interval_s": 3600,
        # Tests send thousands of messages a second from a handful of devices.
        "ingest_rate_limit_per_s": 0,
        # Only this test's city: other tests' retained statuses stay out of its counts.
        **({"ingest_topic_filter": f"citytel/v1/{city}/+/+/+"} if city else {}),
    }
    values.update(overrides)
    return load_settings(IngestSettings, **values)


@asynccontextmanager
async def running_collector(settings: IngestSettings) -> AsyncIterator[Collector]:
    """A collector running in this event loop until the block ends."""
    collector = Collector(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await wait_until(
        lambda: collector.source is not None and collector.source.connected, timeout_s=10, task=task
    )
    try:
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_until(
    predicate: Any, *, timeout_s: float, task: asyncio.Task[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if task is not None and task.done():
            task.result()
            raise AssertionError("collector stopped early")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


async def wait_for_count(
    conn: asyncpg.Connection, sql: str, expected: int, *args: Any, timeout_s: float = 30.0
) -> int:
    """Poll ``sql`` until it returns ``expected``; return the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await conn.fetchval(sql, *args)
        if value >= expected or time.monotonic() > deadline:
            return int(value)
        await asyncio.sleep(0.1)


async def insert_rows(db: asyncpg.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert telemetry ``rows`` (column -> value), creating their day partitions first."""
    days = sorted({row["ts"].astimezone(UTC).date() for row in rows})
    await db.execute("SELECT citytel_ensure_partitions($1::regclass, $2::date[])", table, days)
    for row in rows:
        columns = ", ".join(row)
        values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        await db.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})", *row.values())


async def register_poles(conn: asyncpg.Connection, city: str, count: int) -> list[str]:
    ids = [f"{city}-pole-{i:05d}" for i in range(count)]
    await conn.executemany(
        "INSERT INTO devices (device_id, kind, city) VALUES ($1, 'pole', $2)",
        [(i, city) for i in ids],
    )
    return ids


class TcpProxy:
    """A TCP proxy that can cut every connection through it, like a failing network."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.refusing = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection at once (both directions)."""
        self.cuts += 1
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
