"""The contract's timestamp: RFC 3339 with an offset, or integer epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms_to_datetime(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch milliseconds {value} out of range") from exc
    if isinstance(value, float | bool):
        raise ValueError("ts must be an RFC 3339 string with an offset or integer epoch ms")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_epoch_ms_to_datetime)]
"""A timezone-aware instant. Naive strings are refused: the offset is required."""


def to_epoch_ms(ts: datetime) -> int:
    return int((ts - EPOCH).total_seconds() * 1000)


def format_rfc3339(ts: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: the form our simulators publish."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
