"""Per-message work: topic, size, JSON, contract, registry. Appends to a :class:`Batch`.

Nothing here touches the database; the writer resolves what needs it (devices the
in-memory registry does not know yet).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from ingest.batch import Batch, Refusal
from ingest.registry import RegisteredDevice
from schemas.errors import TopicError
from schemas.limits import MAX_JSON_DEPTH, check_unknown_fields, deeper_than
from schemas.payloads import (
    EVENT_COLUMNS,
    MAX_BATCH_OBJECTS,
    TELEMETRY_COLUMNS,
    EnergyTelemetry,
    energy_balance_ok,
    model_for,
)
from schemas.topics import Channel, Kind, Topic, parse_topic

logger = logging.getLogger(__name__)

_EXCERPT_BYTES = 200
_TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
_CLOCK_REFRESH_S = 0.01  # "now" for the future-timestamp check is at most this old
# An unexpected exception is logged with its traceback at most once per this many
# seconds per exception class; every occurrence is a dead letter and counted.
_INTERNAL_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class DecodePolicy:
    """The knobs of per-message checking (from :class:`IngestSettings`)."""

    max_payload_bytes: int = 256 * 1024
    max_future_s: int = 300
    rate_limit_per_s: float = 0.0  # off here; the collector's setting turns it on
    rate_limit_burst: int = 100


def telemetry_copy_columns(kind: Kind) -> tuple[str, ...]:
    """Column order of telemetry rows built here, for COPY."""
    extra = ("balance_ok",) if kind is Kind.ENERGY else ()
    return ("device_id", "ts", "seq", *TELEMETRY_COLUMNS[kind], *extra, "extra")


EVENT_COPY_COLUMNS = ("device_id", "ts", *EVENT_COLUMNS, "seq", "extra")


def refusal_digest(refusal: Refusal) -> bytes:
    """Identity of a dead letter: a redelivered refused payload is stored once."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(refusal.topic.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(refusal.payload)
    return digest.digest()


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "object"
        parts.append(f"{location}: {error['msg']} [{error['type']}]")
    return "; ".join(parts)


