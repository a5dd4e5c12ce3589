"""Topic names of contract v1: ``citytel/v1/{city}/{kind}/{device_id}/{channel}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from schemas.errors import TopicError

TOPIC_ROOT = "citytel/v1"
SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/+/+"

CITY_PATTERN = r"[a-z][a-z0-9-]{0,31}"
DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class Kind(StrEnum):
    """What a device is; one telemetry table per kind."""

    POLE = "pole"
    SIGNAL = "signal"
    ENERGY = "energy"


class Channel(StrEnum):
    """What a message carries."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


_TOPIC_RE = re.compile(
    rf"^citytel/v1/({CITY_PATTERN})/(pole|signal|energy)/({DEVICE_ID_PATTERN})"
    r"/(telemetry|event|status)$"
)
_CITY_RE = re.compile(rf"^{CITY_PATTERN}$")
_DEVICE_ID_RE = re.compile(rf"^{DEVICE_ID_PATTERN}$")


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed, valid topic."""

    city: str
    kind: Kind
    device_id: str
    channel: Channel

    def __str__(self) -> str:
        return f"{TOPIC_ROOT}/{self.city}/{self.kind}/{self.device_id}/{self.channel}"


def is_valid_city(city: str) -> bool:
    return _CITY_RE.match(city) is not None


def is_valid_device_id(device_id: str) -> bool:
    return _DEVICE_ID_RE.match(device_id) is not None


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> Topic:
    """Parse a topic name; raise :class:`TopicError` naming the offending part."""
    match = _TOPIC_RE.match(topic)
    if match is None:
        raise TopicError(_explain_topic(topic))
    city, kind, device_id, channel = match.groups()
    return Topic(city, Kind(kind), device_id, Channel(channel))


def build_topic(city: str, kind: Kind | str, device_id: str, channel: Channel | str) -> str:
    """Build a topic name, validating every part."""
    return str(parse_topic(f"{TOPIC_ROOT}/{city}/{kind}/{device_id}/{channel}"))


def _explain_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT:
        shape = "citytel/v1/{city}/{kind}/{device_id}/{channel}"
        return f"topic {topic[:200]!r} is not {shape}"
    _, _, city, kind, device_id, channel = parts
    if not is_valid_city(city):
        return f"city {city[:64]!r} does not match {CITY_PATTERN}"
    if kind not in Kind.__members__.values():
        return f"kind {kind[:64]!r} is not one of pole, signal, energy"
    if not is_valid_device_id(device_id):
        return f"device_id {device_id[:80]!r} does not match {DEVICE_ID_PATTERN}"
    return f"channel {channel[:64]!r} is not one of telemetry, event, status"
