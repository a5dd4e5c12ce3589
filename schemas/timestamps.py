"""The contract's timestamp: RFC 3339 with an offset, or integer epoch milliseconds.

Nothing else: a numeric string is not epoch seconds, a date is not a time, and an
instant outside :data:`EARLIEST` … :data:`LATEST` (UTC) is refused, so every accepted
value converts to UTC and to PostgreSQL's ``timestamptz`` without overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# RFC 3339 section 5.6 date-time: full-date "T" full-time, the offset required.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)
_FORMS = "an RFC 3339 string with an offset or integer epoch milliseconds"


def _contract_form(value: Any) -> Any:
    """Integer epoch ms become datetimes; strings must be RFC 3339; nothing else passes."""
    if type(value) is str:
        if _RFC3339.match(value) is None:
            raise ValueError(f"ts must be {_FORMS}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not EPOCH_MS_MIN <= value < EPOCH_MS_MAX:
            raise ValueError(f"epoch milliseconds {value} outside {_window()}")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, datetime):  # built in code, not parsed from a payload
        return value
    raise ValueError(f"ts must be {_FORMS}")


def _in_window(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"ts {value.isoformat()} outside {_window()}")
    return value


def _window() -> str:
    return f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC"


def to_epoch_ms(ts: datetime) -> int:
    return int((ts - EPOCH).total_seconds() * 1000)


EPOCH_MS_MIN = to_epoch_ms(EARLIEST)
EPOCH_MS_MAX = to_epoch_ms(LATEST)

Timestamp = Annotated[AwareDatetime, BeforeValidator(_contract_form), AfterValidator(_in_window)]
"""A timezone-aware instant between 2000 and 2100. Naive strings are refused."""


def format_rfc3339(ts: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: the form our simulators publish."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
