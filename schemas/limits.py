"""Bounds on what the contract does not need, checked before anything re-encodes a payload.

JSON parsers accept far deeper nesting than anything else in the path: orjson parses
1,024 levels but re-encodes only about 254, and pydantic's error messages recurse into
the value they describe. A device never needs more than a few levels (a gateway's array
of objects whose unknown fields may hold a small object), so deeper input is refused.
Unknown field names become ``extra`` keys, ``unknown_fields`` rows and metric labels:
their number and length are bounded too.
"""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 8
MAX_UNKNOWN_FIELDS = 32
MAX_FIELD_NAME_LENGTH = 64

# Free text the database stores (a device's name, district or intersection, a key's
# name): no control characters, NUL above all (PostgreSQL text cannot hold it), and
# bounded. The pattern is also the OpenAPI rule, so it is written as a regex both
# Python and ECMAScript read.
MAX_TEXT_LENGTH = 200
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"

_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


def deeper_than(document: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests arrays/objects deeper than ``limit`` (walked
    iteratively, stopping at the first level past the limit: nothing to exhaust)."""
    return json_depth(document, limit) > limit


def json_depth(document: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counted up to ``limit + 1`` at most."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_unknown_fields(extra: dict[str, Any]) -> str | None:
    """Why the unknown fields of one object are refused, or None when they may be kept."""
    if len(extra) > MAX_UNKNOWN_FIELDS:
        return f"{len(extra)} unknown fields; at most {MAX_UNKNOWN_FIELDS} are kept"
    for name in extra:
        if not name or len(name) > MAX_FIELD_NAME_LENGTH:
            return (
                f"unknown field name of {len(name)} characters; "
                f"1 to {MAX_FIELD_NAME_LENGTH} are allowed"
            )
        if not _CONTROL.isdisjoint(name):
            return f"unknown field name {name!r} holds a control character"
    return None
