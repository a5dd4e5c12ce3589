"""What to simulate and when: :class:`SimulationOptions` and the time window it implies.

Time modes (``resolve_window``):

``realtime``     speed 1, no ``start``: from now, for ``duration_s`` or until stopped.
``accelerated``  a finite ``speed`` (``--speed 60``) over a past window: from
                 ``start`` (``--from``) or ``duration_s`` before ``end``/now.
                 The simulated clock never passes the window's end.
``backfill``     ``speed=None`` (``--speed max``): the window published as fast as
                 the broker acknowledges; ``end`` defaults to now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from simulators.errors import OptionsError
from simulators.faults import FaultRates

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True)
class SimulationOptions:
    """Everything one run needs besides the broker URL."""

    city: str = "jinan"
    poles: int = 100
    signals: int = 20
    energy: int = 5
    seed: int = 1
    interval_s: float = 10.0
    duration_s: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = 1.0
    faults: FaultRates = field(default_factory=FaultRates)
    adaptive_share: float = 0.35
    connections: int = 2
    client_id: str = "citytel-simulator"

    def __post_init__(self) -> None:
        if min(self.poles, self.signals, self.energy) < 0:
            raise OptionsError("device counts cannot be negative")
        if self.interval_s < 1.0:
            raise OptionsError("interval must be at least 1 s")
        if self.speed is not None and self.speed <= 0:
            raise OptionsError("speed must be positive or max")
        if self.duration_s is not None and self.duration_s <= 0:
            raise OptionsError("duration must be positive")
        if not 0.0 <= self.adaptive_share <= 1.0:
            raise OptionsError("adaptive share must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Simulated time, epoch ms; ``end_ms`` None runs until stopped; ``speed`` None is max."""

    mode: str
    start_ms: int
    end_ms: int | None
    speed: float | None


def resolve_window(options: SimulationOptions, now: datetime) -> TimeWindow:
    now_ms = int(now.timestamp()) * 1000
    duration_ms = int(options.duration_s * 1000) if options.duration_s else None
    start_ms = _ms(options.start)
    end_ms = _ms(options.end)
    if options.speed == 1.0 and start_ms is None:
        if end_ms is None and duration_ms is not None:
            end_ms = now_ms + duration_ms
        window = TimeWindow("realtime", now_ms, end_ms, 1.0)
    else:
        if start_ms is None:
            if duration_ms is None:
                raise OptionsError("accelerated and backfill runs need --from or --duration")
            start_ms = (end_ms if end_ms is not None else now_ms) - duration_ms
        if end_ms is None:
            end_ms = start_ms + duration_ms if duration_ms is not None else now_ms
        mode = "backfill" if options.speed is None else "accelerated"
        window = TimeWindow(mode, start_ms, end_ms, options.speed)
    if window.end_ms is not None and window.end_ms <= window.start_ms:
        raise OptionsError("the window's end is not after its start")
    return window


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def parse_duration(text: str) -> float:
    """``10s``, ``10m``, ``2h``, ``1d``, ``500ms`` or plain seconds, as seconds."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise OptionsError(f"duration {text!r} is not like 10s, 10m, 2h or 1d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_speed(text: str) -> float | None:
    """``max`` (None) or a positive factor such as ``60``."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise OptionsError(f"speed {text!r} is not a number or max") from None
    if speed <= 0:
        raise OptionsError("speed must be positive or max")
    return speed


def parse_instant(text: str, utc_offset_s: int) -> datetime:
    """An ISO date or date-time; without an offset it is the city's local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise OptionsError(f"{text!r} is not an ISO date or date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone(timedelta(seconds=utc_offset_s)))
    return value.astimezone(UTC)
