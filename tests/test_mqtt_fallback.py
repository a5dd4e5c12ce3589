"""MQTT 5 first, 3.1.1 when the broker refuses it.

Every broker that runs here (Mosquitto 2) accepts MQTT 5, so this test stands up a
minimal stand-in that speaks only 3.1.1 at the protocol level: it refuses a version 5
CONNECT with return code 1 ("unacceptable protocol version"), as a 3.1.1 broker does,
and accepts a version 4 CONNECT.
"""

from __future__ import annotations

import asyncio
import secrets

from support import wait_until

from core.urls import MqttUrl
from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.mqtt import MqttOptions, MqttSource


async def _serve_311_only(levels: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while header := await reader.read(1):
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length)
                if header[0] >> 4 == 1:  # CONNECT: protocol level after the name "MQTT"
                    level = body[6]
                    levels.append(level)
                    writer.write(bytes([0x20, 0x02, 0x00, 0x00 if level == 4 else 0x01]))
                elif header[0] >> 4 == 8:  # SUBSCRIBE: grant QoS 1
                    writer.write(bytes([0x90, 0x03]) + body[:2] + b"\x01")
                elif header[0] >> 4 == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_collector_falls_back_to_311_when_the_broker_refuses_mqtt5() -> None:
    levels: list[int] = []
    server = await _serve_311_only(levels)
    port = server.sockets[0].getsockname()[1]
    options = MqttOptions(
        url=MqttUrl(f"mqtt://127.0.0.1:{port}"),
        client_id=f"fallback-{secrets.token_hex(3)}",
        group="",
    )
    source = MqttSource(options, MessageDecoder(DecodePolicy(), {}), notify=lambda: None)
    source.start()
    try:
        await wait_until(lambda: source.connected, timeout_s=10)
        assert levels[0] == 5 and levels[-1] == 4
        assert source.options.protocol == "3.1.1"
        assert isinstance(source.take_batch(), Batch)
    finally:
        source.stop()
        server.close()
        await server.wait_closed()
