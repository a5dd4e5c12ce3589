"""API keys: the key format, roles, salted hashes, and the ``api_keys`` table.

A key reads ``ctk_<id>_<secret>``: ``id`` is 8 hex characters (public: it names the key
in listings and logs), ``secret`` 32 random bytes in URL-safe base64. The table keeps the
id, a random 16-byte salt and HMAC-SHA256(salt, secret); the full key exists only in the
answer to its creation. The API (``api.deps``) and the CLI (``citytel keys``) both use
this module, so a key is made and checked in one way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

KEY_PREFIX = "ctk"
KEY_ID_PATTERN = r"[0-9a-f]{8}"
_SECRET_BYTES = 32
_SALT_BYTES = 16
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_({KEY_ID_PATTERN})_([A-Za-z0-9_-]{{43,128}})$")
_CREATE_ATTEMPTS = 5
TOUCH_INTERVAL_S = 60.0

_COLUMNS = "id, name, role, created_at, last_used_at, revoked_at"


class Role(StrEnum):
    """What a key may do; each role can do everything of the ones before it."""

    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # + registry writes, indicator targets, dead-letter replay
    ADMIN = "admin"  # + key management

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a client sent it, split into its parts."""

    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key that authenticated the request."""

    key_id: str
    name: str | None
    role: Role


def generate_key() -> tuple[PresentedKey, str]:
    """A fresh key: its parts, and the full text shown once to whoever asked for it."""
    key = PresentedKey(secrets.token_hex(4), secrets.token_urlsafe(_SECRET_BYTES))
    return key, f"{KEY_PREFIX}_{key.key_id}_{key.secret}"


def parse_key(text: str) -> PresentedKey | None:
    """The parts of ``text``, or None when it is not shaped like one of our keys."""
    match = _KEY_RE.match(text.strip())
    return None if match is None else PresentedKey(match[1], match[2])


def hash_secret(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def verify_secret(salt: bytes, secret_hash: bytes, secret: str) -> bool:
    """Whether ``secret`` hashes to ``secret_hash``, compared in constant time."""
    return hmac.compare_digest(hash_secret(salt, secret), secret_hash)


async def create_key(
    conn: asyncpg.Connection, role: Role, name: str | None = None
) -> tuple[asyncpg.Record, str]:
    """Store a new key; return its row and the full key, which is never stored."""
    for _ in range(_CREATE_ATTEMPTS):
        key, full = generate_key()
        salt = secrets.token_bytes(_SALT_BYTES)
        row = await conn.fetchrow(
            "INSERT INTO api_keys (id, name, role, salt, secret_hash)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
            f" RETURNING {_COLUMNS}",
            key.key_id,
            name,
            str(role),
            salt,
            hash_secret(salt, key.secret),
        )
        if row is not None:
            return row, full
    raise RuntimeError(f"no free key id after {_CREATE_ATTEMPTS} attempts")


async def list_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every key, oldest first, revoked ones included; never a secret."""
    return list(await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id"))


async def fetch_key(conn: asyncpg.Connection, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id)


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> asyncpg.Record | None:
    """Revoke a key that is not revoked yet; None when there is no such active key."""
    return await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
        f" RETURNING {_COLUMNS}",
        key_id,
    )


async def authenticate_key(conn: asyncpg.Connection, key: PresentedKey) -> Principal | None:
    """The principal of an active key whose secret matches; None otherwise."""
    row = await conn.fetchrow(
        "SELECT name, role, salt, secret_hash FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
        key.key_id,
    )
    if row is None or not verify_secret(row["salt"], row["secret_hash"], key.secret):
        return None
    return Principal(key.key_id, row["name"], Role(row["role"]))


class UsageRecorder:
    """Records when each key was last used, at most once per ``interval_s`` per key.

    The in-process throttle keeps a busy key from costing an UPDATE per request; the
    SQL condition keeps several API processes from each writing it every minute.
    """

    def __init__(self, interval_s: float = TOUCH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    async def record(self, conn: asyncpg.Connection, key_id: str) -> None:
        now = time.monotonic()
        last = self._last.get(key_id)
        if last is not None and now - last < self.interval_s:
            return
        self._last[key_id] = now
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1"
            " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
            key_id,
            self.interval_s,
        )
