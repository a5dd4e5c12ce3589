"""Hostile input for the collector's decode path: random and mutated payloads and topics.

:class:`HostileInputs` draws inputs from a seeded generator, fast enough for hundreds
of thousands per minute: valid messages of every kind and channel with one part made
hostile (a field replaced by a random JSON value, nesting near every parser's limit,
timestamps in every wrong form, many or strange unknown fields, gateway arrays), byte
mutations of valid payloads, random bytes, and mutated topics.

:func:`check_decode` is the property: whatever the input, ``MessageDecoder.decode``
returns without raising and the message ends as rows, a dead letter, or a pending
lookup of a device the registry does not hold.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ingest.batch import Batch
from ingest.decode import MessageDecoder
from ingest.registry import RegisteredDevice
from schemas.payloads import SIGNAL_FAULT_CODES, SignalMode
from schemas.timestamps import format_rfc3339
from schemas.topics import Channel, Kind, build_topic

FUZZ_CITY = "fuzzville"
DEVICES: dict[str, Kind] = {
    "fz-pole-1": Kind.POLE,
    "fz-signal-1": Kind.SIGNAL,
    "fz-energy-1": Kind.ENERGY,
}
# Depths around the limits seen in the path: orjson re-encodes ~254 levels and parses 1,024.
DEPTHS = (2, 8, 9, 64, 253, 254, 255, 256, 500, 999, 1000, 1022, 1023, 1024, 1025, 2000)
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def dumps(document: Any) -> bytes:
    """JSON bytes; integers beyond 64 bits and NaN too (orjson refuses to write those)."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def registry() -> dict[str, RegisteredDevice]:
    """The devices every generated topic names, unless the topic was mutated."""
    return {d: RegisteredDevice(kind, FUZZ_CITY) for d, kind in DEVICES.items()}


def _valid_object(rng: random.Random, kind: Kind, channel: Channel) -> dict[str, Any]:
    ts = format_rfc3339(_NOW - timedelta(seconds=rng.randrange(86400 * 30)))
    if channel is Channel.STATUS:
        return {"ts": ts, "online": rng.random() < 0.5, "fw": "1.2.3"}
    if channel is Channel.EVENT:
        return {
            "ts": ts,
            "type": "fault",
            "code": rng.choice(SIGNAL_FAULT_CODES),
            "severity": "critical",
            "message": "detector 3",
        }
    if kind is Kind.POLE:
        return {"ts": ts, "lamp_on": True, "dim_pct": 80, "pm25_ugm3": 35.5, "cell_ues": 12}
    if kind is Kind.SIGNAL:
        return {"ts": ts, "mode": rng.choice(list(SignalMode)).value, "cycle_s": 120, "volume": 7}
    return {"ts": ts, "pv_kw": 12.5, "load_kw": 20.0, "grid_kw": 7.5, "soc_pct": 55.0}


