"""A paho client that frames what the socket holds and hands PUBLISH packets over in bulk.

paho reads one packet per ``select()`` wake-up with several small ``recv()`` calls, builds
an :class:`~paho.mqtt.client.MQTTMessage` (and, on MQTT 5, a ``Properties`` object) and
calls ``on_message`` for each one. Under a steady stream of small messages that per-packet
work is most of a collector's CPU. This subclass reads what is available in large chunks,
splits it into packets itself, and passes QoS 0/1 PUBLISH packets to :attr:`on_publishes`
as ``(topic, payload, packet id)`` tuples, one call per wake-up. Every other packet
(CONNACK, SUBACK, PINGRESP, DISCONNECT, QoS 2 flows) goes through paho's own handler, so
sessions, keep-alive and reconnects behave exactly as in paho.

Without :attr:`on_publishes` set, PUBLISH packets take paho's path too (``on_message``).
:meth:`BurstReadingClient.pause_reading` leaves incoming bytes in the socket until
:meth:`BurstReadingClient.resume_reading`, so TCP pushes back on the broker while the
consumer holds as much as it may; writing and keep-alive go on meanwhile.
With ``manual_ack`` the caller acknowledges with :meth:`BurstReadingClient.acknowledge`;
without it, the client acknowledges each wake-up's QoS 1 messages once they are delivered.

This reaches into paho's internals, listed in :data:`PAHO_INTERNALS`; pyproject.toml pins
the paho-mqtt versions it was tested with.
"""

from __future__ import annotations

import ssl
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

# Bytes read per wake-up at most, so outgoing PUBACKs and keep-alives still get turns.
READ_BUDGET = 512 * 1024
BUFFER_BYTES = 256 * 1024
_MIN_FREE = 16 * 1024  # parse and compact before reading into less room than this
# While reading is paused, each turn of paho's loop waits this long for a resume before
# it goes on to write (PUBACKs) and to keep the connection alive.
PAUSED_WAIT_S = 0.05

_PUBLISH = 0x30
_PUBACK = 0x40
_puback = struct.Struct("!BBH").pack  # type, remaining length 2, packet id
_QOS_MASK = 0x06
_QOS_2 = 0x04

Publish = tuple[str, bytes, int]
"""Topic, payload, and the packet id to acknowledge (0 for QoS 0)."""


@dataclass(frozen=True, slots=True)
class PahoInternals:
    """What :class:`BurstReadingClient` relies on in paho-mqtt beyond its documented API."""

    module_names: tuple[str, ...]
    """Names in ``paho.mqtt.client`` used here."""
    attributes: Mapping[str, type]
    """Attributes of a new client, read or set here, and their type on a new client."""
    methods: Mapping[str, tuple[str, ...]]
    """Client methods called or overridden here, and their parameter names (without self)."""
    overridden: tuple[str, ...]
    """Which of those methods this subclass overrides (paho calls them)."""
    in_packet_keys: tuple[str, ...]
    """The keys of ``_in_packet``: set here for ``_packet_handle``, which reads them."""


# paho-mqtt 2.2 as tested (pyproject pins the minor version); tests/test_paho_internals.py
# checks each item against the installed paho.
PAHO_INTERNALS = PahoInternals(
    module_names=("time_func", "MalformedPacket", "MQTT_LOG_ERR", "MQTT_LOG_DEBUG"),
    attributes={
        "_sock": type(None),  # None while not connected
        "_msgtime_mutex": type(threading.Lock()),
        "_last_bytes_received": float,
        "_protocol": int,
        "_manual_ack": bool,
        "_in_packet": dict,
    },
    methods={
        "_create_socket": (),
        "_call_socket_register_write": (),
        "_easy_log": ("level", "fmt", "*args"),
        "_loop_rc_handle": ("rc",),
        "_packet_handle": (),
        "_packet_queue": ("command", "packet", "mid", "qos", "info"),
        "loop_read": ("max_packets",),
    },
    overridden=("_create_socket", "loop_read"),
    in_packet_keys=(
        "command",
        "have_remaining",
        "remaining_count",
        "remaining_mult",
        "remaining_length",
        "packet",
        "to_process",
        "pos",
    ),
)


class MalformedFrameError(Exception):
    """The byte stream is not MQTT: the connection has to be dropped."""


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int] | None:
    """An MQTT variable byte integer at ``pos``: (value, next position), None if incomplete."""
    value = 0
    shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MalformedFrameError("variable byte integer longer than 4 bytes")
    return None


def split_publish(
    header: int, data: memoryview, start: int, end: int, *, v5: bool
) -> Publish | None:
    """The topic, payload and packet id of a QoS 0/1 PUBLISH body, None if paho must handle it.

    paho keeps the packets this returns None for: QoS 2, and an empty topic (an MQTT 5
    topic alias, which a broker only sends to clients that allow them).
    """
    if header & _QOS_MASK == _QOS_2:
        return None
    if end - start < 2:
        raise MalformedFrameError("PUBLISH too short for its topic length")
    topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
    if topic_end > end:
        raise MalformedFrameError("PUBLISH topic runs past the packet")
    if topic_end == start + 2:
        return None
    topic = str(data[start + 2 : topic_end], "utf-8", "surrogateescape")
    pos = topic_end
    mid = 0
    if header & _QOS_MASK:
        if pos + 2 > end:
            raise MalformedFrameError("PUBLISH too short for its packet id")
        mid = (data[pos] << 8) | data[pos + 1]
        pos += 2
    if v5:
        properties = _varint(data, pos, end)
        if properties is None or properties[1] + properties[0] > end:
            raise MalformedFrameError("PUBLISH properties run past the packet")
        pos = properties[1] + properties[0]
    return topic, data[pos:end].tobytes(), mid


