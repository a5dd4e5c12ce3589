"""Simulator → Mosquitto → subscriber: what arrives matches the manifest, message by message."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from core.broker import MosquittoProcess
from schemas.errors import TopicError
from schemas.payloads import model_for
from schemas.topics import parse_topic
from simulators import FaultRates, MemorySink, SimulationOptions, run_simulation

FAULTS = FaultRates(drop=0.05, duplicate=0.05, late=0.05, malformed=0.08, offline=0.03, skew=0.06)
# Offline and late episodes are drawn per report; how many reports a device makes in the
# window depends on the wall-clock time the test runs at. Rates high enough that every
# kind of fault occurs in a 20-minute window at any hour, so the assertions below always
# have something to check.
ROUNDTRIP_FAULTS = FaultRates(
    drop=0.05, duplicate=0.05, late=0.1, malformed=0.08, offline=0.1, skew=0.06
)


class Subscriber:
    """A paho client that records every message under ``citytel/v1/<city>/#``."""

    def __init__(self, broker: MosquittoProcess, city: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"sub-{city}"
        )
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(f"citytel/v1/{city}/#", qos=1)
        self.client.loop_start()
        assert ready.wait(5), "subscription not acknowledged"

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # anything beyond the expected count would show up now
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: MosquittoProcess, city: str) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto, city)
    yield sub
    sub.close()


def classify(topic: str, payload: bytes, now: datetime) -> tuple[str, str | None, str]:
    """(outcome, device_id, channel) the way a collector would judge one message."""
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return "bad_topic", None, "telemetry"
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "invalid_json", parsed.device_id, str(parsed.channel)
    try:
        message = model_for(parsed.kind, parsed.channel).model_validate(data)
    except ValidationError:
        return "schema", parsed.device_id, str(parsed.channel)
    if (message.ts - now).total_seconds() > 300:
        return "future_ts", parsed.device_id, str(parsed.channel)
    return "valid", parsed.device_id, str(parsed.channel)


def test_roundtrip_matches_manifest(
    mosquitto: MosquittoProcess, subscriber: Subscriber, city: str
) -> None:
    options = SimulationOptions(
        city=city,
        poles=30,
        signals=8,
        energy=4,
        seed=3,
        duration_s=20 * 60,
        speed=None,
        faults=ROUNDTRIP_FAULTS,
    )
    manifest = run_simulation(options, mosquitto.url)
    totals = manifest.totals
    received = subscriber.wait_for(totals["published"])
    assert len(received) == totals["published"]

    now = datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    per_device: Counter[tuple[str, str]] = Counter()
    copies: Counter[tuple[str, bytes]] = Counter()
    for topic, payload in received:
        outcome, device_id, channel = classify(topic, payload, now)
        outcomes[outcome] += 1
        if device_id is not None:
            per_device[device_id, channel] += 1
        copies[topic, payload] += 1
    duplicates = sum(n - 1 for n in copies.values())

    assert duplicates == totals["duplicates"] > 0
    assert outcomes["valid"] - duplicates == totals["valid"]
    for reason in ("invalid_json", "schema", "bad_topic", "future_ts"):
        assert outcomes[reason] == totals["dead_letters"][reason] > 0, reason
    assert totals["late"] > 0 and totals["wills"] > 0 and totals["dropped"] > 0
    for device_id, entry in manifest.devices.items():
        for channel in ("event", "status"):
            assert per_device[device_id, channel] == entry[channel]["published"], device_id
        telemetry = entry["telemetry"]
        assert per_device[device_id, "telemetry"] == (
            telemetry["published"] - telemetry["dead_letters"]["bad_topic"]
        ), device_id


