"""The HTTP API under /v1: registry, telemetry, aggregates, indicators, events, dead letters,
API keys. Exports load on first use: importing one of its modules (as the CLI does for
keys) does not load the web framework."""

from __future__ import annotations

from core.lazy import lazy_exports

_EXPORTS = {
    "ApiError": "api.errors",
    "DatabaseUnavailableError": "api.errors",
    "InvalidQueryError": "api.errors",
    "NotFoundError": "api.errors",
    "Principal": "api.keys",
    "Role": "api.keys",
    "create_app": "api.main",
    "create_key": "api.keys",
    "open_pool": "api.main",
}
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
__getattr__ = lazy_exports(__name__, _EXPORTS)
