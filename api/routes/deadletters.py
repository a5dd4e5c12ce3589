"""Dead letters: messages the collector refused, with why, for operators."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from api import queries
from api.deps import Db, Settings, require
from api.keys import Role
from api.params import Instant
from core.settings import IngestSettings
from ingest.deadletters import replay_dead_letters, replay_policy
from schemas.reasons import DeadLetterReason

router = APIRouter(prefix="/deadletters", tags=["deadletters"])

Reason = DeadLetterReason  # the dead_letters table's CHECK constraint, from the contract
MAX_LETTERS = 500
MAX_REPLAY = 100_000
PAYLOAD_SHOWN_BYTES = 64 * 1024
SinceQuery = Annotated[
    Instant | None, Query(description="Only letters received at or after, RFC 3339.")
]


class DeadLetter(BaseModel):
    """One refused message. The payload is shown up to 64 KiB: base64 always,
    as text too when those bytes are UTF-8; ``payload_size`` is the full size."""

    id: int
    received_at: datetime
    topic: str
    reason: str
    detail: str | None
    device_id: str | None
    replayed_at: datetime | None
    payload_size: int
    payload_truncated: bool
    payload_base64: str
    payload_text: str | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> DeadLetter:
        payload: bytes = record["payload"]
        return cls(
            id=record["id"],
            received_at=record["received_at"],
            topic=record["topic"],
            reason=record["reason"],
            detail=record["detail"],
            device_id=record["device_id"],
            replayed_at=record["replayed_at"],
            payload_size=record["size"],
            payload_truncated=record["size"] > len(payload),
            payload_base64=base64.b64encode(payload).decode("ascii"),
            payload_text=_utf8_or_none(payload),
        )


class ReasonCount(BaseModel):
    reason: str
    count: int
    not_replayed: int
    first_received_at: datetime
    last_received_at: datetime


class DeadLetterSummary(BaseModel):
    total: int
    reasons: list[ReasonCount]


class ReplayRequest(BaseModel):
    """Which dead letters to replay, oldest first: by reason and receipt time, at most
    ``limit`` of them, decoded ``chunk`` at a time."""

    reason: Reason | None = None
    since: Instant | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_REPLAY)] = 10_000
    chunk: Annotated[int, Field(ge=1, le=10_000)] = 1000


class ReplayReport(BaseModel):
    """``examined`` letters, of which ``ingested`` now passed; the others by new reason."""

    examined: int
    ingested: int
    still_refused: dict[str, int]


def _utf8_or_none(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


@router.get("")
async def list_dead_letters(
    db: Db,
    reason: Reason | None = None,
    since: SinceQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LETTERS)] = 50,
) -> list[DeadLetter]:
    """Newest first, filtered by reason and receipt time."""
    rows = await queries.list_dead_letters(
        db, reason=reason, since=since, limit=limit, payload_max_bytes=PAYLOAD_SHOWN_BYTES
    )
    return [DeadLetter.from_record(r) for r in rows]


@router.get("/summary")
async def summarize_dead_letters(db: Db, since: SinceQuery = None) -> DeadLetterSummary:
    """How many letters per reason, most frequent first."""
    rows = await queries.summarize_dead_letters(db, since=since)
    reasons = [ReasonCount.model_validate(dict(r)) for r in rows]
    return DeadLetterSummary(total=sum(r.count for r in reasons), reasons=reasons)


@router.post("/replay", dependencies=[Depends(require(Role.OPERATOR))])
async def replay(
    settings: Settings, request: Annotated[ReplayRequest | None, Body()] = None
) -> ReplayReport:
    """Re-validate dead letters with the collector's default checks and ingest those that
    now pass (after a registry or contract fix), exactly once."""
    ask = request or ReplayRequest()
    collector = IngestSettings.model_construct()  # the collector's defaults, not the env
    report = await replay_dead_letters(
        str(settings.require_database_url()),
        policy=replay_policy(collector),
        unknown_devices=collector.ingest_unknown_devices,
        reason=str(ask.reason) if ask.reason else None,
        since=ask.since,
        chunk=ask.chunk,
        limit=ask.limit,
    )
    return ReplayReport(
        examined=report.examined, ingested=report.ingested, still_refused=report.still_refused
    )
