"""``citytel bench ingest``: the collector against its baselines, on one machine, in one run.

For each MQTT protocol: the counting ceiling, the naive bridge, the bare pipeline,
then the collector with one and with two processes (a shared subscription). Each
subject gets a fresh private Mosquitto and empty tables; all of them receive the
same pre-generated messages from the same raw publisher. Throughput is messages
divided by the time from the first publish to the last message committed (counted,
for the ceiling); latency is measured open loop at fractions of the collector's own
measured maximum (:mod:`bench.latency`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import platform
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from bench.database import STALL_S, count_rows, prepared_database, reset, wait_for_rows
from bench.errors import BenchError
from bench.latency import ProbeWatch, percentile
from bench.payloads import CITY, PROBE_DEVICE, MessageSet, check_contract, generate_messages
from bench.processes import (
    BaselineProcess,
    CollectorProcess,
    Subject,
    TimedReading,
    cpu_seconds,
    machine_cpu_pct,
    machine_sample,
    named_cpu_seconds,
    peak_rss_mb,
)
from bench.profile import Profiler
from bench.report import COMPONENTS
from bench.sender import RawPublisher, encode_publishes
from core.broker import MosquittoProcess, free_port, start_mosquitto
from core.urls import DatabaseUrl
from schemas.timestamps import format_rfc3339
from schemas.topics import Channel, Kind, build_topic

ProgressCallback = Callable[[str, int, int], None]
_POLL_S = 0.05
_LOCAL_HOSTS = frozenset({None, "", "localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class IngestBenchOptions:
    """What to run; ``quick`` shortens the naive run and the latency points."""

    admin_url: DatabaseUrl
    messages: int = 1_000_000
    protocols: tuple[str, ...] = ("5", "3.1.1")
    skip_naive: bool = False
    quick: bool = False
    naive_messages: int = 20_000
    naive_max_s: float = 60.0
    latency_s: float = 10.0
    latency_fractions: tuple[float, ...] = (0.25, 0.5, 0.9)
    collector_counts: tuple[int, ...] = (1, 2)
    profile_dir: Path | None = None
    repeat: int = 1

    def effective(self) -> IngestBenchOptions:
        if not self.quick:
            return self
        return IngestBenchOptions(
            admin_url=self.admin_url,
            messages=self.messages,
            protocols=self.protocols,
            skip_naive=self.skip_naive,
            quick=True,
            naive_messages=min(self.naive_messages, 2000),
            naive_max_s=min(self.naive_max_s, 10.0),
            latency_s=min(self.latency_s, 1.0),
            latency_fractions=self.latency_fractions,
            collector_counts=self.collector_counts,
            profile_dir=self.profile_dir,
            repeat=self.repeat,
        )


@dataclass
class IngestBench:
    options: IngestBenchOptions
    on_progress: ProgressCallback = lambda phase, done, total: None
    on_note: Callable[[str], None] = lambda text: None
    _workdir: Path = field(init=False)
    _conn: asyncpg.Connection = field(init=False)
    _db_url: DatabaseUrl = field(init=False)
    _set: MessageSet = field(init=False)
    _packets: list[bytes] = field(init=False)

    async def run(self) -> dict[str, Any]:
        options = self.options = self.options.effective()
        payloads = self._generate()
        results: dict[str, Any] = {"meta": _meta(options), "payloads": payloads, "protocols": {}}
        with tempfile.TemporaryDirectory(prefix="citytel-bench-") as workdir:
            self._workdir = Path(workdir)
            async with prepared_database(options.admin_url, self._set) as (url, conn):
                self._db_url, self._conn = url, conn
                for protocol in options.protocols:
                    results["protocols"][protocol] = await self._run_protocol(protocol)
        return results

    def _generate(self) -> dict[str, Any]:
        self.on_note(f"generating {self.options.messages:,} messages")
        started = time.perf_counter()
        self._set = generate_messages(self.options.messages)
        check_contract(self._set)
        self._packets = encode_publishes(self._set.messages)
        return {
            "messages": len(self._set.messages),
            "unique": self._set.unique,
            "duplicates": self._set.duplicates,
            "devices": len(self._set.devices),
            "by_kind": {str(k): n for k, n in sorted(self._set.kinds.items())},
            "mean_bytes": round(self._set.mean_bytes(), 1),
            "probe_every": self._set.probe_every,
            "generate_s": round(time.perf_counter() - started, 2),
        }

    async def _run_protocol(self, protocol: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        total = self.options.messages
        out["ceiling"] = await self._baseline("ceiling", protocol, total)
        if self.options.skip_naive:
            out["naive"] = None
        else:
            naive_count = min(self.options.naive_messages, total)
            out["naive"] = await self._baseline(
                "naive", protocol, naive_count, max_s=self.options.naive_max_s
            )
        out["bare"] = await self._baseline("bare", protocol, total)
        out["bare_paho"] = await self._baseline("bare-paho", protocol, total)
        for count in self.options.collector_counts:
            out[f"collector_{count}"] = await self._collectors(protocol, count)
        return out

    # subjects -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _broker(self, label: str) -> AsyncIterator[MosquittoProcess]:
        broker = await asyncio.to_thread(start_mosquitto, self._workdir / f"mosquitto-{label}")
        try:
            yield broker
        finally:
            await asyncio.to_thread(broker.stop)

    async def _baseline(
        self, mode: str, protocol: str, count: int, *, max_s: float | None = None
    ) -> dict[str, Any]:
        label = f"{mode} (MQTT {protocol})"
        async with self._broker(f"{mode}-{protocol}") as broker:
            subject = BaselineProcess(
                mode,
                mqtt_url=broker.url,
                client_id=f"bench-{mode}",
                protocol=protocol,
                database_url=None if mode == "ceiling" else str(self._db_url),
                log_path=self._workdir / f"{mode}-{protocol}.log",
            )
            try:
                await asyncio.to_thread(subject.start)
                runs = []
                for attempt in range(self.options.repeat):
                    await reset(self._conn)
                    runs.append(
                        await self._throughput(
                            [subject], broker, count, _attempt(label, attempt), max_s=max_s
                        )
                    )
                result = _median_run(runs)
                result["processes"] = _costs([subject], result.pop("_cpu"))
            finally:
                await asyncio.to_thread(subject.stop)
        return result

    async def _collectors(self, protocol: str, count: int) -> dict[str, Any]:
        label = f"collector x{count} (MQTT {protocol})"
        async with self._broker(f"collectors{count}-{protocol}") as broker:
            subjects = [self._collector(protocol, count, i, broker) for i in range(count)]
            for subject in subjects:
                subject.start()
            try:
                for subject in subjects:
                    await subject.wait_healthy()
                await reset(self._conn)
                await self._warm_up(subjects, broker)
                runs = []
                profile = None
                for attempt in range(self.options.repeat):
                    await reset(self._conn)
                    profiler = self._profiler(protocol, count, subjects[0]) if not runs else None
                    run = await self._throughput(
                        subjects,
                        broker,
                        self.options.messages,
                        _attempt(label, attempt),
                        rows_expected=self._set.unique_in(self.options.messages),
                    )
                    if profiler is not None:
                        profile = await asyncio.to_thread(profiler.stop)
                    run.update(await self._check_rows(self.options.messages))
                    runs.append(run)
                result = _median_run(runs)
                if profile is not None:
                    result["profile"] = profile
                cpu = result.pop("_cpu")
                result["latency"] = [
                    await self._latency_point(subjects, broker, fraction, result["rate"], label)
                    for fraction in self.options.latency_fractions
                ]
                result["processes"] = _costs(subjects, cpu)
            finally:
                for subject in subjects:
                    await asyncio.to_thread(subject.stop)
        return result

    def _collector(
        self, protocol: str, count: int, index: int, broker: MosquittoProcess
    ) -> CollectorProcess:
        env = {
            **os.environ,
            "CITYTEL_DATABASE_URL": str(self._db_url),
            "CITYTEL_MQTT_URL": broker.url,
            "CITYTEL_INGEST_CLIENT_ID": f"bench-collector-{count}-{index}",
            "CITYTEL_INGEST_PROTOCOL": protocol,
            "CITYTEL_LOG_LEVEL": "WARNING",
            # The probe device sends every 50th message, thousands a second: no limit here.
            "CITYTEL_INGEST_RATE_LIMIT_PER_S": "0",
        }
        port = free_port()
        env["CITYTEL_INGEST_METRICS_PORT"] = str(port)
        log_path = self._workdir / f"collector-{protocol}-{count}-{index}.log"
        return CollectorProcess(index=index, env=env, metrics_port=port, log_path=log_path)

    def _profiler(self, protocol: str, count: int, subject: Subject) -> Profiler | None:
        if self.options.profile_dir is None or count != 1:
            return None
        path = self.options.profile_dir / f"collector-mqtt{protocol}.txt"
        self.on_note(f"profiling collector pid {subject.pid} with py-spy into {path.name}")
        return Profiler.start(subject.pid, path)

    async def _warm_up(self, subjects: list[CollectorProcess], broker: MosquittoProcess) -> None:
        """Publish status messages until every collector stored one: all are subscribed.

        Returns once every warm-up message is stored, so none lands in a measured run.
        """
        topic = build_topic(CITY, Kind.POLE, PROBE_DEVICE, Channel.STATUS)
        publisher = RawPublisher("127.0.0.1", broker.port, "bench-warm-up")
        await asyncio.to_thread(publisher.connect)
        try:
            deadline = time.monotonic() + 60
            sent = 0
            while True:
                counts = [(await s.progress()).count for s in subjects]
                if all(counts) and sum(counts) == sent:
                    return
                if time.monotonic() > deadline:
                    raise BenchError("collectors did not store the warm-up messages within 60s")
                if not all(counts):
                    body = orjson.dumps({"ts": format_rfc3339(datetime.now(UTC)), "online": True})
                    await asyncio.to_thread(publisher.publish, encode_publishes([(topic, body)]))
                    sent += 1
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(publisher.close)

    # measurements -------------------------------------------------------------------------------
    async def _throughput(
        self,
        subjects: list[Subject],
        broker: MosquittoProcess,
        count: int,
        label: str,
        *,
        max_s: float | None = None,
        rows_expected: int | None = None,
    ) -> dict[str, Any]:
        """First publish to last message finished; with ``rows_expected``, to the last row
        visible in the tables (a collector's counter also counts redelivered messages)."""
        base = [(await s.progress()).count for s in subjects]
        # CPU readings, nested: the machine's first and last, each process's inside its
        # window; each process's % is over the interval between its own two readings.
        readers = self._cpu_readers(subjects, broker)
        machine_before = machine_sample()
        cpu_before = {name: TimedReading.take(read) for name, read in readers.items()}
        publisher = RawPublisher("127.0.0.1", broker.port, "bench-publisher")
        await asyncio.to_thread(publisher.connect)
        try:
            sending = asyncio.ensure_future(
                asyncio.to_thread(publisher.publish, self._packets, stop=count)
            )
            done, at, capped = await self._wait_for(
                subjects, base, count, label, sending=sending, max_s=max_s
            )
            if rows_expected is not None:
                at, _ = await wait_for_rows(self._conn, rows_expected, label)
            cpu_after = {name: TimedReading.take(read) for name, read in readers.items()}
            machine_after = machine_sample()
            stats = await sending
        finally:
            await asyncio.to_thread(publisher.close)
        elapsed = at - stats.first_send
        return {
            "messages": count,
            "finished": done,
            "capped_by_time": capped,
            "elapsed_s": round(elapsed, 3),
            "rate": round(done / elapsed, 1) if elapsed > 0 else 0,
            "send_rate": round(stats.send_rate, 1),
            "redelivered": max(0, done - count),
            # Every process on the machine: subject, broker, database, publisher.
            "machine_cpu_pct": round(machine_cpu_pct(machine_before, machine_after)),
            # The rest of that: broker, database server (when local), this process.
            "components_cpu_pct": {
                name: round(cpu_before[name].pct_until(cpu_after[name]))
                for name in readers
                if name in COMPONENTS
            },
            "_cpu": [cpu_before[s.name].pct_until(cpu_after[s.name]) for s in subjects],
        }

    def _cpu_readers(
        self, subjects: list[Subject], broker: MosquittoProcess
    ) -> dict[str, Callable[[], float]]:
        """CPU-time readers: the subjects, then what runs beside them."""
        readers: dict[str, Callable[[], float]] = {
            s.name: functools.partial(cpu_seconds, s.pid) for s in subjects
        }
        readers["broker"] = functools.partial(cpu_seconds, broker.pid)
        if urlsplit(str(self._db_url)).hostname in _LOCAL_HOSTS:
            readers["database"] = functools.partial(named_cpu_seconds, "postgres")
        readers["publisher"] = functools.partial(cpu_seconds, os.getpid())
        return readers

    async def _wait_for(
        self,
        subjects: list[Subject],
        base: list[int],
        count: int,
        label: str,
        *,
        sending: asyncio.Future[Any],
        max_s: float | None = None,
    ) -> tuple[int, float, bool]:
        """Until ``count`` messages are finished: (finished, when, stopped by ``max_s``)."""
        started = last_change = time.monotonic()
        last_total = -1
        while True:
            for subject in subjects:
                subject.check_alive()
            if sending.done() and sending.exception() is not None:
                raise BenchError(f"publisher failed: {sending.exception()}")
            progress = [await s.progress() for s in subjects]
            total = sum(p.count - b for p, b in zip(progress, base, strict=True))
            now = time.monotonic()
            self.on_progress(label, min(total, count), count)
            if total >= count:
                return total, max(p.at for p in progress), False
            if max_s is not None and now - started > max_s:
                return total, now, True
            if total != last_total:
                last_total, last_change = total, now
            elif now - last_change > STALL_S:
                logs = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in subjects)
                raise BenchError(f"{label}: stuck at {total} of {count} messages\n{logs}")
            await asyncio.sleep(_POLL_S)

    async def _check_rows(self, count: int) -> dict[str, Any]:
        rows = await count_rows(self._conn)
        stored = sum(n for table, n in rows.items() if table != "dead_letters")
        expected = self._set.unique_in(count)
        return {
            "rows": stored,
            "rows_expected": expected,
            "dead_letters": rows["dead_letters"],
            "rows_ok": stored == expected and rows["dead_letters"] == 0,
        }

    async def _latency_point(
        self,
        subjects: list[Subject],
        broker: MosquittoProcess,
        fraction: float,
        max_rate: float,
        label: str,
    ) -> dict[str, Any]:
        rate = max(1.0, fraction * max_rate)
        count = min(
            self.options.messages,
            max(self._set.probe_every * 20, int(rate * self.options.latency_s)),
        )
        await reset(self._conn)
        base = [(await s.progress()).count for s in subjects]
        watch = ProbeWatch.for_messages(self._set, count)
        publisher = RawPublisher("127.0.0.1", broker.port, "bench-publisher")
        await asyncio.to_thread(publisher.connect)
        try:
            watching = asyncio.ensure_future(
                watch.run(self._conn, timeout_s=count / rate + STALL_S)
            )
            sending = asyncio.ensure_future(
                asyncio.to_thread(publisher.publish, self._packets, stop=count, rate=rate)
            )
            await self._wait_for(
                subjects, base, count, f"{label} @ {fraction:.0%}", sending=sending
            )
            stats = await sending
            await watching
        finally:
            await asyncio.to_thread(publisher.close)
        latencies = watch.latencies_ms(stats)
        sent_s = stats.last_send - stats.first_send
        return {
            "fraction": fraction,
            "target_rate": round(rate, 1),
            "messages": count,
            "sent_rate": round(count / sent_s, 1) if sent_s > 0 else None,
            "samples": len(latencies),
            "probes": len(watch.probes),
            "p50_ms": _round(percentile(latencies, 0.50)),
            "p99_ms": _round(percentile(latencies, 0.99)),
            "max_ms": _round(latencies[-1] if latencies else None),
        }