class MessageDecoder:
    """Validates one MQTT message against contract v1 and appends its rows to a batch."""

    def __init__(self, policy: DecodePolicy, registry: Mapping[str, RegisteredDevice]) -> None:
        self.policy = policy
        self.registry = registry
        self._max_future = timedelta(seconds=policy.max_future_s)
        self._latest_ok = datetime.now(UTC) + self._max_future
        self._latest_ok_at = time.monotonic()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._internal_logged: dict[str, float] = {}

    def _refresh_latest_ok(self, now: float) -> datetime:
        """now + ``max_future_s``; callers refresh it at most every ``_CLOCK_REFRESH_S``."""
        self._latest_ok = datetime.now(UTC) + self._max_future
        self._latest_ok_at = now
        return self._latest_ok

    def decode(self, topic_name: str, payload: bytes, batch: Batch) -> None:
        """Decode one message into ``batch``: rows, or dead letters; never an exception.

        A refusal the contract foresees gets its reason; anything unexpected while
        decoding becomes an ``internal`` dead letter, so no payload can stop ingest.
        """
        try:
            self._decode(topic_name, payload, batch)
        except Exception as exc:
            self._refuse_internal(batch, topic_name, payload, exc)

    def _decode(self, topic_name: str, payload: bytes, batch: Batch) -> None:
        if len(payload) > self.policy.max_payload_bytes:
            self.refuse(
                batch,
                topic_name,
                payload[: self.policy.max_payload_bytes],
                "too_large",
                f"payload of {len(payload)} bytes exceeds "
                f"{self.policy.max_payload_bytes}; first bytes kept",
            )
            return
        try:
            topic = parse_topic(topic_name)
        except TopicError as exc:
            self.refuse(batch, topic_name, payload, "bad_topic", str(exc))
            return
        known = self.registry.get(topic.device_id)
        if known is None:
            batch.pending.append((topic_name, payload))
            return
        if known.kind is not topic.kind or known.city != topic.city:
            self.refuse(
                batch,
                topic_name,
                payload,
                "registry_mismatch",
                f"registry has {topic.device_id} as {known.kind} in {known.city}, "
                f"message came as {topic.kind} in {topic.city}",
                topic.device_id,
            )
            return
        if self.policy.rate_limit_per_s and not self._admit(topic.device_id):
            self.refuse(
                batch,
                topic_name,
                payload,
                "rate_limited",
                f"more than {self.policy.rate_limit_per_s}/s "
                f"(burst {self.policy.rate_limit_burst})",
                topic.device_id,
            )
            return
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            self.refuse(batch, topic_name, payload, "invalid_json", str(exc), topic.device_id)
            return
        # A gateway array is re-encoded item by item: bound its depth first. An object's
        # depth only matters where it is re-encoded or described (see _decode_object).
        if type(document) is list and deeper_than(document, MAX_JSON_DEPTH):
            self.refuse(batch, topic_name, payload, "schema", _TOO_DEEP, topic.device_id)
            return
        self._decode_document(topic, topic_name, payload, document, batch)

    def _decode_document(
        self, topic: Topic, topic_name: str, payload: bytes, document: Any, batch: Batch
    ) -> None:
        if isinstance(document, dict):
            self._decode_object(topic, topic_name, payload, document, batch)
            return
        if topic.channel is Channel.STATUS or not isinstance(document, list):
            kind = "an object" if topic.channel is Channel.STATUS else "an object or an array"
            self.refuse(
                batch,
                topic_name,
                payload,
                "schema",
                f"payload must be {kind}, got {type(document).__name__}",
                topic.device_id,
            )
            return
        if not document or len(document) > MAX_BATCH_OBJECTS:
            self.refuse(
                batch,
                topic_name,
                payload,
                "schema",
                f"array must hold 1 to {MAX_BATCH_OBJECTS} objects, got {len(document)}",
                topic.device_id,
            )
            return
        count = len(document)
        for index, item in enumerate(document):
            raw = payload
            try:
                raw = orjson.dumps(item)
                if not isinstance(item, dict):
                    self.refuse(
                        batch,
                        topic_name,
                        raw,
                        "schema",
                        f"object {index} of {count}: not an object",
                        topic.device_id,
                    )
                    continue
                self._decode_object(
                    topic, topic_name, raw, item, batch, where=f"object {index} of {count}: "
                )
            except Exception as exc:  # one object of a gateway batch; the others go on
                self._refuse_internal(
                    batch, topic_name, raw, exc, f"object {index} of {count}: ", topic.device_id
                )

    def _decode_object(
        self,
        topic: Topic,
        topic_name: str,
        raw: bytes,
        item: dict[str, Any],
        batch: Batch,
        *,
        where: str = "",
    ) -> None:
        device_id = topic.device_id
        try:
            message = _VALIDATORS[topic.kind, topic.channel](item)
        except (ValidationError, RecursionError) as exc:
            # Nesting the contract never needs is named as such, whichever rule tripped
            # first; describing it can even recurse (pydantic reprs the input). A
            # RecursionError on a shallow object is a bug: it goes on to `internal`.
            if deeper_than(item, MAX_JSON_DEPTH):
                detail = _TOO_DEEP
            elif isinstance(exc, ValidationError):
                detail = _describe_validation(exc)
            else:
                raise
            self.refuse(batch, topic_name, raw, "schema", where + detail, device_id)
            return
        if message.device_id is not None and message.device_id != device_id:
            self.refuse(
                batch,
                topic_name,
                raw,
                "device_mismatch",
                f"{where}device_id {message.device_id!r} in payload, {device_id!r} in topic",
                device_id,
            )
            return
        ts = message.ts
        latest_ok = self._latest_ok
        now = time.monotonic()
        if now - self._latest_ok_at >= _CLOCK_REFRESH_S:
            latest_ok = self._refresh_latest_ok(now)
        if ts > latest_ok:
            self.refuse(
                batch,
                topic_name,
                raw,
                "future_ts",
                f"{where}ts {ts.isoformat()} is more than "
                f"{self.policy.max_future_s}s in the future",
                device_id,
            )
            return
        extra = message.__pydantic_extra__
        extra_json = None
        if extra:
            problem = check_unknown_fields(extra)
            if problem is None and deeper_than(extra, MAX_JSON_DEPTH):
                problem = _TOO_DEEP
            if problem is None:
                extra_json = orjson.dumps(extra).decode()
                if "\\u0000" in extra_json:
                    problem = "unknown fields hold a NUL character"
            if problem is not None:
                self.refuse(batch, topic_name, raw, "schema", where + problem, device_id)
                return
            for name in extra:
                batch.unknown_fields[(f"{topic.kind}.{topic.channel}", name)] += 1
        channel = topic.channel
        if channel is Channel.STATUS:
            batch.statuses[device_id] = (message.online, ts, message.fw)  # type: ignore[attr-defined]
            return
        if channel is Channel.TELEMETRY:
            batch.telemetry[topic.kind].append(
                _telemetry_row(topic.kind, device_id, message, extra_json)
            )
        else:
            batch.events.append(
                (
                    device_id,
                    ts,
                    str(message.type),
                    message.code,
                    str(message.severity),  # type: ignore[attr-defined]
                    message.message,
                    message.seq,
                    extra_json,
                )  # type: ignore[attr-defined]
            )
        # last_seen: the newest ts per device in the batch (inline: once per message).
        seen = batch.last_seen.get(device_id)
        if seen is None or ts > seen:
            batch.last_seen[device_id] = ts

    def _admit(self, device_id: str) -> bool:
        """Token bucket per device."""
        now = time.monotonic()
        tokens, last = self._buckets.get(device_id, (float(self.policy.rate_limit_burst), now))
        tokens = min(
            self.policy.rate_limit_burst, tokens + (now - last) * self.policy.rate_limit_per_s
        )
        if tokens < 1:
            self._buckets[device_id] = (tokens, now)
            return False
        self._buckets[device_id] = (tokens - 1, now)
        return True

    def _refuse_internal(
        self,
        batch: Batch,
        topic_name: str,
        payload: bytes,
        exc: Exception,
        where: str = "",
        device_id: str | None = None,
    ) -> None:
        """Dead-letter a message whose decoding raised: a bug of ours, never the device's."""
        name = type(exc).__name__
        now = time.monotonic()
        if now - self._internal_logged.get(name, -_INTERNAL_LOG_INTERVAL_S) >= (
            _INTERNAL_LOG_INTERVAL_S
        ):
            self._internal_logged[name] = now
            logger.error(
                "decoding raised %s on topic %r (payload %d bytes, starts %r); "
                "dead-lettered as internal (logged once a minute per exception class)",
                name,
                topic_name[:200],
                len(payload),
                payload_excerpt(payload),
                exc_info=exc,
            )
        self.refuse(
            batch, topic_name, payload, "internal", f"{where}{name}: {exc}"[:2000], device_id
        )

    @staticmethod
    def refuse(
        batch: Batch,
        topic: str,
        payload: bytes,
        reason: str,
        detail: str,
        device_id: str | None = None,
    ) -> None:
        batch.refusals.append(
            Refusal(storable_text(topic), payload, reason, storable_text(detail[:2000]), device_id)
        )


_MEASUREMENTS = {kind: attrgetter(*columns) for kind, columns in TELEMETRY_COLUMNS.items()}
# The models' validators, called directly: ``model_validate`` without its keyword handling.
_VALIDATORS = {
    (kind, channel): model_for(kind, channel).__pydantic_validator__.validate_python
    for kind in Kind
    for channel in Channel
}


def _telemetry_row(
    kind: Kind, device_id: str, message: BaseModel, extra_json: str | None
) -> tuple[Any, ...]:
    measurements = _MEASUREMENTS[kind](message)
    if kind is Kind.SIGNAL:
        measurements = (str(measurements[0]), *measurements[1:])  # mode enum as text
    elif kind is Kind.ENERGY:
        assert isinstance(message, EnergyTelemetry)
        balance = energy_balance_ok(
            message.pv_kw, message.wind_kw, message.grid_kw, message.storage_kw, message.load_kw
        )
        measurements = (*measurements, balance)
    return (device_id, message.ts, message.seq, *measurements, extra_json)  # type: ignore[attr-defined]


def payload_excerpt(payload: bytes) -> str:
    return payload[:_EXCERPT_BYTES].decode("utf-8", "replace")


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: no NUL, no lone surrogates (invalid UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
