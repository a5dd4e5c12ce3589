"""Mosquitto's password file, written in Python, and files only their owner may read.

Mosquitto 2.0 reads password lines ``user:$7$<iterations>$<base64 salt>$<base64 hash>``:
PBKDF2-HMAC-SHA512 of the password with that salt, as ``mosquitto_passwd`` writes them
(12-byte salt, 64-byte hash, 101 iterations by default). Writing them here needs no
``mosquitto_passwd`` on the machine; ``tests/test_broker_identities.py`` checks a real
broker accepts them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

# What mosquitto_passwd 2.0 uses. The passwords citytel generates are 192 random bits, so
# the hash needs no stretching to resist guessing, and Mosquitto pays it on every CONNECT.
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12
_HASH_BYTES = 64
_PBKDF2_PREFIX = "$7$"


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits), safe in an MQTT URL."""
    return secrets.token_urlsafe(24)


def hash_password(
    password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None
) -> str:
    """The ``$7$`` (PBKDF2-SHA512) hash Mosquitto 2.0 checks passwords against."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    return (
        f"{_PBKDF2_PREFIX}{iterations}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as Mosquitto would decide)."""
    if not hashed.startswith(_PBKDF2_PREFIX):
        return False
    try:
        iterations, salt, digest = hashed[len(_PBKDF2_PREFIX) :].split("$")
        expected = base64.b64decode(digest, validate=True)
        computed = hashlib.pbkdf2_hmac(
            "sha512",
            password.encode(),
            base64.b64decode(salt, validate=True),
            int(iterations),
            len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


def read_password_file(path: Path) -> dict[str, str]:
    """``user -> hash`` of a Mosquitto password file; empty when there is none."""
    if not path.exists():
        return {}
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user and not line.startswith("#"):
            entries[user] = hashed
    return entries


def password_file_text(hashes: Mapping[str, str]) -> str:
    """Lines ``user:hash``, sorted by user."""
    for user in hashes:
        if not user or ":" in user or "\n" in user:
            raise ValueError(f"{user!r} cannot be a Mosquitto user name")
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def write_password_file(path: Path, passwords: Mapping[str, str]) -> None:
    """A password file for ``user -> plain password`` (hashed here), mode 0600."""
    text = password_file_text({user: hash_password(pw) for user, pw in passwords.items()})
    write_private_file(path, text)


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only (0600) from the start.

    The file is created 0600 under a temporary name and renamed over ``path``, so no
    reader ever sees it half written or with wider permissions.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)  # regardless of the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
