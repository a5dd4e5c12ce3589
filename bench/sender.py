"""A fast QoS 1 publisher: pre-encoded MQTT 3.1.1 PUBLISH packets written to a socket.

paho manages about 31k msg/s and cannot have more than 65535 QoS 1 messages
outstanding; ``mosquitto_pub -l`` drops messages. This publisher writes chunks of
packets encoded before the clock starts, reads PUBACKs on a second thread, and
bounds the messages in flight by a window smaller than the packet-id space, so a
packet id is reused only after its PUBACK arrived (PUBACKs are checked to come in
order, which Mosquitto guarantees for one connection).

Two modes: as fast as the broker acknowledges (``rate=None``), or open loop at a
fixed rate, where the schedule never waits for the system under test.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.errors import BenchError

_PACKET_IDS = 65535
_PUBACK = 0x40
_CONNACK = 0x20
_PINGRESP = 0xD0
_MAX_RATE_CHUNK = 1000
_TICK_S = 0.002


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def packet_id(index: int) -> int:
    """The packet id of the message at ``index``: 1…65535, cycling."""
    return index % _PACKET_IDS + 1


def encode_publishes(messages: Sequence[tuple[str, bytes]]) -> list[bytes]:
    """QoS 1 PUBLISH packets; message ``i`` carries packet id :func:`packet_id` (i)."""
    packets = []
    topics: dict[str, bytes] = {}
    for index, (topic, payload) in enumerate(messages):
        encoded = topics.get(topic)
        if encoded is None:
            encoded = topics[topic] = _string(topic)
        body_length = len(encoded) + 2 + len(payload)
        packets.append(
            b"".join(
                (
                    b"\x32",
                    _varint(body_length),
                    encoded,
                    struct.pack("!H", packet_id(index)),
                    payload,
                )
            )
        )
    return packets


def _connect_packet(client_id: str) -> bytes:
    body = _string("MQTT") + bytes((4, 0x02)) + struct.pack("!H", 0) + _string(client_id)
    return b"\x10" + _varint(len(body)) + body


@dataclass(slots=True)
class SendStats:
    """What one publish run did; times are ``time.monotonic()``."""

    messages: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    last_ack: float = 0.0
    # (index of the first message of a chunk, when the chunk was written)
    chunks: list[tuple[int, float]] = field(default_factory=list)

    @property
    def send_rate(self) -> float:
        """Messages per second from the first write to the last PUBACK."""
        elapsed = self.last_ack - self.first_send
        return self.messages / elapsed if elapsed > 0 else 0.0


class RawPublisher:
    """One MQTT connection that publishes pre-encoded packets and counts PUBACKs."""

    def __init__(
        self, host: str, port: int, client_id: str, *, window: int = 20000, timeout_s: float = 10.0
    ) -> None:
        if not 0 < window < _PACKET_IDS:
            raise ValueError("window must be between 1 and 65534")
        self.host, self.port, self.client_id = host, port, client_id
        self.window = window
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._acked = threading.Condition()
        self._ack_count = 0
        self._next_index = 0
        self._error: str | None = None
        self._last_ack = 0.0

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sock.sendall(_connect_packet(self.client_id))
        reply = _recv_exactly(sock, 4)
        if reply[0] != _CONNACK or reply[3] != 0:
            raise BenchError(f"broker refused the publisher: CONNACK {reply.hex()}")
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_acks, name="bench-puback", daemon=True)
        self._reader.start()

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._sock = None

    def __enter__(self) -> RawPublisher:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # publishing ---------------------------------------------------------------------------------
    def publish(
        self,
        packets: Sequence[bytes],
        *,
        start: int = 0,
        stop: int | None = None,
        rate: float | None = None,
    ) -> SendStats:
        """Publish ``packets[start:stop]``; return when every one is acknowledged."""
        if self._sock is None:
            raise BenchError("publisher is not connected")
        stop = len(packets) if stop is None else stop
        with self._acked:
            self._ack_count, self._next_index = 0, start
        stats = SendStats(messages=stop - start)
        chunk = _MAX_RATE_CHUNK if rate is None else max(1, round(rate * _TICK_S))
        t0 = time.monotonic()
        index = start
        while index < stop:
            if rate is not None:
                _sleep_until(t0 + (index - start) / rate)
            end = min(stop, index + chunk)
            self._wait_for_window(end - start - self.window)
            now = time.monotonic()
            stats.chunks.append((index, now))
            self._sock.sendall(b"".join(packets[index:end]))
            index = end
        stats.first_send = stats.chunks[0][1] if stats.chunks else t0
        stats.last_send = time.monotonic()
        self._wait_for_window(stop - start)
        stats.last_ack = self._last_ack
        return stats

    def _wait_for_window(self, needed_acks: int) -> None:
        deadline = time.monotonic() + self.timeout_s * 6
        with self._acked:
            while self._ack_count < needed_acks:
                if self._error is not None:
                    raise BenchError(self._error)
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"no PUBACK for {self.timeout_s * 6:.0f}s "
                        f"({self._ack_count} of {needed_acks} acknowledged)"
                    )
                self._acked.wait(0.5)

    def _read_acks(self) -> None:
        assert self._sock is not None
        buffer = b""
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self._acked:
                    self._error = self._error or "broker closed the publisher's connection"
                    self._acked.notify_all()
                return
            buffer = self._consume(buffer + data)

    def _consume(self, buffer: bytes) -> bytes:
        """Count the PUBACKs in ``buffer``; return the incomplete tail."""
        pos, size, acks = 0, len(buffer), 0
        expected = self._next_index
        error = None
        while size - pos >= 2:
            kind = buffer[pos] & 0xF0
            if kind == _PUBACK and size - pos >= 4:
                pid = buffer[pos + 2] << 8 | buffer[pos + 3]
                if pid != packet_id(expected + acks):
                    error = f"PUBACK {pid} out of order (expected {packet_id(expected + acks)})"
                acks += 1
                pos += 4
            elif kind == _PINGRESP:
                pos += 2
            elif kind == _PUBACK:
                break
            else:
                error = f"unexpected packet type 0x{buffer[pos]:02x} from the broker"
                break
        if acks or error:
            with self._acked:
                self._ack_count += acks
                self._next_index += acks
                self._last_ack = time.monotonic()
                self._error = self._error or error
                self._acked.notify_all()
        return buffer[pos:]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            raise BenchError("broker closed the connection during CONNECT")
        data += part
    return data


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
