"""One module per resource, each with a ``router``; ``api.main`` mounts them under /v1
(``health`` stays at the root)."""

__all__ = [
    "aggregates",
    "deadletters",
    "devices",
    "events",
    "health",
    "indicators",
    "keys",
    "series",
]
