"""Orchestration: drive a fleet through simulated time and publish what it reports.

Python API (the CLI, the demo and tests use it)::

    from simulators import SimulationOptions, run_simulation
    manifest = run_simulation(
        SimulationOptions(city="jinan", poles=200, signals=40, energy=5, seed=7,
                          duration_s=600, speed=None),          # backfill the last 10 min
        "mqtt://127.0.0.1:1883",
        stop_event=None,      # a threading.Event; set it to stop a running simulation
        progress=False,       # a rich progress bar on stderr
    )
    manifest.totals["valid"]  # see simulators.manifest for the format

``run_simulation`` blocks; run it in a thread (``threading.Thread`` or
``asyncio.to_thread``) and set ``stop_event`` to end it: buffered (late)
messages are flushed, every PUBACK awaited, and the manifest returned.

Each device reports once per interval at its own phase; ``ts`` comes from the
simulated clock, so the same seed gives the same messages in backfill and
accelerated runs (in real time everything but the start instant).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core.urls import MqttUrl
from schemas.timestamps import format_rfc3339
from schemas.topics import Channel, Kind
from simulators.device import DeviceSimulator
from simulators.energy import EnergySimulator
from simulators.faults import (
    MALFORMED_KINDS,
    MAX_FUTURE_MS,
    bad_topic,
    episode_ms,
    malformed_payload,
    skew_ms,
)
from simulators.fleet import Fleet
from simulators.manifest import Manifest
from simulators.options import SimulationOptions, TimeWindow, resolve_window
from simulators.pole import PoleSimulator
from simulators.profiles import CityClock
from simulators.publisher import Publisher
from simulators.signal import SignalSimulator

logger = logging.getLogger(__name__)

TELEMETRY, EVENT, STATUS = Channel.TELEMETRY, Channel.EVENT, Channel.STATUS
_MIN_WAIT_S = 0.02
_CHECK_EVERY = 1024


class Sink(Protocol):
    """Where messages go: :class:`~simulators.publisher.Publisher` or ``MemorySink``."""

    def connect(self) -> None: ...
    def publish(self, shard: int, topic: bytes, payload: bytes, retain: bool = False) -> None: ...
    def flush(self) -> None: ...
    def sync(self, shard: int) -> None: ...
    def wait_acked(self, *, timeout_s: float | None = None) -> None: ...
    def close(self) -> None: ...
    def go_offline(self, device_id: str, will_topic: bytes, will_payload: bytes) -> None: ...
    def come_back(self, device_id: str, topic: bytes, payload: bytes) -> None: ...


def build_simulators(fleet: Fleet, options: SimulationOptions) -> list[DeviceSimulator]:
    """One simulator per registry row, each with its own seeded random streams."""
    clock = CityClock(fleet.city)
    sims: list[DeviceSimulator] = []
    for device in fleet.devices:
        if device.kind is Kind.POLE:
            sim: DeviceSimulator = PoleSimulator(
                device, clock, fleet.seed, interval_s=options.interval_s
            )
        elif device.kind is Kind.SIGNAL:
            sim = SignalSimulator(
                device,
                clock,
                fleet.seed,
                interval_s=options.interval_s,
                adaptive_share=options.adaptive_share,
            )
        else:
            sim = EnergySimulator(device, clock, fleet.seed, interval_s=options.interval_s)
        sims.append(sim)
    return sims


class Simulation:
    """One run: the devices, the time window, the sink, and the fault thresholds."""

    def __init__(
        self, options: SimulationOptions, window: TimeWindow, sink: Sink, fleet: Fleet | None = None
    ) -> None:
        self.options = options
        self.window = window
        self.sink = sink
        self.fleet = fleet or Fleet.generate(
            options.city,
            options.poles,
            options.signals,
            options.energy,
            options.seed,
            interval_s=options.interval_s,
        )
        self.sims = build_simulators(self.fleet, options)
        for index, sim in enumerate(self.sims):
            sim.shard = index % max(1, options.connections)
        self.interval_ms = int(options.interval_s * 1000)
        faults = options.faults
        self.t_drop = faults.drop
        self.t_dup = self.t_drop + faults.duplicate
        self.t_malformed = self.t_dup + faults.malformed
        self.t_skew = self.t_malformed + faults.skew
        self.any_faults = self.t_skew > 0.0
        self.late_p = (
            faults.episode_start_p(faults.late, options.interval_s) if faults.late else 0.0
        )
        self.offline_p = (
            faults.episode_start_p(faults.offline, options.interval_s) if faults.offline else 0.0
        )
        self.wall_ms = int(time.time() * 1000)
        self.sim_now_ms = window.start_ms
        self._ts_sec = -1
        self._ts_prefix = ""
        self.elapsed_s = 0.0
        self.stopped_early = False

    # -- encoding ---------------------------------------------------------------------

    def ts_value(self, sim: DeviceSimulator, ms: int) -> str | int:
        """RFC 3339 UTC with ms (as ``format_rfc3339``), or epoch ms for some devices."""
        if sim.epoch_ms_ts:
            return ms
        sec, milli = divmod(ms, 1000)
        if sec != self._ts_sec:
            self._ts_sec = sec
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._ts_prefix}.{milli:03d}Z"

    def _emit(
        self,
        sim: DeviceSimulator,
        channel: Channel,
        topic: bytes,
        payload: bytes,
        retain: bool = False,
    ) -> None:
        if sim.late_until_ms:
            sim.late_buffer.append((topic, payload, channel))
            sim.counts[channel].late += 1
        else:
            self.sink.publish(sim.shard, topic, payload, retain)

    def _count_stored(self, counts: Any, ts_ms: int) -> None:
        if ts_ms > self.wall_ms + MAX_FUTURE_MS:
            counts.dead_letter("future_ts")
        else:
            counts.valid += 1

    # -- one report -------------------------------------------------------------------

    def report(self, sim: DeviceSimulator, ts_ms: int) -> None:
        """The device's report at ``ts_ms``: telemetry (with any fault), then its events."""
        if sim.offline_until_ms:
            if ts_ms < sim.offline_until_ms:
                sim.telemetry(ts_ms)  # the world goes on while the device is away
                sim.counts[TELEMETRY].offline_skipped += 1
                sim.counts[EVENT].offline_skipped += len(sim.events)
                sim.events.clear()
                return
            self._come_back(sim, ts_ms - 1)
        if sim.late_until_ms and ts_ms >= sim.late_until_ms:
            self._flush_late(sim)
        fields = sim.telemetry(ts_ms)
        sim.seq += 1
        counts = sim.counts[TELEMETRY]
        frng = sim.fault_rng
        r = frng.random() if self.any_faults else 1.0
        if r < self.t_drop:
            counts.dropped += 1
        else:
            fields["seq"] = sim.seq
            topic = sim.topics[TELEMETRY]
            if r < self.t_malformed and r >= self.t_dup:
                fields["ts"] = self.ts_value(sim, ts_ms)
                fields["device_id"] = sim.device_id
                variant = frng.choice(MALFORMED_KINDS)
                payload, reason = malformed_payload(
                    variant, fields, sim.bad_types(), sim.out_of_range()
                )
                if reason == "bad_topic":
                    topic = bad_topic(topic, sim.seq)
                counts.published += 1
                counts.dead_letter(reason)
                self._emit(sim, TELEMETRY, topic, payload)
            else:
                if r < self.t_skew and r >= self.t_malformed:
                    ts_ms += skew_ms(frng, self.interval_ms)
                    counts.skewed += 1
                    fields["device_id"] = sim.device_id  # may be refused: keep it unique
                fields["ts"] = self.ts_value(sim, ts_ms)
                payload = orjson.dumps(fields)
                counts.published += 1
                self._count_stored(counts, ts_ms)
                self._emit(sim, TELEMETRY, topic, payload)
                if r < self.t_dup and r >= self.t_drop:
                    counts.published += 1
                    counts.duplicates += 1
                    self._emit(sim, TELEMETRY, topic, payload)
        if sim.events:
            self._publish_events(sim, ts_ms)
        if self.late_p and not sim.late_until_ms and frng.random() < self.late_p:
            sim.late_until_ms = ts_ms + episode_ms(frng)
        elif self.offline_p and not sim.late_until_ms and frng.random() < self.offline_p:
            self._go_offline(sim, ts_ms + 100, ts_ms + episode_ms(frng))

    def _publish_events(self, sim: DeviceSimulator, ts_ms: int) -> None:
        counts = sim.counts[EVENT]
        topic = sim.topics[EVENT]
        for offset, (type_, code, severity, message) in enumerate(sim.events, start=1):
            sim.seq += 1
            event: dict[str, Any] = {
                "ts": self.ts_value(sim, ts_ms + offset),
                "seq": sim.seq,
                "type": type_,
                "code": code,
                "severity": severity,
            }
            if message:
                event["message"] = message
            counts.published += 1
            self._count_stored(counts, ts_ms + offset)
            self._emit(sim, EVENT, topic, orjson.dumps(event))
        sim.events.clear()

    def _status(self, sim: DeviceSimulator, ts_ms: int, online: bool) -> bytes:
        status: dict[str, Any] = {"ts": self.ts_value(sim, ts_ms), "online": online}
        if online:
            status["fw"] = sim.firmware
        return orjson.dumps(status)

    def publish_online(self, sim: DeviceSimulator, ts_ms: int) -> None:
        counts = sim.counts[STATUS]
        counts.published += 1
        self._count_stored(counts, ts_ms)
        self.sink.publish(sim.shard, sim.topics[STATUS], self._status(sim, ts_ms, True), True)

    def _go_offline(self, sim: DeviceSimulator, ts_ms: int, until_ms: int) -> None:
        self.sink.sync(sim.shard)  # earlier status first
        self.sink.go_offline(sim.device_id, sim.topics[STATUS], self._status(sim, ts_ms, False))
        counts = sim.counts[STATUS]
        counts.published += 1
        counts.wills += 1
        self._count_stored(counts, ts_ms)
        sim.offline_until_ms = until_ms

    def _come_back(self, sim: DeviceSimulator, ts_ms: int) -> None:
        self.sink.come_back(sim.device_id, sim.topics[STATUS], self._status(sim, ts_ms, True))
        counts = sim.counts[STATUS]
        counts.published += 1
        self._count_stored(counts, ts_ms)
        sim.offline_until_ms = 0

    def _flush_late(self, sim: DeviceSimulator) -> None:
        sim.late_until_ms = 0
        for topic, payload, _channel in sim.late_buffer:
            self.sink.publish(sim.shard, topic, payload, False)
        sim.late_buffer.clear()

    # -- the clock --------------------------------------------------------------------

    def run(
        self,
        stop_event: threading.Event | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Publish every report of the window (or until ``stop_event`` is set)."""
        window = self.window
        stop = stop_event or threading.Event()
        started = time.monotonic()
        self.sink.connect()
        for sim in self.sims:
            self.publish_online(sim, window.start_ms)
        order = sorted(self.sims, key=lambda s: (s.phase_ms, s.device_id))
        speed = window.speed
        if window.mode == "realtime":  # anchor the simulated clock to the wall clock
            anchor = started - (time.time() * 1000 - window.start_ms) / 1000.0
        else:
            anchor = started
        end_ms = window.end_ms if window.end_ms is not None else 1 << 62
        ticks = 0
        round_ms = window.start_ms
        try:
            while round_ms < end_ms and not stop.is_set():
                for sim in order:
                    ts_ms = round_ms + sim.phase_ms
                    if ts_ms >= end_ms:
                        break
                    if speed is not None:
                        now_sim = window.start_ms + (time.monotonic() - anchor) * speed * 1000.0
                        if ts_ms > now_sim:
                            self.sink.flush()
                            self.sim_now_ms = ts_ms
                            if on_progress:
                                on_progress(ts_ms)
                            if stop.wait(max((ts_ms - now_sim) / speed / 1000.0, _MIN_WAIT_S)):
                                break
                            self.wall_ms = int(time.time() * 1000)
                    self.report(sim, ts_ms)
                    ticks += 1
                    if not ticks % _CHECK_EVERY:
                        self.wall_ms = int(time.time() * 1000)
                        self.sim_now_ms = ts_ms
                        if on_progress:
                            on_progress(ts_ms)
                        if stop.is_set():
                            break
                round_ms += self.interval_ms
        finally:
            self.stopped_early = stop.is_set()
            self.finish(started)

    def finish(self, started: float) -> None:
        """Flush late buffers, wait until the broker has everything, disconnect."""
        for sim in self.sims:
            if sim.late_buffer or sim.late_until_ms:
                self._flush_late(sim)
        try:
            self.sink.wait_acked()
        finally:
            self.sink.close()
            self.elapsed_s = time.monotonic() - started

    def manifest(self, extra_meta: dict[str, Any] | None = None) -> Manifest:
        window = self.window
        meta: dict[str, Any] = {
            "city": self.options.city,
            "seed": self.options.seed,
            "mode": window.mode,
            "speed": window.speed,
            "interval_s": self.options.interval_s,
            "start": format_rfc3339(datetime.fromtimestamp(window.start_ms / 1000, UTC)),
            "end": None
            if window.end_ms is None
            else format_rfc3339(datetime.fromtimestamp(window.end_ms / 1000, UTC)),
            "stopped_early": self.stopped_early,
            "devices": {
                "pole": self.options.poles,
                "signal": self.options.signals,
                "energy": self.options.energy,
            },
            "faults": self.options.faults.as_dict(),
            "adaptive_share": self.options.adaptive_share,
            "elapsed_s": round(self.elapsed_s, 3),
        }
        meta.update(extra_meta or {})
        manifest = Manifest.build(
            meta, ((s.device_id, str(s.device.kind), s.counts) for s in self.sims)
        )
        published = manifest.totals["published"]
        manifest.meta["messages_per_s"] = (
            round(published / self.elapsed_s, 1) if self.elapsed_s else None
        )
        return manifest


def run_simulation(
    options: SimulationOptions,
    mqtt_url: MqttUrl | str,
    *,
    stop_event: threading.Event | None = None,
    progress: bool = False,
    ca_file: Path | None = None,
    fleet: Fleet | None = None,
    sink: Sink | None = None,
    now: datetime | None = None,
) -> Manifest:
    """Run one simulation to its end (or ``stop_event``) and return its manifest.

    ``sink`` replaces the MQTT publisher (e.g. ``MemorySink``); ``now`` pins the
    wall clock used to resolve the window (tests).
    """
    url = mqtt_url if isinstance(mqtt_url, MqttUrl) else MqttUrl(mqtt_url)
    window = resolve_window(options, now or datetime.now(UTC))
    if sink is None:
        client_id = f"{options.client_id}-{options.city}"[:60]
        sink = Publisher(url, client_id, connections=options.connections, ca_file=ca_file)
    simulation = Simulation(options, window, sink, fleet)
    logger.info(
        "simulating %d devices of %s (%s)",
        len(simulation.sims),
        options.city,
        window.mode,
        extra={"mqtt": url.masked()},
    )
    if progress:
        _run_with_progress(simulation, stop_event)
    else:
        simulation.run(stop_event)
    return simulation.manifest({"mqtt_url": url.masked()})


def _run_with_progress(simulation: Simulation, stop_event: threading.Event | None) -> None:
    window = simulation.window
    total = (window.end_ms - window.start_ms) / 1000.0 if window.end_ms is not None else None
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"simulating {window.mode}", total=total, rate="")
        last = [time.monotonic(), 0]

        def update(ts_ms: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.25:
                return
            sent = sum(c.acked for c in getattr(simulation.sink, "connections", ()))
            rate = (sent - last[1]) / (now - last[0])
            last[0], last[1] = now, sent
            bar.update(
                task, completed=(ts_ms - window.start_ms) / 1000.0, rate=f"{rate:,.0f} msg/s"
            )

        simulation.run(stop_event, update)
        bar.update(task, completed=total)
