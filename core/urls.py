"""Value types for the two URLs every part shares: the database DSN and the broker URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import BeforeValidator, PlainSerializer

PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "password", "secret", "example", "placeholder", "xxx"}
)


def _split(url: str, schemes: tuple[str, ...], what: str) -> Any:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"{what} must start with {' or '.join(s + '://' for s in schemes)}")
    # libpq also takes the host (or a Unix socket folder) as a ``host=`` query parameter.
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise ValueError(f"{what} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{what} has an invalid port") from exc
    return parts, port


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """``postgresql://user:pass@host:port/db``."""

    url: str

    def __post_init__(self) -> None:
        parts, _ = _split(self.url, ("postgresql", "postgres"), "database URL")
        if not parts.path.strip("/"):
            raise ValueError("database URL names no database (…/dbname)")

    @property
    def password(self) -> str | None:
        password = urlsplit(self.url).password
        return unquote(password) if password else None

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.strip("/")

    def with_database(self, database: str) -> DatabaseUrl:
        parts = urlsplit(self.url)
        return DatabaseUrl(parts._replace(path="/" + quote(database)).geturl())

    def masked(self) -> str:
        return _mask(self.url)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """``mqtt://user:pass@host:port`` or ``mqtts://`` for TLS."""

    url: str

    def __post_init__(self) -> None:
        _split(self.url, ("mqtt", "mqtts"), "MQTT URL")

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def username(self) -> str | None:
        user = urlsplit(self.url).username
        return unquote(user) if user else None

    @property
    def password(self) -> str | None:
        password = urlsplit(self.url).password
        return unquote(password) if password else None

    def masked(self) -> str:
        return _mask(self.url)

    def __str__(self) -> str:
        return self.url


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _coerce(cls: type[Any]) -> Any:
    def validate(value: Any) -> Any:
        if isinstance(value, cls) or value is None:
            return value
        if not isinstance(value, str):
            raise ValueError("must be a URL string")
        return cls(value)

    return validate


DatabaseUrlField = Annotated[
    DatabaseUrl, BeforeValidator(_coerce(DatabaseUrl)), PlainSerializer(str, return_type=str)
]
MqttUrlField = Annotated[
    MqttUrl, BeforeValidator(_coerce(MqttUrl)), PlainSerializer(str, return_type=str)
]


def is_placeholder(secret: str | None) -> bool:
    return secret is not None and secret.strip("<>{}$ ").lower() in PLACEHOLDER_SECRETS
