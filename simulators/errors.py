"""Errors of the simulators."""

from __future__ import annotations

from core.errors import CitytelError


class SimulatorError(CitytelError):
    """Base class of the simulators' errors."""


class OptionsError(SimulatorError):
    """Simulation options that cannot work together (e.g. ``--to`` before ``--from``)."""


class PublishError(SimulatorError):
    """The broker refused the connection or could not be reached within the timeout."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(f"{message} ({host}:{port})")
        self.host = host
        self.port = port