def test_roundtrip_malformed_payloads_are_never_identical(
    mosquitto: MosquittoProcess, subscriber: Subscriber, city: str
) -> None:
    options = SimulationOptions(
        city=city,
        poles=10,
        signals=2,
        energy=2,
        seed=5,
        duration_s=600,
        speed=None,
        faults=FaultRates(malformed=0.5),
    )
    manifest = run_simulation(options, mosquitto.url)
    received = subscriber.wait_for(manifest.totals["published"])
    now = datetime.now(UTC)
    refused = [p for t, p in received if classify(t, p, now)[0] != "valid"]
    assert len(refused) == sum(manifest.totals["dead_letters"].values()) > 20
    assert len(set(refused)) == len(refused)


def test_roundtrip_status_is_retained_online_after_offline_episodes(
    mosquitto: MosquittoProcess, subscriber: Subscriber, city: str
) -> None:
    options = SimulationOptions(
        city=city,
        poles=6,
        signals=0,
        energy=0,
        seed=9,
        duration_s=3600,
        speed=None,
        faults=FaultRates(offline=0.3),
    )
    manifest = run_simulation(options, mosquitto.url)
    received = subscriber.wait_for(manifest.totals["published"])
    statuses = [(t, orjson.loads(p)) for t, p in received if t.endswith("/status")]
    assert manifest.totals["wills"] == sum(1 for _, s in statuses if s["online"] is False) > 2
    comebacks = sum(1 for _, s in statuses if s["online"] is True) - 6  # 6 at the start
    assert comebacks >= manifest.totals["wills"] - 6  # each device returns unless the run ended
    last = {topic: status for topic, status in statuses}
    # A fresh subscriber gets the retained status: each device's last one, in ts order.
    late = Subscriber(mosquitto, city)
    try:
        retained = late.wait_for(6, timeout_s=5)
    finally:
        late.close()
    assert {t: orjson.loads(p) for t, p in retained} == last
    for topic, status in last.items():
        times = [s["ts"] for t, s in statuses if t == topic]
        assert status["ts"] == max(times)


def test_simulation_same_seed_gives_identical_messages() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    options = SimulationOptions(
        city="jinan",
        poles=20,
        signals=5,
        energy=3,
        seed=7,
        duration_s=1800,
        speed=None,
        faults=FAULTS,
    )
    runs = []
    for _ in range(2):
        sink = MemorySink()
        manifest = run_simulation(options, "mqtt://127.0.0.1:1", sink=sink, now=now)
        runs.append((sink.messages, manifest.devices))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 4000

    other = MemorySink()
    run_simulation(
        SimulationOptions(**{**options.__dict__, "seed": 8}),
        "mqtt://127.0.0.1:1",
        sink=other,
        now=now,
    )
    assert other.messages != runs[0][0]


def test_simulation_fault_flags_do_not_change_valid_values() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    base = SimulationOptions(
        city="jinan", poles=5, signals=2, energy=2, seed=7, duration_s=600, speed=None
    )
    clean, faulty = MemorySink(), MemorySink()
    run_simulation(base, "mqtt://127.0.0.1:1", sink=clean, now=now)
    with_faults = SimulationOptions(**{**base.__dict__, "faults": FaultRates(drop=0.3)})
    run_simulation(with_faults, "mqtt://127.0.0.1:1", sink=faulty, now=now)
    assert set(faulty.messages) < set(clean.messages)


def test_runner_realtime_stops_on_event(
    mosquitto: MosquittoProcess, subscriber: Subscriber, city: str
) -> None:
    options = SimulationOptions(city=city, poles=40, signals=5, energy=2, seed=1, interval_s=1)
    stop = threading.Event()
    result: list = []
    thread = threading.Thread(
        target=lambda: result.append(run_simulation(options, mosquitto.url, stop_event=stop))
    )
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    manifest = result[0]
    assert manifest.meta["mode"] == "realtime" and manifest.meta["stopped_early"] is True
    telemetry = manifest.by_channel["telemetry"]["published"]
    assert 47 <= telemetry <= 47 * 3  # one report per device per second, for about 1.5 s
    assert len(subscriber.wait_for(manifest.totals["published"])) == manifest.totals["published"]
