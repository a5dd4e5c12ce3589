"""Pre-generated benchmark input: realistic mixed telemetry per contract v1.

Everything is built before the clock starts, so the publisher never waits for a
payload. The mix follows a city deployment: mostly poles, then signals, then energy
nodes, each device reporting at its own interval with a rising ``seq``. About 1 % of
the messages are exact copies of a recent message (a device retrying after a lost
PUBACK), which the collector must store once.

Every ``probe_every``-th message comes from one dedicated probe pole whose ``ts``
rises by a millisecond per message index: the latency measurement polls the table
for these rows (see :mod:`bench.latency`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from schemas.payloads import EnergyTelemetry, PoleTelemetry, SignalMode, SignalTelemetry
from schemas.timestamps import format_rfc3339, to_epoch_ms
from schemas.topics import Channel, Kind, build_topic

CITY = "benchville"
PROBE_DEVICE = "bench-probe-pole"
KIND_SHARES = ((Kind.POLE, 0.60), (Kind.SIGNAL, 0.25), (Kind.ENERGY, 0.15))
INTERVAL_S = {Kind.POLE: 10.0, Kind.SIGNAL: 5.0, Kind.ENERGY: 15.0}
_SIGNAL_MODES = (
    SignalMode.COORDINATED,
    SignalMode.ACTUATED,
    SignalMode.FIXED_TIME,
    SignalMode.ADAPTIVE,
    SignalMode.FLASH,
)


@dataclass(frozen=True, slots=True)
class MessageSet:
    """The messages in publish order, and what storing them must produce."""

    messages: list[tuple[str, bytes]]
    devices: list[tuple[str, Kind]]
    duplicates: int
    probe_every: int
    probe_base: datetime
    first_ts: datetime
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def unique(self) -> int:
        """Rows the telemetry tables must hold after all messages are stored."""
        return len(self.messages) - self.duplicates

    def unique_in(self, count: int) -> int:
        """Rows produced by the first ``count`` messages."""
        seen = set()
        for message in self.messages[:count]:
            seen.add(message)
        return len(seen)

    def days(self) -> list[date]:
        """UTC days the timestamps fall on (partitions to create up front)."""
        first = min(self.first_ts, self.probe_base).date()
        last = datetime.now(UTC).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def mean_bytes(self) -> float:
        total = sum(len(t) + len(p) for t, p in self.messages)
        return total / max(1, len(self.messages))


class _Device:
    """One simulated device: kind, topic, clock and a little state for plausible values."""

    def __init__(self, kind: Kind, device_id: str, start: datetime, rng: random.Random) -> None:
        self.kind = kind
        self.device_id = device_id
        self.topic = build_topic(CITY, kind, device_id, Channel.TELEMETRY)
        self.ts = start + timedelta(seconds=rng.uniform(0, INTERVAL_S[kind]))
        self.seq = rng.randrange(1000)
        self.energy_kwh = rng.uniform(50, 5000)
        self.rated_w = rng.choice((60.0, 90.0, 120.0, 150.0, 200.0))
        self.peak_kw = rng.uniform(20, 400)
        self.epoch_ms = rng.random() < 0.2  # some firmware sends epoch milliseconds

    def next_payload(self, rng: random.Random) -> bytes:
        body = _BODIES[self.kind](self, rng)
        body["ts"] = to_epoch_ms(self.ts) if self.epoch_ms else format_rfc3339(self.ts)
        body["seq"] = self.seq
        self.seq += 1
        self.ts += timedelta(seconds=INTERVAL_S[self.kind])
        return orjson.dumps(body)


def _pole_body(device: _Device, rng: random.Random) -> dict[str, Any]:
    dim = rng.choice((0.0, 50.0, 100.0))
    power = device.rated_w * dim / 100 * rng.uniform(0.97, 1.03)
    device.energy_kwh += power * INTERVAL_S[Kind.POLE] / 3.6e6
    pm25 = rng.uniform(5, 80)
    body: dict[str, Any] = {
        "lamp_on": dim > 0,
        "dim_pct": dim,
        "lamp_power_w": round(power, 1),
        "energy_kwh": round(device.energy_kwh, 4),
        "pm25_ugm3": round(pm25, 1),
        "pm10_ugm3": round(pm25 * rng.uniform(1.5, 1.8), 1),
        "noise_dba": round(rng.uniform(38, 80), 1),
        "temp_c": round(rng.uniform(-5, 35), 1),
        "humidity_pct": round(rng.uniform(20, 95), 1),
        "tilt_deg": round(rng.uniform(0, 1.5), 2),
        "door_open": rng.random() < 0.001,
    }
    if rng.random() < 0.4:
        body["cell_online"] = True
        body["cell_ues"] = rng.randrange(300)
    if rng.random() < 0.3:
        body["camera_online"] = True
    return body


def _signal_body(device: _Device, rng: random.Random) -> dict[str, Any]:
    mode = rng.choice(_SIGNAL_MODES)
    body: dict[str, Any] = {
        "mode": mode.value,
        "volume": rng.randrange(60),
        "occupancy_pct": round(rng.uniform(2, 90), 1),
        "queue_m": round(rng.uniform(0, 200), 1),
    }
    if mode is not SignalMode.FLASH:
        cycle = rng.choice((90.0, 120.0, 150.0))
        body.update(
            plan_no=rng.randrange(1, 9),
            cycle_s=cycle,
            stage=rng.randrange(4),
            offset_s=round(rng.uniform(0, cycle), 1),
        )
    return body


def _energy_body(device: _Device, rng: random.Random) -> dict[str, Any]:
    pv = round(device.peak_kw * rng.uniform(0, 0.6), 3)
    load = round(device.peak_kw * rng.uniform(0.3, 1.0), 3)
    storage = round(rng.uniform(-20, 20), 3)
    return {
        "pv_kw": pv,
        "load_kw": load,
        "grid_kw": round(load - pv - storage, 3),
        "storage_kw": storage,
        "soc_pct": round(rng.uniform(10, 95), 2),
    }


_BODIES = {Kind.POLE: _pole_body, Kind.SIGNAL: _signal_body, Kind.ENERGY: _energy_body}
_MODELS = {Kind.POLE: PoleTelemetry, Kind.SIGNAL: SignalTelemetry, Kind.ENERGY: EnergyTelemetry}


def _make_devices(count: int, start: datetime, rng: random.Random) -> list[_Device]:
    devices = []
    for kind, share in KIND_SHARES:
        for i in range(max(1, round(count * share))):
            devices.append(_Device(kind, f"bench-{kind}-{i:05d}", start, rng))
    return devices


def generate_messages(
    count: int,
    *,
    devices: int = 5000,
    duplicate_share: float = 0.01,
    probe_every: int = 50,
    seed: int = 20240601,
) -> MessageSet:
    """``count`` messages in publish order; deterministic for a given ``seed``."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    per_device = max(1, count // max(1, devices))
    start = now - timedelta(seconds=per_device * max(INTERVAL_S.values()) + 3600)
    fleet = _make_devices(min(devices, max(3, count)), start, rng)
    probe_base = now - timedelta(seconds=count / 1000 + 1800)
    messages: list[tuple[str, bytes]] = []
    kinds: Counter[str] = Counter()
    duplicates = 0
    probe_topic = build_topic(CITY, Kind.POLE, PROBE_DEVICE, Channel.TELEMETRY)
    for index in range(count):
        if index % probe_every == 0:
            messages.append((probe_topic, _probe_payload(probe_base, index)))
            kinds[Kind.POLE] += 1
            continue
        if len(messages) > 10 and rng.random() < duplicate_share:
            original = messages[-rng.randrange(1, min(len(messages), 1000))]
            if original[0] != probe_topic:
                messages.append(original)
                duplicates += 1
                kinds[original[0].split("/")[3]] += 1
                continue
        device = rng.choice(fleet)
        messages.append((device.topic, device.next_payload(rng)))
        kinds[device.kind] += 1
    registry = [(d.device_id, d.kind) for d in fleet] + [(PROBE_DEVICE, Kind.POLE)]
    return MessageSet(messages, registry, duplicates, probe_every, probe_base, start, kinds)


def _probe_payload(base: datetime, index: int) -> bytes:
    return orjson.dumps(
        {
            "ts": format_rfc3339(probe_ts(base, index)),
            "seq": index,
            "lamp_on": True,
            "dim_pct": 100.0,
            "lamp_power_w": 120.0,
            "noise_dba": 55.0,
        }
    )


def probe_ts(base: datetime, index: int) -> datetime:
    """The ``ts`` of the probe message at ``index``: one millisecond per index."""
    return base + timedelta(milliseconds=index)


def check_contract(message_set: MessageSet, sample: int = 200) -> None:
    """Validate a sample with the contract's models; a bench on refused input is worthless."""
    step = max(1, len(message_set.messages) // sample)
    for topic, payload in message_set.messages[::step]:
        kind = Kind(topic.split("/")[3])
        _MODELS[kind].model_validate_json(payload)
