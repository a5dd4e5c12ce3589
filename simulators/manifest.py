"""The oracle: what a simulation sent, per device and channel, and what should be stored.

Counters of one device channel (:class:`ChannelCounts`):

``published``
    MQTT messages that reached the broker on the device's behalf, including
    duplicate copies, malformed messages, and Last Will messages the broker
    published when the device dropped off.
``valid``
    Objects the collector should store (each distinct valid message once).
``duplicates``
    Extra byte-identical copies (same ``device_id`` and ``ts``) that storage
    must drop; also counted in ``published``.
``dead_letters``
    Expected dead letters by reason: ``invalid_json``, ``schema``,
    ``bad_topic``, ``future_ts``.
``dropped``, ``offline_skipped``
    Reports the device produced but never sent (not in ``published``).
``late``, ``skewed``, ``wills``
    Published messages that were flushed late, carry a skewed clock, or are
    Last Wills (informational; also counted in ``valid`` or ``dead_letters``).

Invariant per channel: ``published == valid + duplicates + sum(dead_letters)``.
A manifest file is ``Manifest.to_dict()`` as JSON: run ``meta``, ``totals``,
``by_channel``, ``by_kind`` and ``devices`` (``{device_id: {"kind": ..., channel: counts}}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEAD_LETTER_REASONS = ("invalid_json", "schema", "bad_topic", "future_ts")
COUNTERS = (
    "published",
    "valid",
    "duplicates",
    "dropped",
    "late",
    "skewed",
    "offline_skipped",
    "wills",
)
MANIFEST_FORMAT = "citytel-simulator-manifest/1"


class ChannelCounts:
    """Counters of one device channel; incremented on the hot path, hence slots."""

    __slots__ = (*COUNTERS, "dead_letters")

    def __init__(self) -> None:
        self.published = 0
        self.valid = 0
        self.duplicates = 0
        self.dropped = 0
        self.late = 0
        self.skewed = 0
        self.offline_skipped = 0
        self.wills = 0
        self.dead_letters: dict[str, int] = {}

    def dead_letter(self, reason: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        out["dead_letters"] = {r: self.dead_letters.get(r, 0) for r in DEAD_LETTER_REASONS}
        return out


def _empty() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    out["dead_letters"] = dict.fromkeys(DEAD_LETTER_REASONS, 0)
    return out


def _add(total: dict[str, Any], counts: Mapping[str, Any]) -> None:
    for name in COUNTERS:
        total[name] += counts[name]
    for reason in DEAD_LETTER_REASONS:
        total["dead_letters"][reason] += counts["dead_letters"].get(reason, 0)


@dataclass
class Manifest:
    """What was sent; ``devices`` maps device_id to ``{"kind": ..., channel: counts}``."""

    meta: dict[str, Any]
    devices: dict[str, dict[str, Any]]
    totals: dict[str, Any] = field(default_factory=_empty)
    by_channel: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, meta: dict[str, Any], devices: Iterable[tuple[str, str, Mapping[str, ChannelCounts]]]
    ) -> Manifest:
        """From ``(device_id, kind, {channel: ChannelCounts})`` rows."""
        manifest = cls(meta=meta, devices={})
        for device_id, kind, channels in devices:
            entry: dict[str, Any] = {"kind": kind}
            for channel, counts in channels.items():
                data = counts.to_dict()
                entry[str(channel)] = data
                _add(manifest.totals, data)
                _add(manifest.by_channel.setdefault(str(channel), _empty()), data)
                _add(manifest.by_kind.setdefault(kind, _empty()), data)
            manifest.devices[device_id] = entry
        return manifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "meta": self.meta,
            "totals": self.totals,
            "by_channel": self.by_channel,
            "by_kind": self.by_kind,
            "devices": self.devices,
        }

    def write(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = orjson.loads(path.read_bytes())
        return cls(
            meta=data["meta"],
            devices=data["devices"],
            totals=data["totals"],
            by_channel=data["by_channel"],
            by_kind=data["by_kind"],
        )

    def expected_dead_letters(self) -> dict[str, int]:
        return dict(self.totals["dead_letters"])
