"""``citytel collect --retire``: take a collector out of the shared group for good.

Mosquitto goes on assigning a share of the group's messages to a member whose
persistent session is away, and queues them there. Retiring connects under the
collector's client id (its session comes back), leaves the shared subscription, so the
broker assigns nothing more to it, stores what the session still holds exactly as a
collector does (commit, then acknowledge), and when nothing has arrived for a quiet
period ends the session: a connection with a clean start (MQTT 5: and session expiry
0; MQTT 3.1.1: clean session), which discards what is left of it on the broker. Should a
message arrive after the last commit, the session is kept and the command fails: run it
again. Nothing queued for the member is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.settings import IngestSettings
from ingest.errors import IngestError
from ingest.mqtt import MqttOptions, set_credentials
from ingest.service import Collector

logger = logging.getLogger(__name__)

DEFAULT_QUIET_S = 2.0
_CONNECT_TIMEOUT_S = 60.0
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class RetireReport:
    client_id: str
    session_present: bool  # False: the broker held no session for it (nothing to drain)
    drained: int  # messages received from the session and stored


class _RetiringCollector(Collector):
    """A collector that leaves the shared subscription on connecting."""

    def _mqtt_options(self) -> MqttOptions:
        return replace(super()._mqtt_options(), retire=True)


async def retire_collector(
    settings: IngestSettings, *, quiet_s: float = DEFAULT_QUIET_S, timeout_s: float = 3600.0
) -> RetireReport:
    """Drain the collector's session into the database, then end the session."""
    # Any free metrics port: the retiring process must not clash with collectors that run.
    collector = _RetiringCollector(settings.model_copy(update={"ingest_metrics_port": 0}))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop), name="retiring-collector")
    try:
        await _wait_until_drained(collector, task, quiet_s=quiet_s, timeout_s=timeout_s)
    finally:
        stop.set()
        await task  # commits and acknowledges the batch in hand, then disconnects
    source = collector.source
    assert source is not None
    if source.peek()[0]:
        raise IngestError(
            f"messages arrived for {settings.ingest_client_id} after the last commit; "
            "its session is kept: run --retire again"
        )
    options = source.options
    await asyncio.to_thread(end_session, options)
    report = RetireReport(options.client_id, bool(source.session_present), source.received)
    logger.info(
        "retired %s from %s: %d queued message(s) stored; session ended",
        options.client_id,
        options.subscription,
        report.drained,
    )
    return report


async def _wait_until_drained(
    collector: Collector, task: asyncio.Task[None], *, quiet_s: float, timeout_s: float
) -> None:
    """Until the subscription is left and ``quiet_s`` pass with everything committed."""
    started = time.monotonic()
    last, since = -1, started
    connecting_since: float | None = None  # the collector waits for the database before
    while True:
        if task.done():
            task.result()
            raise IngestError("the collector stopped while retiring")
        now = time.monotonic()
        source = collector.source
        if source is not None and not source.connections:
            connecting_since = connecting_since or now
            if now - connecting_since > _CONNECT_TIMEOUT_S:
                raise IngestError(f"no broker connection within {_CONNECT_TIMEOUT_S:.0f}s")
        if now - started > timeout_s:
            raise IngestError(f"not drained within {timeout_s:.0f}s; the session is kept")
        if source is not None and source.unsubscribed.is_set():
            received = source.received
            if received != last or collector.metrics.received != received:
                last, since = received, now  # still arriving, or not all committed yet
            elif now - since >= quiet_s:
                return
        await asyncio.sleep(_POLL_S)


def end_session(options: MqttOptions, *, timeout_s: float = 10.0) -> None:
    """Connect under ``options.client_id`` with a clean start: the broker drops its session."""
    v5 = options.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else True,
    )
    set_credentials(client, options)
    answered = threading.Event()
    codes: list[paho.ReasonCode] = []

    def on_connect(*args: object) -> None:
        codes.append(args[3])  # type: ignore[arg-type]
        answered.set()

    client.on_connect = on_connect
    if v5:  # no session expiry property means 0: the session ends with the connection
        client.connect(options.url.host, options.url.port, clean_start=True)
    else:  # clean session, chosen when the client was made
        client.connect(options.url.host, options.url.port)
    deadline = time.monotonic() + timeout_s
    try:
        while not answered.is_set() and time.monotonic() < deadline:
            client.loop(timeout=_POLL_S)
    finally:
        client.disconnect()
    if not codes or codes[0].is_failure:
        raise IngestError(
            f"could not end the session of {options.client_id}: {codes or 'no answer'}"
        )
