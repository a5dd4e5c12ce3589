"""Errors of the collector."""

from __future__ import annotations


class IngestError(Exception):
    """Base class of the collector's errors."""


class DatabaseUnavailableError(IngestError):
    """The database cannot be reached; the batch is kept and retried."""


class RegistryImportError(IngestError):
    """A registry file has rows that do not validate; ``problems`` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} invalid registry rows")
        self.problems = problems


class CredentialsError(IngestError):
    """Broker credentials cannot be written as asked; ``problems`` names each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
