"""A paho client that reads what the socket holds, not one packet per wake-up.

paho's ``loop_read`` handles a single packet per ``select()`` when no QoS 2 flow is
open, and reads each packet with several small ``recv()`` calls. Under a steady stream
that is one ``select()`` and about three system calls per message. This subclass reads
packets until the socket is drained (bounded per wake-up) through a buffered reader,
which tells paho's loop about buffered bytes the way an SSL socket does (``pending``).
"""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

READ_BURST = 2000  # packets per wake-up at most, so writes and keep-alives still get turns
_CHUNK = 256 * 1024


class _BufferedReader:
    """Wraps a plain TCP socket: large reads, served in the small pieces paho asks for."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._buffer):
            data = self._sock.recv(max(size, _CHUNK))  # BlockingIOError passes through
            if len(data) <= size:
                return data
            self._buffer, self._offset = data, 0
        start = self._offset
        self._offset = min(start + size, len(self._buffer))
        return self._buffer[start : self._offset]

    def pending(self) -> int:
        return len(self._buffer) - self._offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BurstReadingClient(paho.Client):
    """paho's client, reading every available packet per wake-up."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return _BufferedReader(sock) if isinstance(sock, socket.socket) and not self._ssl else sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        for _ in range(READ_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_SUCCESS