def _attempt(label: str, attempt: int) -> str:
    return label if attempt == 0 else f"{label} #{attempt + 1}"


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower one of an even count), and every run's rate.

    Every run must have stored every row for the chosen one to say so.
    """
    chosen = sorted(runs, key=lambda run: run["rate"])[(len(runs) - 1) // 2]
    chosen["runs"] = [run["rate"] for run in runs]
    if "rows_ok" in chosen:
        chosen["rows_ok"] = all(run["rows_ok"] for run in runs)
    return chosen


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _costs(subjects: list[Subject], cpu_pct: list[float]) -> list[dict[str, Any]]:
    """CPU and peak RSS per process, and the end of its log (warnings and errors only)."""
    return [
        {
            "name": s.name,
            "cpu_pct": round(cpu, 1),
            "peak_rss_mb": round(peak_rss_mb(s.pid), 1),
            "log_tail": s.log_tail(10),
        }
        for s, cpu in zip(subjects, cpu_pct, strict=True)
    ]


def _meta(options: IngestBenchOptions) -> dict[str, Any]:
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "messages": options.messages,
        "protocols": list(options.protocols),
        "quick": options.quick,
        "naive_messages": options.naive_messages,
        "latency_s": options.latency_s,
        "repeat": options.repeat,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "method": {
            "throughput": "messages / (first PUBLISH written -> last message committed)",
            "latency": "open loop at a fixed rate; probe rows polled every 5 ms; "
            "first poll that sees a row minus its send time (upper bound)",
            "cpu_pct": "utime+stime from /proc/<pid>/stat between two readings / the time "
            "between them",
            "machine_cpu_pct": "busy share of the /proc/stat ticks counted during the run "
            "x CPUs (at most 100 x CPUs)",
            "peak_rss_mb": "VmHWM from /proc/<pid>/status",
        },
    }
