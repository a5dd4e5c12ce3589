"""Errors raised by the contract layer."""

from __future__ import annotations


class ContractError(ValueError):
    """Base class: a message or record does not satisfy the device contract."""

    reason = "schema"


class TopicError(ContractError):
    """The MQTT topic does not match ``citytel/v1/{city}/{kind}/{device_id}/{channel}``."""

    reason = "bad_topic"


class MigrationError(RuntimeError):
    """A schema migration could not be applied."""
