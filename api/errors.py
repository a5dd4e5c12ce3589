"""Errors of the HTTP API; ``main`` renders each as a JSON response with its status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base class: a request that cannot be answered as asked."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ApiError):
    """The resource named in the path does not exist (404)."""

    status_code = 404


class InvalidQueryError(ApiError):
    """A query parameter is well-formed for FastAPI but breaks a rule of ours (422).

    Rendered in FastAPI's validation-error shape, so clients parse one format:
    ``param`` is the parameter's name, ``rule`` a short machine-readable reason.
    """

    status_code = 422

    def __init__(self, param: str, message: str, *, rule: str, value: Any = None) -> None:
        super().__init__(message)
        self.param = param
        self.rule = rule
        self.value = value

    def detail(self) -> list[dict[str, Any]]:
        return [
            {
                "loc": ["query", self.param],
                "msg": self.message,
                "type": self.rule,
                "input": None if self.value is None else str(self.value),
            }
        ]


class DatabaseUnavailableError(ApiError):
    """The database cannot be reached, at start-up or for a request (503)."""

    status_code = 503
