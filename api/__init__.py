"""The HTTP API: registry, telemetry series and aggregates, events, dead letters."""

from api.errors import ApiError, DatabaseUnavailableError, InvalidQueryError, NotFoundError
from api.main import create_app, open_pool

__all__ = [
    "ApiError",
    "DatabaseUnavailableError",
    "InvalidQueryError",
    "NotFoundError",
    "create_app",
    "open_pool",
]
