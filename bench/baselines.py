"""Baselines the collector is measured against. None of this is used by the product.

* ``ceiling``: a paho subscriber that only counts; no consumer in Python goes faster.
* ``naive``: **the anti-pattern STYLE.md warns about, kept here only as a yardstick**:
  a paho callback that does one INSERT and one commit per message.
* ``bare``: QoS 1 into an in-memory batch, COPY with asyncpg, acknowledged on
  receipt; no validation, no dedup, no dead letters, no registry. The speed of
  doing nothing extra, on the collector's own receive path.
* ``bare-paho``: the same pipeline on paho's stock receive path (``on_message`` per
  message), the bare pipeline as the issue that asked for it defined it.

Each runs as its own process (:func:`main`, ``MODE …`` arguments), like the
collector, so CPU and memory are measured the same way. It prints ``ready`` once
subscribed, then ``count N T`` lines: ``N`` messages counted (ceiling) or committed
(naive, bare), ``T`` the ``time.monotonic()`` of the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.settings import IngestSettings
from core.urls import MqttUrl
from ingest.paho_client import BurstReadingClient, Publish
from schemas.payloads import TELEMETRY_COLUMNS, TELEMETRY_TABLES
from schemas.topics import SUBSCRIPTION, Kind

# The collector's defaults, read from its settings so the two never drift apart.
BATCH_MAX_MESSAGES = IngestSettings.model_fields["ingest_batch_max_messages"].default
BATCH_MAX_AGE_S = IngestSettings.model_fields["ingest_batch_max_age_ms"].default / 1000
_REPORT_INTERVAL_S = 0.02


def bare_table(kind: Kind) -> str:
    """The bare pipeline's target: the telemetry columns, a non-unique (device_id, ts) index."""
    return f"bench_bare_{kind}"


def bare_columns(kind: Kind) -> tuple[str, ...]:
    return ("device_id", "ts", "seq", *TELEMETRY_COLUMNS[kind])


class _Progress:
    """Counts, and reports on stdout for the orchestrating process."""

    def __init__(self) -> None:
        self.count = 0
        self.at = 0.0
        self._reported = -1

    def add(self, n: int = 1) -> None:
        self.count += n
        self.at = time.monotonic()

    def report(self) -> None:
        if self.count != self._reported:
            self._reported = self.count
            _say(f"count {self.count} {self.at:.6f}")


_STDOUT_LOCK = threading.Lock()


def _say(line: str) -> None:
    """One whole line to the orchestrator; callers are on different threads."""
    with _STDOUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _make_client(
    url: MqttUrl,
    client_id: str,
    protocol: str,
    on_publishes: Callable[[list[Publish]], None],
    *,
    stock: bool = False,
) -> paho.Client:
    v5 = protocol == "5"
    # The collector's own receive path, so the ratios isolate what the guarantees cost;
    # ``stock``: paho as shipped, one on_message call per message.
    client = (paho.Client if stock else BurstReadingClient)(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else True,
    )
    if url.username:
        client.username_pw_set(url.username, url.password)

    def connected(
        c: paho.Client, userdata: object, flags: object, code: object, properties: object
    ) -> None:
        c.subscribe(SUBSCRIPTION, qos=1)

    def subscribed(*args: object) -> None:
        _say("ready")

    client.on_connect = connected
    client.on_subscribe = subscribed
    if stock:
        client.on_message = lambda c, u, m: on_publishes([(m.topic, m.payload, m.mid)])
    else:
        client.on_publishes = on_publishes  # type: ignore[attr-defined]  # acks on receipt
    client.connect(url.host, url.port, keepalive=60)
    return client


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return datetime.fromisoformat(value)


def _row(topic: str, payload: bytes) -> tuple[Kind, tuple[Any, ...]]:
    """Topic and JSON to a row, trusting both: no checks at all."""
    parts = topic.split("/")
    kind = Kind(parts[3])
    document = orjson.loads(payload)
    get = document.get
    values = [get(name) for name in TELEMETRY_COLUMNS[kind]]
    return kind, (parts[4], _to_datetime(document["ts"]), get("seq"), *values)


