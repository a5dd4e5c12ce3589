"""The MQTT side of the collector: subscribe, and callbacks that only validate and enqueue.

Messages are acknowledged manually after the batch holding them is committed. The
collector holds at most ``receive_maximum`` messages that are not acknowledged yet (the
batch being filled plus the batch being written): at that count it stops reading the
socket until the writer acknowledges, so TCP pushes back and the rest waits in the
broker. It does not rely on the broker for this: MQTT 5 Receive Maximum and Mosquitto's
``max_inflight_messages`` bound the window only until acknowledgements arrive in bulk
(docs/ingest.md, "Flow control").
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.urls import MqttUrl
from ingest.batch import Batch
from ingest.decode import MessageDecoder
from ingest.paho_client import BurstReadingClient, Publish
from schemas.topics import SUBSCRIPTION

logger = logging.getLogger(__name__)

# CONNACK codes of a broker that refuses MQTT 5: 0x84 (v5) or 1 (a 3.1.1-only broker).
_UNSUPPORTED_PROTOCOL = frozenset({0x84, 1})

_SLICE = 256  # messages decoded per hold of the batch lock


@dataclass(frozen=True, slots=True)
class MqttOptions:
    url: MqttUrl
    client_id: str
    group: str = "collectors"
    protocol: str = "5"
    receive_maximum: int = 20000
    session_expiry_s: int = 7 * 86400
    keepalive_s: int = 30
    batch_max_messages: int = 5000
    ca_file: Path | None = None
    topic_filter: str = SUBSCRIPTION
    # Retiring (``citytel collect --retire``): on connecting, leave the subscription
    # instead of joining it; what the session still holds is delivered all the same.
    retire: bool = False

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic_filter}" if self.group else self.topic_filter


class MqttSource:
    """Receives messages into the current batch; the writer takes batches and acks them."""

    def __init__(
        self, options: MqttOptions, decoder: MessageDecoder, notify: Callable[[], None]
    ) -> None:
        self.options = options
        self._decoder = decoder
        self._notify = notify
        self._lock = threading.Lock()
        self._batch = Batch()
        self._writing = 0  # messages in the batch the writer has taken and not finished
        self._generation = 0
        self.connected = False
        self.connections = 0
        self._falling_back = False
        self._stopping = False
        self.received = 0
        self.session_present: bool | None = None
        self.unsubscribed = threading.Event()  # retiring: the broker confirmed
        self.client = self._make_client()

    def _make_client(self) -> BurstReadingClient:
        v5 = self.options.protocol == "5"
        client = BurstReadingClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.options.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        set_credentials(client, self.options)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_publishes = self._on_publishes
        return client

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        properties = None
        if self.options.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.options.session_expiry_s
            properties.ReceiveMaximum = self.options.receive_maximum
        self.client.connect_async(
            self.options.url.host,
            self.options.url.port,
            keepalive=self.options.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()

    def _start_fallback(self, why: str) -> None:
        if self._falling_back:
            return
        self._falling_back = True
        logger.warning("%s; falling back to MQTT 3.1.1", why)
        threading.Thread(target=self._fall_back_to_311, daemon=True).start()

    def _fall_back_to_311(self) -> None:
        """Reconnect with MQTT 3.1.1 (a new paho client; the protocol is fixed per client)."""
        old = self.client
        old.loop_stop()
        self.options = replace(self.options, protocol="3.1.1")
        self.client = self._make_client()
        self.start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    # callbacks (paho's network thread) ---------------------------------------------------------
    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: paho.ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            if self.options.protocol == "5" and reason_code.value in _UNSUPPORTED_PROTOCOL:
                self._start_fallback(f"broker refuses MQTT 5 ({reason_code})")
                return
            logger.error("broker refused connection: %s", reason_code)
            return
        with self._lock:
            # Messages of the previous connection that are not acknowledged yet will be
            # redelivered by the broker; their acks would be stale, so drop them.
            self._generation += 1
            self._batch.acks.clear()
            self._batch.generation = self._generation
        self.connections += 1
        self.connected = True
        self.session_present = flags.session_present
        if self.options.retire:
            logger.info(
                "connected as %s (session present: %s); leaving %s",
                self.options.client_id,
                flags.session_present,
                self.options.subscription,
            )
            client.unsubscribe(self.options.subscription)
            return
        logger.info(
            "connected to broker %s:%s as %s (session present: %s); subscribing %s",
            self.options.url.host,
            self.options.url.port,
            self.options.client_id,
            flags.session_present,
            self.options.subscription,
        )
        if self.options.protocol == "5":
            client.subscribe(self.options.subscription, options=SubscribeOptions(qos=1))
        else:
            client.subscribe(self.options.subscription, qos=1)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: paho.ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._stopping:
            logger.info("disconnected from the broker (%s)", reason_code)
        elif self.connected:
            logger.warning("broker connection lost (%s); reconnecting with back-off", reason_code)
        self.connected = False

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_codes: list[paho.ReasonCode],
        properties: Properties | None,
    ) -> None:
        for code in reason_codes:
            if code.is_failure:
                logger.error("broker refused subscription %s: %s", self.options.subscription, code)

    def _on_unsubscribe(self, *args: object) -> None:
        """UNSUBACK of a retiring collector: it is out of the group."""
        self.unsubscribed.set()

    def _on_publishes(self, publishes: list[Publish]) -> None:
        """A wake-up's worth of PUBLISH packets, decoded into the batch a slice at a time.

        The lock is let go between slices, so the writer can take a full batch at any time.
        """
        decode = self._decoder.decode
        limit = self.options.batch_max_messages
        for start in range(0, len(publishes), _SLICE):
            with self._lock:
                batch = self._batch
                messages = batch.messages
                acks = batch.acks
                first = not messages
                if first:
                    batch.started = time.monotonic()
                before = len(messages)
                for topic, payload, mid in publishes[start : start + _SLICE]:
                    messages.append((topic, payload))
                    decode(topic, payload, batch)
                    if mid:
                        acks.append(mid)
                after = len(messages)
                if after + self._writing >= self.options.receive_maximum:
                    self.client.pause_reading()
            # after the append, so the writer never wakes to an empty batch
            if first or before < limit <= after:
                self._notify()
            self.received += after - before

    # writer side -------------------------------------------------------------------------------
    def peek(self) -> tuple[int, float]:
        """Messages in the batch being filled, and when its first one arrived."""
        batch = self._batch
        return len(batch.messages), batch.started

    def take_batch(self) -> Batch:
        with self._lock:
            batch = self._batch
            self._batch = Batch(generation=self._generation)
            self._writing = len(batch.messages)
        return batch

    def acknowledge(self, batch: Batch) -> int:
        """Send PUBACKs for a committed batch; skipped if the connection changed meanwhile.

        Either way the batch is finished: its messages no longer count against the window.
        """
        sent = 0
        if batch.generation == self._generation and self.connected and batch.acks:
            self.client.acknowledge(batch.acks)
            sent = len(batch.acks)
        with self._lock:
            self._writing = 0
            if len(self._batch.messages) < self.options.receive_maximum:
                self.client.resume_reading()
        return sent


def set_credentials(client: paho.Client, options: MqttOptions) -> None:
    """User name, password and TLS of ``options.url`` on a paho client."""
    url = options.url
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set(
            ca_certs=str(options.ca_file) if options.ca_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
