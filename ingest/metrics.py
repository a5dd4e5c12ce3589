"""Prometheus text exposition and ``/healthz``, without a dependency.

Counters are plain integers: each is incremented by one thread only (the MQTT
network thread or the writer), so the GIL makes reads consistent enough for scraping.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import logging
from collections import Counter as _Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from core.errors import ConfigError
from core.settings import env_name

logger = logging.getLogger(__name__)

# Distinct label values one labelled counter keeps; later ones are counted as "_other",
# so devices that invent field names cannot grow the collector's memory or /metrics.
MAX_LABEL_VALUES = 500
OTHER_LABEL = "_other"


def escape_label_value(value: str) -> str:
    """A label value in the Prometheus text format: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def count_label(counter: _Counter[str], label: str, n: int = 1) -> None:
    """Add ``n`` to ``counter[label]``, or to ``_other`` once it holds enough labels."""
    if label not in counter and len(counter) >= MAX_LABEL_VALUES:
        label = OTHER_LABEL
    counter[label] += n


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        lines += [f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return lines


@dataclass
class CollectorMetrics:
    """Everything the collector counts."""

    received: int = 0
    stored: _Counter[str] = field(default_factory=_Counter)
    duplicates: _Counter[str] = field(default_factory=_Counter)
    dead_letters: _Counter[str] = field(default_factory=_Counter)
    dead_letter_duplicates: int = 0
    batches: int = 0
    reconnects: int = 0
    db_retries: int = 0
    unknown_fields: _Counter[str] = field(default_factory=_Counter)
    batch_size: Histogram = field(
        default_factory=lambda: Histogram((1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000))
    )
    commit_seconds: Histogram = field(
        default_factory=lambda: Histogram((0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
    )
    queue_depth: Callable[[], int] = lambda: 0
    mqtt_connected: Callable[[], bool] = lambda: False
    db_ok: bool = False

    def render(self) -> str:
        lines: list[str] = []

        def counter(
            name: str, help_text: str, value: float | _Counter[str], label: str = ""
        ) -> None:
            lines.append(f"# HELP citytel_{name} {help_text}")
            lines.append(f"# TYPE citytel_{name} counter")
            if isinstance(value, _Counter):
                for key, count in sorted(value.items()):
                    lines.append(f'citytel_{name}{{{label}="{escape_label_value(key)}"}} {count}')
            else:
                lines.append(f"citytel_{name} {value}")

        counter("messages_received_total", "MQTT messages received.", self.received)
        counter("rows_stored_total", "Rows inserted, by table.", self.stored, "table")
        counter("duplicates_total", "Rows already stored, by table.", self.duplicates, "table")
        counter(
            "dead_letters_total", "Refused objects stored, by reason.", self.dead_letters, "reason"
        )
        counter(
            "dead_letter_duplicates_total",
            "Refused payloads already stored.",
            self.dead_letter_duplicates,
        )
        counter("batches_total", "Committed batches.", self.batches)
        counter("mqtt_reconnects_total", "MQTT (re)connections after the first.", self.reconnects)
        counter(
            "db_retries_total", "Batch writes retried after a database failure.", self.db_retries
        )
        counter(
            "unknown_fields_total",
            "Unknown payload fields, by kind.channel:field.",
            self.unknown_fields,
            "field",
        )
        lines += self.batch_size.render("citytel_batch_messages", "Messages per batch.")
        lines += self.commit_seconds.render("citytel_commit_seconds", "Batch write latency.")
        lines += [
            "# HELP citytel_queue_depth Messages received, not yet committed.",
            "# TYPE citytel_queue_depth gauge",
            f"citytel_queue_depth {self.queue_depth()}",
            "# TYPE citytel_mqtt_connected gauge",
            f"citytel_mqtt_connected {int(self.mqtt_connected())}",
            "# TYPE citytel_database_ok gauge",
            f"citytel_database_ok {int(self.db_ok)}",
        ]
        return "\n".join(lines) + "\n"

    def health(self) -> tuple[bool, bytes]:
        ok = self.mqtt_connected() and self.db_ok
        body = {
            "status": "ok" if ok else "degraded",
            "mqtt": "connected" if self.mqtt_connected() else "disconnected",
            "database": "ok" if self.db_ok else "unavailable",
            "queue_depth": self.queue_depth(),
        }
        return ok, orjson.dumps(body)


async def serve_metrics(metrics: CollectorMetrics, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.0 server for ``GET /metrics`` and ``GET /healthz``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            path = request.split(b" ", 2)[1].split(b"?")[0] if b" " in request else b""
            if path == b"/metrics":
                status, ctype, body = (
                    "200 OK",
                    "text/plain; version=0.0.4",
                    metrics.render().encode(),
                )
            elif path == b"/healthz":
                ok, body = metrics.health()
                status, ctype = ("200 OK" if ok else "503 Service Unavailable"), "application/json"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, port)
    except OSError as exc:
        raise ConfigError([_listen_problem(host, port, exc)]) from exc
    bound = server.sockets[0].getsockname()[1]
    chosen = " (a free port: CITYTEL_INGEST_METRICS_PORT=0)" if port == 0 else ""
    logger.info("metrics on http://%s:%s/metrics%s", host, bound, chosen)
    return server


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    """One line for the operator: what failed and which setting to change."""
    setting = env_name("ingest_metrics_port")
    if exc.errno == errno.EADDRINUSE:
        return (
            f"metrics port {host}:{port} is already in use (another collector on this host?): "
            f"set {setting} to a free port, or to 0 to pick one"
        )
    return (
        f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
        f"check {env_name('ingest_metrics_host')} and {setting}"
    )
