"""Parameter types: the one place that says what a query or path parameter may hold.

Every rule is part of the type, so FastAPI enforces it (422 before a handler runs) and
the OpenAPI schema states it (pattern, enum, lengths, bounds, ``format: date-time``): a
client generated from the schema does not send what will be refused, and no value that
PostgreSQL cannot store (a NUL byte, an integer past 64 bits) reaches a query.
Enumerations (``Kind``, ``EventType``, ``Severity``, ``DeadLetterReason``, ``Role``) come
from the contract and are used as they are.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from pydantic import StringConstraints

from api.errors import InvalidCursorError
from api.keys import KEY_ID_PATTERN
from schemas.registry import Text
from schemas.timestamps import Rfc3339
from schemas.topics import CITY_PATTERN, DEVICE_ID_PATTERN

__all__ = [
    "Bucket",
    "City",
    "Cursor",
    "DeviceId",
    "FieldList",
    "Instant",
    "KeyId",
    "Text",
    "decode_cursor",
    "encode_cursor",
]

City = Annotated[str, StringConstraints(pattern=f"^{CITY_PATTERN}$")]
"""A city as topics and the registry spell it: lower case, digits, dashes, 1-32."""

DeviceId = Annotated[str, StringConstraints(pattern=f"^{DEVICE_ID_PATTERN}$")]
"""A registry id: letters, digits, ``_.-``, 1-64, starting with a letter or digit."""

KeyId = Annotated[str, StringConstraints(pattern=f"^{KEY_ID_PATTERN}$")]
"""The public id of an API key: 8 hex characters."""

Instant = Rfc3339
"""RFC 3339 with an offset, 2000-2100; a bare number is refused."""

_FIELD_NAME = "[a-z][a-z0-9_]{0,63}"
FieldList = Annotated[
    str, StringConstraints(pattern=f"^{_FIELD_NAME}(,{_FIELD_NAME}){{0,63}}$", max_length=4096)
]
"""Comma-separated telemetry field names (checked against the kind by the handler)."""

Bucket = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5}[smhd]$")]
"""A bucket size: a whole number and a unit, ``30s``, ``5m``, ``1h``, ``1d``."""

_CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,88}$"
Cursor = Annotated[str, StringConstraints(pattern=_CURSOR_PATTERN)]
"""An opaque position in a listing, as the previous page's ``next_cursor`` gave it."""

_DEVICE_ID_RE = re.compile(f"^{DEVICE_ID_PATTERN}$")


def encode_cursor(device_id: str) -> str:
    """The cursor after ``device_id``: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(device_id.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The device id a cursor stands for; :class:`InvalidCursorError` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        device_id = raw.decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError("cursor is not one this API handed out") from exc
    if _DEVICE_ID_RE.match(device_id) is None:
        raise InvalidCursorError("cursor is not one this API handed out")
    return device_id
