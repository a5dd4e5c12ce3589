"""The contract's timestamp: RFC 3339 with an offset, or integer epoch milliseconds.

Nothing else: a numeric string is not epoch seconds, a date is not a time, and an
instant outside :data:`EARLIEST` … :data:`LATEST` (UTC) is refused, so every accepted
value converts to UTC and to PostgreSQL's ``timestamptz`` without overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, WithJsonSchema

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
    """Integer epoch ms become datetimes; strings must be RFC 3339; nothing else passes.

    A string is checked only for what pydantic's parser would accept beyond RFC 3339 (a
    number as epoch seconds, a space for ``T``, no seconds, an offset without a colon);
    the parser refuses the rest. Character tests, not the regex: this runs per message.
    """
    if type(value) is str:
        if not (
            len(value) >= 20
            and value[4] == "-"
            and value[10] in "Tt"
            and value[13] == ":"
            and value[16] == ":"
            and (value[-1] in "Zz" or (value[-3] == ":" and value[-6] in "+-"))
        ):
            raise ValueError(f"ts must be {_FORMS}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not EPOCH_MS_MIN <= value < EPOCH_MS_MAX:
            raise ValueError(f"epoch milliseconds {value} outside {_window()}")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, datetime):  # built in code, not parsed from a payload
        return value
    raise ValueError(f"ts must be {_FORMS}")


def _rfc3339_only(value: Any) -> Any:
    """Strings must be RFC 3339 with an offset; a number is not a time here."""
    if type(value) is str and _RFC3339.match(value) is not None:
        return value
    if isinstance(value, datetime):  # built in code, not parsed from a request
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-30T08:00:00Z")


def _in_window(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is outside {_window()}")
    return value


def _window() -> str:
    return f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC"


def to_epoch_ms(ts: datetime) -> int:
    return int((ts - EPOCH).total_seconds() * 1000)


EPOCH_MS_MIN = to_epoch_ms(EARLIEST)
EPOCH_MS_MAX = to_epoch_ms(LATEST)

# The bounds come before the validator: so pydantic checks them in its core, as part of
# the datetime schema (placed after it, they cost a Python call each: ~1.2 µs a message).
Timestamp = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST), BeforeValidator(_contract_form)]
"""A timezone-aware instant between 2000 and 2100 (pydantic's own datetime bounds, which
compare the instant, offsets considered). Naive strings are refused."""

Rfc3339 = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_only),
    AfterValidator(_in_window),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
"""An RFC 3339 date-time with an offset between 2000 and 2100, and nothing else (no epoch
numbers): the form of every time an HTTP request carries. Its JSON Schema states the rule."""


def format_rfc3339(ts: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: the form our simulators publish."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
