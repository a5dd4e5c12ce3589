"""The collector's receive path: its own MQTT framing under paho, against a real Mosquitto."""

from __future__ import annotations

import secrets
import struct
import threading
import time

import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import publish_all

from core.broker import MosquittoProcess
from core.urls import MqttUrl
from ingest.paho_client import BUFFER_BYTES, BurstReadingClient, MalformedFrameError, Publish


def _publish_packet(topic: str, payload: bytes, mid: int, *, v5: bool) -> bytes:
    """A QoS 1 PUBLISH packet as a broker would send it."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid)
    if v5:
        body += b"\x02\x01\x01"  # properties: Payload Format Indicator = 1
    body += payload
    length, remaining = bytearray(), len(body)
    while True:
        byte, remaining = remaining & 0x7F, remaining >> 7
        length.append(byte | (0x80 if remaining else 0))
        if not remaining:
            break
    return bytes([0x32]) + bytes(length) + body


def _offline_client(v5: bool) -> tuple[BurstReadingClient, list[Publish]]:
    client = BurstReadingClient(
        CallbackAPIVersion.VERSION2,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=True,
    )
    got: list[Publish] = []
    client.on_publishes = got.extend
    return client, got


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_framing_survives_every_split_of_the_byte_stream(v5: bool) -> None:
    messages = [
        ("citytel/v1/jinan/pole/p-1/telemetry", b'{"ts": 1}', 1),
        ("citytel/v1/qingdao/signal/s-\u00e9/event", b"", 2),  # empty payload, non-ASCII topic
        ("citytel/v1/yantai/energy/e-1/telemetry", bytes(range(256)) * 600, 65535),
        ("citytel/v1/jining/pole/p-2/telemetry", bytes(range(256)) * 2400, 7),  # > the buffer
        ("citytel/v1/jinan/pole/p-1/telemetry", b'{"ts": 2}', 8),  # and back to small
    ]
    small = messages[:2] + messages[-1:]
    cases = [(small, step) for step in (1, 2, 3, 7)]
    cases += [(messages, step) for step in (64, 4096, 100_000, 10**7)]
    for sent, step in cases:
        stream = b"".join(_publish_packet(t, p, m, v5=v5) for t, p, m in sent)
        client, got = _offline_client(v5)
        for start in range(0, len(stream), step):
            client.feed(stream[start : start + step])
        assert got == sent, f"split every {step} bytes"
        assert client._filled == 0
        assert len(client._buffer) == BUFFER_BYTES  # grown for the large packet, then shrunk


def test_a_topic_longer_than_its_packet_is_refused() -> None:
    client, got = _offline_client(v5=False)
    broken = bytes([0x32, 4, 0, 9, ord("a"), ord("b")])
    with pytest.raises(MalformedFrameError):
        client.feed(broken)
    assert got == []


def _subscriber(
    broker: MosquittoProcess, client_id: str, *, v5: bool, manual_ack: bool
) -> tuple[BurstReadingClient, list[Publish]]:
    client = BurstReadingClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    got: list[Publish] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_publishes(publishes: list[Publish]) -> None:
        with lock:
            got.extend(publishes)

    def on_connect(c: BurstReadingClient, *_: object) -> None:
        c.subscribe(f"bench/{client_id}/#", qos=1)

    client.on_publishes = on_publishes
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    url = MqttUrl(broker.url)
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        client.connect(url.host, url.port, clean_start=False, properties=properties)
    else:
        client.connect(url.host, url.port)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client, got


def _wait_for(got: list[Publish], count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_every_message_arrives_once_in_order_and_acks_only_when_told(
    fresh_mosquitto: MosquittoProcess, v5: bool
) -> None:
    client_id = f"t-{secrets.token_hex(3)}"
    sizes = [0, 1, 100, 300, 70_000] * 400  # 2,000 messages, some spanning many reads
    messages = [
        (f"bench/{client_id}/{i % 7}", secrets.token_bytes(size)) for i, size in enumerate(sizes)
    ]
    client, got = _subscriber(fresh_mosquitto, client_id, v5=v5, manual_ack=True)
    try:
        publish_all(fresh_mosquitto.url, messages)
        _wait_for(got, len(messages))
        assert [(t, p) for t, p, _ in got] == messages
        assert all(mid for _, _, mid in got)
        client.acknowledge(mid for _, _, mid in got[:1000])  # the rest stays unacknowledged
        time.sleep(0.5)
    finally:
        client.disconnect()
        client.loop_stop()
    # The same session again: the broker redelivers exactly what was not acknowledged.
    again, redelivered = _subscriber(fresh_mosquitto, client_id, v5=v5, manual_ack=False)
    try:
        _wait_for(redelivered, 1000, timeout_s=15)
        time.sleep(0.3)
        assert [(t, p) for t, p, _ in redelivered] == messages[1000:]
    finally:
        again.disconnect()
        again.loop_stop()
    # Acknowledged on receipt by the client itself this time: nothing comes back.
    last, after = _subscriber(fresh_mosquitto, client_id, v5=v5, manual_ack=True)
    try:
        time.sleep(0.5)
        assert after == []
    finally:
        last.disconnect()
        last.loop_stop()
