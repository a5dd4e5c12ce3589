"""One module per resource, each with a ``router``; ``api.main`` includes them all."""

__all__ = ["deadletters", "devices", "events", "health", "indicators", "series"]