def _nested(rng: random.Random, depth: int) -> Any:
    value: Any = rng.choice([1, "x", None, [], {}])
    for _ in range(depth - 1):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def _nested_text(depth: int, opener: str) -> str:
    """Nesting written as text, so depths beyond Python's recursion limit cost nothing."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


_TEXT_POOL = (
    "",
    "\x00",
    "a\x00b",
    "\ufffd",
    "🚦",
    "交通信号",
    "\u202e",
    "x" * 5000,
    "'; DROP TABLE devices; --",
    '"quoted"\n',
    "\\",
    "1700000000",
    "NaN",
    "Infinity",
)
_NUMBER_POOL = (
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    1e308,
    -1e308,
    5e-324,
    0.1,
    -0.0,
    1.5e12,
)
_TS_POOL = (
    "1700000000",
    "1700000000000",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-11-30T08:00:00",
    "2026-11-30",
    "2026-11-30 08:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-30T24:00:00Z",
    "2026-11-30T08:00:60Z",
    "2026-11-30T08:00:00+24:00",
    "2026-11-30T08:00:00.1234567890123Z",
    "2026-11-30T08:00:00+08",
    "now",
    -1,
    0,
    2**63,
    10**20,
    1.5e12,
    True,
    None,
    [],
    {},
)


def _random_value(rng: random.Random) -> Any:
    choice = rng.randrange(8)
    if choice == 0:
        return rng.choice(_TEXT_POOL)
    if choice == 1:
        return rng.choice(_NUMBER_POOL)
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return _nested(rng, rng.choice(DEPTHS[:6]))
    if choice == 4:
        return [_random_value(rng) for _ in range(rng.randrange(4))]
    if choice == 5:
        return {rng.choice(_TEXT_POOL)[:20]: rng.random() for _ in range(rng.randrange(4))}
    if choice == 6:
        return rng.random() * 10 ** rng.randrange(-5, 12)
    return rng.choice(_TS_POOL)


@dataclass(slots=True)
class HostileInputs:
    """A seeded stream of ``(topic, payload, how it was made)``."""

    seed: int = 0
    rng: random.Random = field(init=False)
    _makers: list[Callable[[], tuple[str, bytes]]] = field(init=False)
    _names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        makers = {
            "valid": self._valid,
            "field_replaced": self._field_replaced,
            "deep_field": self._deep_field,
            "deep_document": self._deep_document,
            "timestamp": self._timestamp,
            "unknown_fields": self._unknown_fields,
            "gateway_array": self._gateway_array,
            "byte_mutation": self._byte_mutation,
            "random_bytes": self._random_bytes,
            "topic_mutation": self._topic_mutation,
        }
        self._names = list(makers)
        self._makers = list(makers.values())

    def __iter__(self) -> Iterator[tuple[str, bytes, str]]:
        while True:
            index = self.rng.randrange(len(self._makers))
            topic, payload = self._makers[index]()
            yield topic, payload, self._names[index]

    # helpers ------------------------------------------------------------------------------
    def _device(self) -> tuple[str, Kind, Channel, str]:
        device_id, kind = self.rng.choice(list(DEVICES.items()))
        channel = self.rng.choice(
            [Channel.TELEMETRY, Channel.TELEMETRY, Channel.EVENT, Channel.STATUS]
        )
        return device_id, kind, channel, build_topic(FUZZ_CITY, kind, device_id, channel)

    def _document(self) -> tuple[str, dict[str, Any], Kind, Channel]:
        _, kind, channel, topic = self._device()
        return topic, _valid_object(self.rng, kind, channel), kind, channel

    # makers -------------------------------------------------------------------------------
    def _valid(self) -> tuple[str, bytes]:
        topic, document, _, _ = self._document()
        return topic, dumps(document)

    def _field_replaced(self) -> tuple[str, bytes]:
        topic, document, _, _ = self._document()
        name = self.rng.choice([*document, "device_id", "seq", "mode", "type", "severity"])
        document[name] = _random_value(self.rng)
        return topic, dumps(document)

    def _deep_field(self) -> tuple[str, bytes]:
        """A known or unknown field holding nesting near a parser's limit, written as text."""
        topic, document, _, _ = self._document()
        name = self.rng.choice(
            [*document, "extra_field", "mode", "type", "severity", "device_id", "seq"]
        )
        document.pop(name, None)
        depth = self.rng.choice(DEPTHS)
        nested = _nested_text(depth, self.rng.choice("[{"))
        body = dumps(document)[:-1]
        separator = b"," if len(document) else b""
        return topic, body + separator + dumps(name) + b":" + nested.encode() + b"}"

    def _deep_document(self) -> tuple[str, bytes]:
        _, _, _, topic = self._device()
        depth = self.rng.choice(DEPTHS)
        return topic, _nested_text(depth, self.rng.choice("[{")).encode()

    def _timestamp(self) -> tuple[str, bytes]:
        topic, document, _, _ = self._document()
        document["ts"] = self.rng.choice(_TS_POOL)
        return topic, dumps(document)

    def _unknown_fields(self) -> tuple[str, bytes]:
        topic, document, _, _ = self._document()
        count = self.rng.choice([1, 5, 32, 33, 200])
        for i in range(count):
            name = self.rng.choice(
                [f"f{i}", "x" * self.rng.choice([64, 65, 1000]), f"a\nb{i}", f'q"{i}', f"\x00{i}"]
            )
            document[name] = _random_value(self.rng)
        return topic, dumps(document)

    def _gateway_array(self) -> tuple[str, bytes]:
        _device_id, kind, channel, topic = self._device()
        items: list[Any] = []
        for _ in range(self.rng.choice([0, 1, 3, 20])):
            item: Any = _valid_object(self.rng, kind, channel)
            if self.rng.random() < 0.5:
                item = _random_value(self.rng) if self.rng.random() < 0.3 else item
                if isinstance(item, dict) and item and self.rng.random() < 0.5:
                    item[self.rng.choice(list(item))] = _random_value(self.rng)
            items.append(item)
        if self.rng.random() < 0.05:
            items = [_valid_object(self.rng, kind, channel)] * 1001
        body = dumps(items)
        if self.rng.random() < 0.3:  # a deep item among valid ones
            nested = _nested_text(self.rng.choice(DEPTHS), "[")
            body = body[:-1] + (b"," if items else b"") + nested.encode() + b"]"
        return topic, body

    def _byte_mutation(self) -> tuple[str, bytes]:
        topic, document, _, _ = self._document()
        data = bytearray(dumps(document))
        for _ in range(self.rng.randrange(1, 6)):
            action = self.rng.randrange(5)
            at = self.rng.randrange(len(data) + 1)
            if action == 0 and data:
                data[min(at, len(data) - 1)] = self.rng.randrange(256)
            elif action == 1:
                data[at:at] = bytes([self.rng.randrange(256)])
            elif action == 2:
                del data[at : at + self.rng.randrange(1, 8)]
            elif action == 3:
                chunk = data[at : at + self.rng.randrange(1, 16)]
                data[at:at] = chunk * self.rng.randrange(1, 4)
            else:
                data[at:at] = self.rng.choice([b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\\ud800"])
        return topic, bytes(data)

    def _random_bytes(self) -> tuple[str, bytes]:
        _, _, _, topic = self._device()
        return topic, self.rng.randbytes(self.rng.randrange(0, 300))

    def _topic_mutation(self) -> tuple[str, bytes]:
        device_id, kind, channel, topic = self._device()
        document = _valid_object(self.rng, kind, channel)
        choice = self.rng.randrange(7)
        if choice == 0:
            topic = topic.replace(f"/{kind}/", f"/{self.rng.choice(list(Kind))}/")
        elif choice == 1:
            topic = topic.replace(FUZZ_CITY, "qingdao")
        elif choice == 2:
            topic = topic.replace(device_id, f"unknown-{self.rng.randrange(10**6)}")
        elif choice == 3:
            topic = topic + "/extra"
        elif choice == 4:
            topic = topic.replace(device_id, self.rng.choice(_TEXT_POOL) or "/")
        elif choice == 5:
            raw = bytearray(topic.encode())
            raw[self.rng.randrange(len(raw))] = self.rng.randrange(128, 256)
            topic = raw.decode("utf-8", "surrogateescape")
        else:
            topic = "".join(self.rng.choice("ab/+#$\x00é") for _ in range(self.rng.randrange(40)))
        return topic, dumps(document)


@dataclass(slots=True)
class DecodeOutcome:
    """What decoding a run of inputs gave, by how each input was made."""

    inputs: int = 0
    escaped: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    unaccounted: list[tuple[str, bytes]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    makers: Counter[str] = field(default_factory=Counter)
    stored: int = 0
    pending: int = 0


def check_decode(
    decoder: MessageDecoder, topic: str, payload: bytes, outcome: DecodeOutcome, maker: str = ""
) -> Batch:
    """Decode one input; record an escaped exception or an input that left no trace."""
    outcome.inputs += 1
    outcome.makers[maker] += 1
    batch = Batch()
    try:
        decoder.decode(topic, payload, batch)
    except Exception as exc:  # the property under test: this must never happen
        outcome.escaped.append((maker, topic, payload[:300], f"{type(exc).__name__}: {exc}"))
        return batch
    for refusal in batch.refusals:
        outcome.reasons[refusal.reason] += 1
    outcome.stored += batch.row_count + len(batch.statuses)
    outcome.pending += len(batch.pending)
    if not (batch.row_count or batch.statuses or batch.refusals or batch.pending):
        outcome.unaccounted.append((topic, payload[:300]))
    return batch
