"""Why a message was refused: the reason codes of ``dead_letters`` (its CHECK constraint)."""

from __future__ import annotations

from enum import StrEnum


class DeadLetterReason(StrEnum):
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    FUTURE_TS = "future_ts"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    REGISTRY_MISMATCH = "registry_mismatch"
    RATE_LIMITED = "rate_limited"
    # Decoding raised an exception no rule foresaw (a bug of ours); the detail names it.
    INTERNAL = "internal"


DEAD_LETTER_REASONS: tuple[str, ...] = tuple(str(r) for r in DeadLetterReason)
