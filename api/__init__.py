"""The HTTP API under /v1: registry, telemetry, aggregates, indicators, events, dead letters,
API keys."""

from api.errors import ApiError, DatabaseUnavailableError, InvalidQueryError, NotFoundError
from api.keys import Principal, Role, create_key
from api.main import create_app, open_pool

__all__ = [
    "ApiError",
    "DatabaseUnavailableError",
    "InvalidQueryError",
    "NotFoundError",
    "Principal",
    "Role",
    "create_app",
    "create_key",
    "open_pool",
]
