"""Fast QoS 1 publishing: a lean MQTT 3.1.1 client and a pool of shared connections.

paho-mqtt builds several objects per message and scans its whole out-queue on
every PUBACK; for 20,000+ msg/s from one process this module writes PUBLISH
packets itself, sends them in batches with one ``sendall`` and counts PUBACKs
against a bounded in-flight window (bounded, so unread PUBACKs can never fill
the socket buffers and deadlock both ends). After ``wait_acked()`` returns,
the broker has every message. Unacknowledged messages are resent with DUP set
after a reconnect (at-least-once, as QoS 1 promises).

Per-device connections exist only for Last Will episodes: ``go_offline`` opens
one with a will on the device's status topic and drops the socket without
DISCONNECT, so the broker publishes the will; ``come_back`` reconnects with the
same client id (the broker has then dealt with the old session and sent the
will), publishes ``online: true`` retained and disconnects cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import time
from pathlib import Path

from core.urls import MqttUrl
from simulators.errors import PublishError

logger = logging.getLogger(__name__)

_PUBLISH_QOS1 = b"\x32"
_PUBLISH_QOS1_RETAIN = b"\x33"
_DUP = 0x08
_PUBACK = 0x40
_CONNACK = 0x20
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_CONNACK_ERRORS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
_BATCH_MESSAGES = 512
_BATCH_BYTES = 128 * 1024


def _varint(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    if n < 16384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


class MqttConnection:
    """One MQTT 3.1.1 connection (clean session) publishing at QoS 1."""

    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        *,
        ca_file: Path | None = None,
        window: int = 4000,
        keepalive_s: int = 60,
        timeout_s: float = 10.0,
        reconnect_timeout_s: float = 60.0,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.ca_file = ca_file
        self.window = min(window, 60000)
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self._sock: socket.socket | None = None
        self._will: tuple[bytes, bytes] | None = None
        self._outstanding: dict[int, bytes] = {}
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._rx = bytearray()
        self._mid = 0
        self._last_send = 0.0
        self.acked = 0

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    # -- connection -----------------------------------------------------------------

    def connect(self, *, will: tuple[bytes, bytes] | None = None) -> None:
        """Connect; ``will`` is (topic, payload), published retained at QoS 1 on abrupt loss."""
        self._will = will
        self._sock = self._open()

    def _open(self) -> socket.socket:
        host, port = self.url.host, self.url.port
        try:
            raw = socket.create_connection((host, port), timeout=self.timeout_s)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: socket.socket = raw
            if self.url.tls:
                context = ssl.create_default_context(
                    cafile=str(self.ca_file) if self.ca_file else None
                )
                sock = context.wrap_socket(raw, server_hostname=host)
            sock.sendall(self._connect_packet())
            self._rx.clear()
            header = self._recv_exact(sock, 4)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(
                f"cannot connect as {self.client_id}: {exc}", host=host, port=port
            ) from exc
        if header[0] != _CONNACK:
            sock.close()
            raise PublishError(
                f"expected CONNACK, got packet type {header[0] >> 4}", host=host, port=port
            )
        if header[3] != 0:
            sock.close()
            reason = _CONNACK_ERRORS.get(header[3], f"code {header[3]}")
            raise PublishError(f"broker refused {self.client_id}: {reason}", host=host, port=port)
        self._last_send = time.monotonic()
        return sock

    def _connect_packet(self) -> bytes:
        flags = 0x02  # clean session
        payload = _field(self.client_id.encode())
        if self._will is not None:
            flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
            payload += _field(self._will[0]) + _field(self._will[1])
        if self.url.username is not None:
            flags |= 0x80
            payload += _field(self.url.username.encode())
        if self.url.password is not None:
            flags |= 0x40
            payload += _field(self.url.password.encode())
        body = b"\x00\x04MQTT\x04" + bytes((flags,)) + self.keepalive_s.to_bytes(2, "big") + payload
        return b"\x10" + _varint(len(body)) + body

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            data += chunk
        return data

    def _reconnect(self, exc: BaseException) -> None:
        """Reconnect with back-off and resend every unacknowledged message with DUP set."""
        logger.warning(
            "MQTT connection lost, reconnecting",
            extra={"client_id": self.client_id, "error": str(exc)},
        )
        self._drop_socket()
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay = 0.1
        while True:
            try:
                sock = self._open()
                break
            except PublishError:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("broker unreachable, retrying in %.1f s", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._sock = sock
        self._buffer = [bytes((p[0] | _DUP,)) + p[1:] for p in self._outstanding.values()]
        self._buffered_bytes = sum(len(p) for p in self._buffer)
        self._send_buffer()

    def _drop_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._rx.clear()

    def abort(self) -> None:
        """Drop the socket without DISCONNECT: the broker publishes the will."""
        sock = self._sock
        self._sock = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self, *, timeout_s: float | None = None) -> None:
        """Send everything, wait for the PUBACKs, DISCONNECT (the will is discarded)."""
        if self._sock is None:
            return
        self.wait_acked(timeout_s=timeout_s)
        with contextlib.suppress(OSError):
            self._sock.sendall(_DISCONNECT)
        self._drop_socket()

    # -- publishing -----------------------------------------------------------------

    def publish(self, topic: bytes, payload: bytes, retain: bool = False) -> None:
        mid = self._mid + 1
        if mid > 65535:
            mid = 1
        outstanding = self._outstanding
        while mid in outstanding:
            mid = mid + 1 if mid < 65535 else 1
        self._mid = mid
        packet = b"".join(
            (
                _PUBLISH_QOS1_RETAIN if retain else _PUBLISH_QOS1,
                _varint(4 + len(topic) + len(payload)),
                len(topic).to_bytes(2, "big"),
                topic,
                mid.to_bytes(2, "big"),
                payload,
            )
        )
        outstanding[mid] = packet
        self._buffer.append(packet)
        self._buffered_bytes += len(packet)
        if len(self._buffer) >= _BATCH_MESSAGES or self._buffered_bytes >= _BATCH_BYTES:
            self.flush()
            if len(outstanding) >= self.window:
                self._wait_below(self.window // 2, self.timeout_s)

    def flush(self) -> None:
        """Send what is buffered and take the PUBACKs that have arrived."""
        if self._buffer:
            self._send_buffer()
        self._read_acks(0.0)

    def _send_buffer(self) -> None:
        data = b"".join(self._buffer)
        self._buffer = []
        self._buffered_bytes = 0
        try:
            if self._sock is None:
                raise ConnectionError("not connected")
            self._sock.sendall(data)
            self._last_send = time.monotonic()
        except (OSError, ssl.SSLError) as exc:
            self._reconnect(exc)

    def service(self) -> None:
        """Between bursts: send, read PUBACKs, and ping when idle for half the keep-alive."""
        self.flush()
        if self._sock is not None and time.monotonic() - self._last_send > self.keepalive_s / 2:
            self._buffer.append(_PINGREQ)
            self._send_buffer()

    def wait_acked(self, *, timeout_s: float | None = None) -> None:
        """Send everything and block until the broker acknowledged every message."""
        self.flush()
        self._wait_below(1, timeout_s if timeout_s is not None else self.reconnect_timeout_s)

    def _wait_below(self, limit: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self._outstanding) >= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"{len(self._outstanding)} messages not acknowledged after {timeout_s:.0f} s",
                    host=self.url.host,
                    port=self.url.port,
                )
            self._read_acks(min(remaining, 1.0))

    def _read_acks(self, timeout_s: float) -> None:
        sock = self._sock
        if sock is None:
            self._reconnect(ConnectionError("not connected"))
            return
        try:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending:
                readable, _, _ = select.select([sock], [], [], timeout_s)
                if not readable:
                    return
            data = sock.recv(262144)
            if not data:
                raise ConnectionError("connection closed by the broker")
        except (OSError, ssl.SSLError) as exc:
            self._reconnect(exc)
            return
        rx = self._rx
        rx += data
        outstanding = self._outstanding
        i, n = 0, len(rx)
        acked = 0
        while i + 2 <= n:
            length = rx[i + 1]
            start = i + 2
            if length & 0x80:  # longer than 127: only unexpected packets are
                length, start = _decode_length(rx, i + 1)
                if start < 0:
                    break
            if start + length > n:
                break
            if rx[i] == _PUBACK and outstanding.pop((rx[start] << 8) | rx[start + 1], None):
                acked += 1
            i = start + length
        del rx[:i]
        self.acked += acked


def _decode_length(buf: bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(buf):
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return 0, -1


class Publisher:
    """A few shared connections; devices are spread over them by ``shard``."""

    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        *,
        connections: int = 2,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.connections = [
            MqttConnection(url, f"{client_id}-{i}"[:64], ca_file=ca_file, timeout_s=timeout_s)
            for i in range(max(1, connections))
        ]

    def connect(self) -> None:
        for connection in self.connections:
            connection.connect()

    def publish(self, shard: int, topic: bytes, payload: bytes, retain: bool = False) -> None:
        self.connections[shard].publish(topic, payload, retain)

    def flush(self) -> None:
        for connection in self.connections:
            connection.service()

    def sync(self, shard: int) -> None:
        """Until the broker has everything sent on that shard (keeps per-device order)."""
        self.connections[shard].wait_acked(timeout_s=self.timeout_s)

    def wait_acked(self, *, timeout_s: float | None = None) -> None:
        for connection in self.connections:
            connection.wait_acked(timeout_s=timeout_s)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()

    def go_offline(self, device_id: str, will_topic: bytes, will_payload: bytes) -> None:
        connection = self._device_connection(device_id)
        connection.connect(will=(will_topic, will_payload))
        connection.abort()

    def come_back(self, device_id: str, topic: bytes, payload: bytes) -> None:
        connection = self._device_connection(device_id)
        connection.connect()
        connection.publish(topic, payload, retain=True)
        connection.close(timeout_s=self.timeout_s)

    def _device_connection(self, device_id: str) -> MqttConnection:
        return MqttConnection(
            self.url, f"{device_id}"[:64], ca_file=self.ca_file, window=10, timeout_s=self.timeout_s
        )


class MemorySink:
    """Collects what would be published (tests, dry runs) as (topic, payload, retain)."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes, bool]] = []

    def connect(self) -> None:
        pass

    def publish(self, shard: int, topic: bytes, payload: bytes, retain: bool = False) -> None:
        self.messages.append((topic, payload, retain))

    def flush(self) -> None:
        pass

    def sync(self, shard: int) -> None:
        pass

    def wait_acked(self, *, timeout_s: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def go_offline(self, device_id: str, will_topic: bytes, will_payload: bytes) -> None:
        self.messages.append((will_topic, will_payload, True))

    def come_back(self, device_id: str, topic: bytes, payload: bytes) -> None:
        self.messages.append((topic, payload, True))