# ceiling ------------------------------------------------------------------------------------------
def run_ceiling(url: MqttUrl, client_id: str, protocol: str) -> None:
    progress = _Progress()
    client = _make_client(url, client_id, protocol, lambda publishes: progress.add(len(publishes)))
    client.loop_start()
    _report_forever(progress)


def _report_forever(progress: _Progress) -> None:
    while True:
        progress.report()
        time.sleep(_REPORT_INTERVAL_S)


# naive bridge (the anti-pattern) ------------------------------------------------------------------
def run_naive(url: MqttUrl, client_id: str, protocol: str, database_url: str) -> None:
    """One INSERT and one commit per message, inside the MQTT callback. Do not copy this."""
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(database_url))
    statements = {
        kind: (
            f"INSERT INTO {TELEMETRY_TABLES[kind]} ({', '.join(bare_columns(kind))})"
            f" VALUES ({', '.join(f'${i + 1}' for i in range(len(bare_columns(kind))))})"
            " ON CONFLICT (device_id, ts) DO NOTHING"
        )
        for kind in Kind
    }
    progress = _Progress()

    def on_publishes(publishes: list[Publish]) -> None:
        for topic, payload, _ in publishes:
            kind, row = _row(topic, payload)
            loop.run_until_complete(conn.execute(statements[kind], *row))  # autocommit
            progress.add()

    client = _make_client(url, client_id, protocol, on_publishes)
    client.loop_start()
    _report_forever(progress)


# bare pipeline ------------------------------------------------------------------------------------
class _BarePipeline:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.lock = threading.Lock()
        self.rows: dict[Kind, list[tuple[Any, ...]]] = {kind: [] for kind in Kind}
        self.pending = 0
        self.first_at = 0.0
        self.progress = _Progress()

    def on_publishes(self, publishes: list[Publish]) -> None:
        rows = [_row(topic, payload) for topic, payload, _ in publishes]
        with self.lock:
            if not self.pending:
                self.first_at = time.monotonic()
            for kind, row in rows:
                self.rows[kind].append(row)
            self.pending += len(rows)

    def _take(self) -> tuple[dict[Kind, list[tuple[Any, ...]]], int]:
        with self.lock:
            rows, count = self.rows, self.pending
            self.rows, self.pending = {kind: [] for kind in Kind}, 0
        return rows, count

    async def run(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        while True:
            self.progress.report()
            age = time.monotonic() - self.first_at
            if self.pending >= BATCH_MAX_MESSAGES or (self.pending and age >= BATCH_MAX_AGE_S):
                rows, count = self._take()
                async with conn.transaction():
                    for kind, batch in rows.items():
                        if batch:
                            await conn.copy_records_to_table(
                                bare_table(kind), records=batch, columns=list(bare_columns(kind))
                            )
                self.progress.add(count)
            else:
                await asyncio.sleep(0.005)


def run_bare(
    url: MqttUrl, client_id: str, protocol: str, database_url: str, *, stock: bool = False
) -> None:
    pipeline = _BarePipeline(database_url)
    client = _make_client(url, client_id, protocol, pipeline.on_publishes, stock=stock)
    client.loop_start()
    asyncio.run(pipeline.run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.baselines")
    parser.add_argument("mode", choices=("ceiling", "naive", "bare", "bare-paho"))
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5")
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    url = MqttUrl(args.mqtt_url)
    if args.mode == "ceiling":
        run_ceiling(url, args.client_id, args.protocol)
    elif args.database_url is None:
        parser.error(f"{args.mode} needs --database-url")
    elif args.mode == "naive":
        run_naive(url, args.client_id, args.protocol, args.database_url)
    else:
        run_bare(
            url, args.client_id, args.protocol, args.database_url, stock=args.mode == "bare-paho"
        )
