"""A pure-Python MQTT 3.1.1 broker (amqtt) for the demo when Mosquitto is not installed.

Run as ``python -m citytel.embedded_broker PORT``. Demo only: it keeps sessions in
memory, so it offers none of the guarantees docs/broker.md asks of a production broker.
"""

from __future__ import annotations

import asyncio
import logging
import sys


async def serve(port: int) -> None:
    from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency (extra "demo")

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
