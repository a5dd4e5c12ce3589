"""Errors of the shared plumbing."""

from __future__ import annotations


class CitytelError(Exception):
    """Base class of citytel's own errors."""


class ConfigError(CitytelError):
    """Configuration is invalid; ``problems`` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
