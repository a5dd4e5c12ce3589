"""The collector bounds what it holds itself, whatever the broker's in-flight window does.

Mosquitto 2.0 keeps sending QoS 1 messages past a client's Receive Maximum (and its own
``max_inflight_messages``) once acknowledgements arrive in bulk, so a collector that
trusted the broker's window held several times its batch size under load. These tests
run a real Mosquitto whose window (20,000) is far larger than the collector's.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time

import pytest
from support import publish_all

from core.broker import MosquittoProcess
from core.urls import MqttUrl
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.mqtt import MqttOptions, MqttSource
from ingest.paho_client import BUFFER_BYTES, READ_BUDGET

WINDOW = 500
PAYLOAD_BYTES = 4096
# One wake-up may deliver what it has already read before it sees the window is full.
OVERSHOOT = (READ_BUDGET + BUFFER_BYTES) // PAYLOAD_BYTES + 1


def _source(broker: MosquittoProcess, protocol: str, *, keepalive_s: int = 30) -> MqttSource:
    options = MqttOptions(
        keepalive_s=keepalive_s,
        url=MqttUrl(broker.url),
        client_id=f"window-{secrets.token_hex(3)}",
        group="",
        protocol=protocol,
        receive_maximum=WINDOW,
        batch_max_messages=200,
    )
    # An empty registry: every message waits in the batch for the writer (none here).
    return MqttSource(options, MessageDecoder(DecodePolicy(), {}), notify=lambda: None)


def _wait_still(source: MqttSource, *, quiet_s: float = 0.3, timeout_s: float = 20) -> int:
    """The batch's size once it has stopped growing."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = source.peek()[0]
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return count
        time.sleep(0.02)
    raise AssertionError("the batch kept growing")


def _started(source: MqttSource) -> MqttSource:
    source.start()
    deadline = time.monotonic() + 10
    while not source.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # SUBACK
    return source


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_collector_holds_at_most_its_window_and_resumes_after_acknowledging(
    fresh_mosquitto: MosquittoProcess, protocol: str
) -> None:
    total = 4000
    messages = [
        (f"citytel/v1/jinan/pole/window-{i % 5}/telemetry", secrets.token_bytes(PAYLOAD_BYTES))
        for i in range(total)
    ]
    source = _started(_source(fresh_mosquitto, protocol))
    try:
        publisher = threading.Thread(target=publish_all, args=(fresh_mosquitto.url, messages))
        publisher.start()
        received: list[tuple[str, bytes]] = []
        most_held = 0
        while len(received) < total:
            held = _wait_still(source)
            most_held = max(most_held, held)
            assert held <= WINDOW + OVERSHOOT, f"held {held} messages, window {WINDOW}"
            if len(received) + held < total:
                assert source.client.reading_paused
            batch = source.take_batch()
            received.extend(batch.messages)
            source.acknowledge(batch)
        publisher.join(60)
    finally:
        source.stop()
    assert received == messages  # all of them, in order, once
    assert most_held >= WINDOW  # the window was reached, so it was what stopped the reads


def test_a_paused_collector_keeps_its_connection_alive(
    fresh_mosquitto: MosquittoProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Paused for four keep-alive periods: paho still pings, the broker keeps the session."""
    messages = [
        (f"citytel/v1/jinan/pole/window-{i % 5}/telemetry", secrets.token_bytes(PAYLOAD_BYTES))
        for i in range(2 * WINDOW + OVERSHOOT)
    ]
    source = _started(_source(fresh_mosquitto, "5", keepalive_s=1))
    try:
        publish_all(fresh_mosquitto.url, messages)
        _wait_still(source)
        assert source.client.reading_paused
        time.sleep(4.0)  # Mosquitto drops a client silent for 1.5 keep-alive periods
        assert source.connected and source.connections == 1
        received: list[tuple[str, bytes]] = []
        while len(received) < len(messages):
            _wait_still(source)
            batch = source.take_batch()
            received.extend(batch.messages)
            source.acknowledge(batch)
        assert received == messages
        assert source.connections == 1
    finally:
        source.stop()
    # Stopping is not a lost connection: nothing above INFO.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