class BurstReadingClient(paho.Client):
    """paho's client, reading every available packet per wake-up, PUBLISH packets in bulk."""

    on_publishes: Callable[[list[Publish]], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset_buffer()
        self._may_read = threading.Event()
        self._may_read.set()

    def pause_reading(self) -> None:
        """Stop reading the socket (bytes wait there, then in the broker) until resumed."""
        self._may_read.clear()

    def resume_reading(self) -> None:
        self._may_read.set()

    @property
    def reading_paused(self) -> bool:
        return not self._may_read.is_set()

    def _reset_buffer(self) -> None:
        # One buffer, reused: no large allocation per read for the allocator to fragment.
        self._buffer = bytearray(BUFFER_BYTES)
        self._filled = 0

    def _create_socket(self):  # type: ignore[no-untyped-def]
        self._reset_buffer()  # a new connection starts a new byte stream
        return super()._create_socket()

    def _recv_into(self, free: memoryview) -> int:
        sock = self._sock
        if sock is None:
            raise ConnectionError("no socket")
        try:
            if hasattr(sock, "recv_into"):
                return sock.recv_into(free)
            data = sock.recv(len(free))  # paho's websocket wrapper
            free[: len(data)] = data
            return len(data)
        except ssl.SSLWantReadError as err:
            raise BlockingIOError from err
        except ssl.SSLWantWriteError as err:
            self._call_socket_register_write()
            raise BlockingIOError from err

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if not self._may_read.wait(PAUSED_WAIT_S):
            # Paused: let paho's loop write and ping. paho calls this only when the socket
            # is readable, so the broker is sending; its PINGRESP waits behind what we have
            # not read yet, and must not count as missing.
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        lost = False
        received = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        try:
            while received < READ_BUDGET and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                if self._sock is None:  # paho closed it while handling a packet
                    return MQTTErrorCode.MQTT_ERR_NO_CONN
                if len(self._buffer) - self._filled < _MIN_FREE:
                    rc = self._handle_frames()
                    continue
                with memoryview(self._buffer) as view:
                    try:
                        count = self._recv_into(view[self._filled :])
                    except BlockingIOError:
                        break
                    except OSError as err:  # includes TimeoutError
                        self._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                        lost = True
                        break
                if not count:
                    lost = True
                    break
                self._filled += count
                received += count
            if received:
                with self._msgtime_mutex:
                    self._last_bytes_received = paho.time_func()
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                rc = self._handle_frames()
        except MalformedFrameError as exc:
            self._easy_log(paho.MQTT_LOG_ERR, "malformed packet from broker: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and lost:
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._reset_buffer()
            return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def feed(self, data: bytes) -> MQTTErrorCode:
        """Handle ``data`` as if the socket had delivered it, in as many reads as it takes."""
        view = memoryview(data)
        while view:
            free = len(self._buffer) - self._filled
            if not free:
                rc = self._handle_frames()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc
                continue
            count = min(free, len(view))
            self._buffer[self._filled : self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]
        return self._handle_frames()

    def _handle_frames(self) -> MQTTErrorCode:
        """Handle every whole packet buffered; move the incomplete tail to the front."""
        deliver = self.on_publishes
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        publishes: list[Publish] = []
        pos = 0
        end = self._filled
        needed = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        with memoryview(self._buffer) as data:
            while end - pos >= 2:
                header = data[pos]
                length = _varint(data, pos + 1, end)
                if length is None:
                    break
                if length[1] + length[0] > end:
                    needed = length[1] + length[0] - pos
                    break
                body, pos = length[1], length[1] + length[0]
                if deliver is not None and header & 0xF0 == _PUBLISH:
                    publish = split_publish(header, data, body, pos, v5=v5)
                    if publish is not None:
                        publishes.append(publish)
                        continue
                if publishes:  # in order: what came before this packet is delivered first
                    self._deliver(publishes)
                    publishes = []
                rc = self._handle_with_paho(header, data[body:pos].tobytes())
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None:
                    break
        self._compact(pos, needed)
        if publishes:
            self._deliver(publishes)
        return rc

    def _compact(self, consumed: int, needed: int) -> None:
        """Drop ``consumed`` bytes; leave room for the next packet (``needed`` bytes, if known)."""
        tail = self._filled - consumed
        capacity = max(BUFFER_BYTES, needed + _MIN_FREE)
        if capacity > len(self._buffer) or (len(self._buffer) > capacity and tail < capacity):
            # A packet larger than the buffer grows it; the next smaller one shrinks it back.
            self._buffer = self._buffer[consumed : self._filled] + bytearray(capacity - tail)
        elif consumed:
            self._buffer[:tail] = self._buffer[consumed : self._filled]
        self._filled = tail

    def _deliver(self, publishes: list[Publish]) -> None:
        self.on_publishes(publishes)  # type: ignore[misc]
        if not self._manual_ack:
            self.acknowledge(mid for _, _, mid in publishes if mid)

    def acknowledge(self, mids: Iterable[int]) -> None:
        """PUBACK these QoS 1 packet ids in one write.

        paho's ``ack()`` queues one packet and wakes its network thread through a socket
        pair per message, which costs more than the rest of the acknowledgement.
        """
        packets = b"".join(_puback(_PUBACK, 2, mid) for mid in mids)
        if packets:
            self._packet_queue(_PUBACK, packets, 0, 1)

    def _handle_with_paho(self, header: int, body: bytes) -> MQTTErrorCode:
        self._in_packet = {
            "command": header,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            return self._packet_handle()
        except paho.MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = {
                "command": 0,
                "have_remaining": 0,
                "remaining_count": [],
                "remaining_mult": 1,
                "remaining_length": 0,
                "packet": bytearray(b""),
                "to_process": 0,
                "pos": 0,
            }
