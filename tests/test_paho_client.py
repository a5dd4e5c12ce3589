"""The buffered reader under paho: same bytes, fewer system calls, honest ``pending``."""

from __future__ import annotations

import socket

import pytest

from ingest.paho_client import _BufferedReader


def test_buffered_reader_serves_small_reads_from_one_large_read() -> None:
    left, right = socket.socketpair()
    try:
        payload = bytes(range(256)) * 40
        right.sendall(payload)
        left.setblocking(False)
        reader = _BufferedReader(left)
        got = bytearray(reader.recv(1))
        assert reader.pending() == len(payload) - 1  # everything else is buffered
        while len(got) < len(payload):
            got += reader.recv(7)
        assert bytes(got) == payload and reader.pending() == 0
        with pytest.raises(BlockingIOError):
            reader.recv(1)
        right.close()
        assert reader.recv(1) == b""  # end of stream passes through
        assert reader.fileno() == left.fileno()
    finally:
        left.close()
