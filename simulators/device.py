"""What every simulated device has: identity, topics, its own random stream, counters."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from schemas.registry import Device
from schemas.topics import Channel, build_topic
from simulators.manifest import ChannelCounts
from simulators.profiles import CityClock


class DeviceSimulator:
    """Base of the per-kind simulators.

    ``telemetry(ts_ms)`` advances the device's state to ``ts_ms`` and returns the
    measurement fields of one telemetry object, with ``ts`` and ``seq`` keys first
    (left ``None`` for the runner to fill). Events the step produced are appended
    to ``events`` as ``(type, code, severity, message)`` and taken by the runner.
    """

    firmware: ClassVar[str] = "1.0.0"

    def __init__(self, device: Device, clock: CityClock, seed: int, *, interval_s: float) -> None:
        self.device = device
        self.device_id = device.device_id
        self.clock = clock
        self.interval_s = interval_s
        # One stream for the physics, one for the faults: fault flags never change values.
        self.rng = random.Random(f"{seed}:{device.device_id}")
        self.fault_rng = random.Random(f"{seed}:{device.device_id}:faults")
        self.phase_ms = self.rng.randrange(int(interval_s * 1000))
        self.epoch_ms_ts = self.rng.random() < 0.1
        self.seq = 0
        self.shard = 0  # which shared connection publishes for the device
        self.events: list[tuple[str, str, str, str | None]] = []
        self.topics = {
            channel: build_topic(device.city, device.kind, device.device_id, channel).encode()
            for channel in Channel
        }
        self.counts = {channel: ChannelCounts() for channel in Channel}
        # Fault episodes (simulated epoch ms); 0 when not in one.
        self.offline_until_ms = 0
        self.late_until_ms = 0
        self.late_buffer: list[tuple[bytes, bytes, Channel]] = []

    def telemetry(self, ts_ms: int) -> dict[str, Any]:
        raise NotImplementedError

    def bad_types(self) -> dict[str, Any]:
        """Fields of the right names with values of the wrong type (a ``schema`` dead letter)."""
        raise NotImplementedError

    def out_of_range(self) -> dict[str, Any]:
        """Fields whose values break the contract's bounds (a ``schema`` dead letter)."""
        raise NotImplementedError
