"""Faults on demand: what can go wrong between a device and the collector.

Each rate is a fraction of telemetry messages (0 disables it):

``drop``       the report is never sent.
``duplicate``  the same bytes are published twice (same device_id and ts).
``late``       the device buffers offline for minutes, then flushes in order.
``malformed``  broken JSON (``invalid_json``), wrong types or out-of-range values
               (``schema``), or a topic under ``citytel/v1/`` that does not parse
               (``bad_topic``); every malformed payload carries its own ts and seq,
               so no two are byte-identical.
``offline``    the device drops its MQTT connection abruptly; the broker publishes
               its Last Will (``online: false``, retained) and the device comes
               back minutes later with ``online: true``.
``skew``       the device clock is off: half within limits (±30 s to ±4 min,
               valid), half 15-90 min ahead (``future_ts`` when that is ahead of
               the wall clock by more than the collector's 5 minutes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

import orjson

from simulators.errors import OptionsError

EPISODE_MIN_S = 120.0
EPISODE_MAX_S = 480.0
MAX_FUTURE_MS = 300_000  # the collector's CITYTEL_INGEST_MAX_FUTURE_S default
MALFORMED_KINDS = ("invalid_json", "schema_type", "schema_range", "bad_topic")


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Fractions of telemetry messages affected by each fault (0..1)."""

    drop: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    malformed: float = 0.0
    offline: float = 0.0
    skew: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not 0.0 <= value <= 1.0:
                raise OptionsError(f"fault rate {item.name}={value} is not between 0 and 1")
        if self.drop + self.duplicate + self.malformed + self.skew > 1.0:
            raise OptionsError("drop + duplicate + malformed + skew rates exceed 1")

    def as_dict(self) -> dict[str, float]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def episode_start_p(self, rate: float, interval_s: float) -> float:
        """Per-message chance to start an episode, so about ``rate`` of messages fall in one."""
        mean_messages = max(1.0, (EPISODE_MIN_S + EPISODE_MAX_S) / 2.0 / interval_s)
        return min(1.0, rate / mean_messages)


def episode_ms(rng: random.Random) -> int:
    return int(rng.uniform(EPISODE_MIN_S, EPISODE_MAX_S) * 1000)


def skew_ms(rng: random.Random, interval_ms: int) -> int:
    """A clock error: half small (valid either way), half far ahead."""
    if rng.random() < 0.5:
        skew = rng.randint(30_000, 240_000) * rng.choice((-1, 1))
    else:
        skew = rng.randint(15 * 60_000, 90 * 60_000)
    if skew % interval_ms == 0:  # never land on another report's ts
        skew += 1
    return skew


def malformed_payload(
    kind_of_fault: str,
    fields_: dict[str, Any],
    bad_types: dict[str, Any],
    out_of_range: dict[str, Any],
) -> tuple[bytes, str]:
    """(payload, dead-letter reason) of one malformed message.

    ``fields_`` has ts, seq and device_id: together they make every malformed payload
    unique, also between devices that report at the same instant.
    """
    envelope = {"ts": fields_["ts"], "seq": fields_["seq"], "device_id": fields_["device_id"]}
    if kind_of_fault == "invalid_json":
        return orjson.dumps({**envelope, "note": "truncated"})[:-3], "invalid_json"
    if kind_of_fault == "schema_type":
        return orjson.dumps({**envelope, **bad_types}), "schema"
    if kind_of_fault == "schema_range":
        return orjson.dumps({**envelope, **out_of_range}), "schema"
    return orjson.dumps(fields_), "bad_topic"


def bad_topic(topic: bytes, variant: int) -> bytes:
    """A topic with six levels under citytel/v1/ that does not parse: bad kind or bad id."""
    root, city, kind, device_id, channel = topic.rsplit(b"/", 4)
    if variant % 2 == 0:
        return b"/".join((root, city, kind + b"x", device_id, channel))
    return b"/".join((root, city, kind, b"~" + device_id, channel))
