"""API keys, for admins: list, create (the key is shown once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel

from api import keys
from api.deps import Db, require
from api.errors import ConflictError, NotFoundError
from api.keys import Role
from api.params import KeyId, Text
from schemas.timestamps import format_rfc3339

router = APIRouter(prefix="/keys", tags=["keys"], dependencies=[Depends(require(Role.ADMIN))])
KeyIdPath = Annotated[KeyId, Path(description="The key's public id (8 hex characters).")]


class KeyOut(BaseModel):
    """A key as stored: never its secret."""

    id: str
    name: str | None
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> KeyOut:
        return cls.model_validate(dict(record))


class NewKey(KeyOut):
    """The created key; ``key`` is shown in this response only and never again."""

    key: str


class KeyRequest(BaseModel):
    role: Role
    name: Text | None = None


@router.get("")
async def list_keys(db: Db) -> list[KeyOut]:
    """Every key, oldest first, revoked ones included."""
    return [KeyOut.from_record(r) for r in await keys.list_keys(db)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(db: Db, request: KeyRequest) -> NewKey:
    """Create a key; the response holds the full key, which is not stored anywhere."""
    row, full = await keys.create_key(db, request.role, request.name)
    return NewKey(**KeyOut.from_record(row).model_dump(), key=full)


@router.delete(
    "/{key_id}",
    responses={404: {"description": "no such key"}, 409: {"description": "already revoked"}},
)
async def revoke_key(db: Db, key_id: KeyIdPath) -> KeyOut:
    """Revoke a key: from now on it authenticates nothing. Keys are never deleted."""
    row = await keys.revoke_key(db, key_id)
    if row is not None:
        return KeyOut.from_record(row)
    existing = await keys.fetch_key(db, key_id)
    if existing is None:
        raise NotFoundError(f"no API key {key_id!r}")
    revoked = format_rfc3339(existing["revoked_at"])
    raise ConflictError(f"API key {key_id!r} was already revoked at {revoked}")
