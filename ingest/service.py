"""The collector's wiring and lifecycle: MQTT source, batch writer, maintenance, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import datetime

import asyncpg

from core.settings import IngestSettings
from ingest.batch import Batch, keep_newest
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.errors import DatabaseUnavailableError, IngestError
from ingest.isolate import write_batch
from ingest.metrics import CollectorMetrics, count_label, serve_metrics
from ingest.mqtt import MqttOptions, MqttSource
from ingest.registry import RegisteredDevice, load_registry
from ingest.upkeep import upkeep_tasks
from ingest.writer import (
    CONFLICTS,
    RETRYABLE,
    BatchWriter,
    WriteResult,
    retry_until_written,
    write_last_seen,
)
from schemas.migrate import read_storage_mode

logger = logging.getLogger(__name__)

_FINAL_STATE_WRITE_S = 5.0


class Collector:
    """MQTT in, validated batches out; acknowledges only what is committed."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.metrics = CollectorMetrics()
        self.registry: dict[str, RegisteredDevice] = {}
        self.decoder = MessageDecoder(
            DecodePolicy(
                max_payload_bytes=settings.ingest_max_payload_bytes,
                max_future_s=settings.ingest_max_future_s,
                rate_limit_per_s=settings.ingest_rate_limit_per_s,
                rate_limit_burst=settings.ingest_rate_limit_burst,
            ),
            self.registry,
        )
        self.writer = BatchWriter(str(settings.require_database_url()))
        self.source: MqttSource | None = None
        self.metrics_port: int | None = None  # the one bound (CITYTEL_INGEST_METRICS_PORT=0: any)
        self._wakeup = asyncio.Event()
        self._stopping = False
        # last_seen of committed batches, written by its own task on its own connection.
        self._seen: dict[str, datetime] = {}
        self._seen_ready = asyncio.Event()
        self._state_writer = BatchWriter(str(settings.require_database_url()))
        self._seen_write: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, startup_timeout_s: float = 120.0) -> None:
        """Run until ``stop`` is set; then commit and acknowledge what was received."""
        self._loop = asyncio.get_running_loop()
        # First of all: a metrics port in use ends the start at once, naming the setting.
        server = await serve_metrics(
            self.metrics, self.settings.ingest_metrics_host, self.settings.ingest_metrics_port
        )
        self.metrics_port = server.sockets[0].getsockname()[1]
        try:
            await self._run(stop, startup_timeout_s)
        finally:
            server.close()

    async def _run(self, stop: asyncio.Event, startup_timeout_s: float) -> None:
        await self._wait_for_database(startup_timeout_s)
        source = MqttSource(self._mqtt_options(), self.decoder, self._notify)
        self.source = source
        self.metrics.queue_depth = lambda: source.peek()[0]
        self.metrics.mqtt_connected = lambda: source.connected
        tasks = [
            *upkeep_tasks(self.settings, self.metrics),
            asyncio.create_task(self._write_last_seen_forever(), name="last-seen"),
        ]
        source.start()
        try:
            await self._write_until(stop)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            source.stop()
            if self._seen_write is not None:
                await self._seen_write  # a write in progress is finished, not cut off
            with contextlib.suppress(TimeoutError):  # bounded: the database may be down
                await asyncio.wait_for(self._write_last_seen(), _FINAL_STATE_WRITE_S)
            await self.writer.close()
            await self._state_writer.close()
            logger.info("collector stopped: %d messages received", source.received)

    def _mqtt_options(self) -> MqttOptions:
        s = self.settings
        return MqttOptions(
            url=s.require_mqtt_url(),
            client_id=s.ingest_client_id,
            group=s.ingest_group,
            protocol=s.ingest_protocol,
            receive_maximum=s.ingest_receive_maximum,
            session_expiry_s=s.ingest_session_expiry_s,
            keepalive_s=s.ingest_keepalive_s,
            batch_max_messages=s.ingest_batch_max_messages,
            ca_file=s.mqtt_ca_file,
            topic_filter=s.ingest_topic_filter,
        )

    async def _wait_for_database(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.5
        while True:
            try:
                conn = await self.writer.connect()
                if await read_storage_mode(conn) is None:
                    raise IngestError("database is not migrated: run `citytel db migrate` first")
                self.registry.update(await load_registry(conn))
                self.metrics.db_ok = True
                logger.info("database ready; %d devices in the registry", len(self.registry))
                return
            except (DatabaseUnavailableError, *RETRYABLE) as exc:
                if time.monotonic() + delay > deadline:
                    raise IngestError(
                        f"database not reachable after {timeout_s:.0f}s: {exc}"
                    ) from exc
                logger.warning("waiting for the database (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _notify(self) -> None:
        """Called from paho's thread: the batch got its first message or is full."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    # the write loop ----------------------------------------------------------------------------
    async def _write_until(self, stop: asyncio.Event) -> None:
        stop_task = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._wait_for_batch(stop_task)
                await self._flush()
            await self._flush()  # what arrived before stop
        finally:
            self._stopping = True
            stop_task.cancel()

    async def _wait_for_batch(self, stop_task: asyncio.Task[bool]) -> None:
        assert self.source is not None
        max_age = self.settings.ingest_batch_max_age_ms / 1000
        while not stop_task.done():
            # Clear before looking: a notification after this point is never missed.
            self._wakeup.clear()
            count, started = self.source.peek()
            if count >= self.settings.ingest_batch_max_messages:
                return
            if count:
                remaining = started + max_age - time.monotonic()
                if remaining <= 0:
                    return
            else:
                remaining = 1.0
            waiter = asyncio.ensure_future(self._wakeup.wait())
            try:
                await asyncio.wait(
                    [waiter, stop_task], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()

    async def _flush(self) -> None:
        assert self.source is not None
        batch = self.source.take_batch()
        if not batch.messages:
            return
        taken = time.monotonic()
        seen, batch.last_seen = batch.last_seen, {}
        result = await self._write_with_retry(batch)
        if result is None:
            return  # stopping with the database down: nothing acknowledged, broker keeps it
        self.source.acknowledge(batch)
        self._fold_last_seen(seen)
        if logger.isEnabledFor(logging.DEBUG):
            done = time.monotonic()
            logger.debug(
                "batch of %d messages: filled %.0f ms, written %.0f ms",
                len(batch.messages),
                (taken - batch.started) * 1000,
                (done - taken) * 1000,
            )
        self._count(batch, result)

    # last_seen ---------------------------------------------------------------------------------
    def _fold_last_seen(self, seen: dict[str, datetime]) -> None:
        """Keep the newest ``ts`` per device of a committed batch, for the last-seen task.

        ``last_seen`` is device state, not data: it is written at most once per
        ``ingest_last_seen_flush_s`` on a connection of its own, so an upsert of thousands
        of ``device_status`` rows never sits in a batch's transaction (or its latency).
        """
        keep_newest(self._seen, seen)
        if self._seen:
            self._seen_ready.set()

    async def _write_last_seen_forever(self) -> None:
        while True:
            await self._seen_ready.wait()
            self._seen_ready.clear()
            self._seen_write = asyncio.ensure_future(self._write_last_seen())
            await asyncio.shield(self._seen_write)  # stopping waits for it instead
            await asyncio.sleep(self.settings.ingest_last_seen_flush_s)

    async def _write_last_seen(self) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        try:
            conn = await self._state_writer.connect()
            await write_last_seen(conn, seen)
        except (DatabaseUnavailableError, *RETRYABLE) as exc:
            if not isinstance(exc, CONFLICTS):
                self._state_writer.discard_connection()
            logger.warning("last_seen of %d devices not written (%s); will retry", len(seen), exc)
            self._fold_last_seen(seen)
        except asyncpg.PostgresError as exc:  # not worth retrying: the next batches bring more
            logger.error("last_seen of %d devices not written: %s", len(seen), exc)

    async def _write_with_retry(self, batch: Batch) -> WriteResult | None:
        async def write() -> WriteResult:
            return await write_batch(
                self.writer,
                batch,
                self.decoder,
                self.registry,
                self.settings.ingest_unknown_devices,
            )

        def failed(exc: Exception, attempt: int) -> None:
            self.metrics.db_ok = False
            self.metrics.db_retries += 1
            if attempt == 1:
                logger.warning(
                    "database unavailable (%s); holding %d messages, retrying",
                    exc,
                    len(batch.messages),
                )

        def recovered(attempts: int) -> None:
            self.metrics.db_ok = True
            logger.info("database available again after %d attempt(s)", attempts)

        return await retry_until_written(
            write, stopping=lambda: self._stopping, on_failure=failed, on_recovery=recovered
        )

    def _count(self, batch: Batch, result: WriteResult) -> None:
        m = self.metrics
        m.received += len(batch.messages)
        m.batches += 1
        m.batch_size.observe(len(batch.messages))
        m.commit_seconds.observe(result.commit_s)
        for table, n in result.inserted.items():
            m.stored[table] += n
            m.duplicates[table] += result.staged.get(table, 0) - n
        for refusal in batch.refusals:
            m.dead_letters[refusal.reason] += 1
        m.dead_letter_duplicates += result.dead_letter_duplicates
        for (kind, field), n in batch.unknown_fields.items():
            count_label(m.unknown_fields, f"{kind}:{field}", n)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop``: the collector commits, acknowledges and exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_collector(settings: IngestSettings) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await Collector(settings).run(stop)
