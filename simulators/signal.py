"""Traffic signal controllers: one per intersection.

Volumes carry the morning and evening peaks. Arterial intersections run
``coordinated`` (with an offset along the arterial), a configurable share of the
others ``adaptive``, the rest ``fixed_time`` or ``actuated``; some switch to
``flash`` late at night. Faults (codes of :data:`schemas.payloads.SIGNAL_FAULT_CODES`)
and mode changes are reported as events: a green conflict puts the controller
into flash until it clears, a detector failure drops adaptive/actuated control
to fixed time.
"""

from __future__ import annotations

from typing import Any

from schemas.payloads import SIGNAL_FAULT_CODES, SignalMode
from schemas.registry import Device
from simulators.device import DeviceSimulator
from simulators.profiles import CityClock

NIGHT_FLASH_START_H = 23.0
NIGHT_FLASH_END_H = 5.0
MEAN_DAYS_BETWEEN_FAULTS = 3.0
_FAULT_SEVERITY = {
    "green_conflict": "critical",
    "lamp_failure": "warning",
    "detector_failure": "warning",
    "comm_loss": "warning",
    "clock_drift": "info",
}
_STAGES = 4


def base_mode(device: Device, rng_value: float, adaptive_share: float) -> SignalMode:
    """The intersection's normal mode: arterials coordinate, a share runs adaptive."""
    if device.arterial:
        return SignalMode.COORDINATED
    if rng_value < adaptive_share:
        return SignalMode.ADAPTIVE
    if rng_value < adaptive_share + (1.0 - adaptive_share) * 0.6:
        return SignalMode.FIXED_TIME
    return SignalMode.ACTUATED


class SignalSimulator(DeviceSimulator):
    firmware = "tsc-4.1.0"

    def __init__(
        self,
        device: Device,
        clock: CityClock,
        seed: int,
        *,
        interval_s: float,
        adaptive_share: float = 0.35,
    ) -> None:
        super().__init__(device, clock, seed, interval_s=interval_s)
        rng = self.rng
        self.normal_mode = base_mode(device, rng.random(), adaptive_share)
        self.night_flash = not device.arterial and rng.random() < 0.2
        self.capacity_vph = rng.uniform(2400.0, 6000.0) * (1.4 if device.arterial else 1.0)
        self.cycle_scale = rng.uniform(0.85, 1.15)
        self.offset_s = round(rng.uniform(0.0, 60.0), 1) if device.arterial else None
        self.mode: SignalMode | None = None  # set silently at the first report
        self.fault_code: str | None = None
        self.fault_until_ms = 0
        self.fault_p = interval_s / (MEAN_DAYS_BETWEEN_FAULTS * 86400.0)

    def _target_mode(self, hour: float) -> SignalMode:
        if self.fault_code == "green_conflict":
            return SignalMode.FLASH
        if self.night_flash and (hour >= NIGHT_FLASH_START_H or hour < NIGHT_FLASH_END_H):
            return SignalMode.FLASH
        if self.fault_code == "detector_failure" and self.normal_mode in (
            SignalMode.ADAPTIVE,
            SignalMode.ACTUATED,
        ):
            return SignalMode.FIXED_TIME
        return self.normal_mode

    def _step_faults(self, ts_ms: int) -> None:
        rng = self.rng
        if self.fault_code is not None:
            if ts_ms >= self.fault_until_ms:
                self.events.append(("fault_cleared", self.fault_code, "info", None))
                self.fault_code = None
        elif rng.random() < self.fault_p:
            code = rng.choice(SIGNAL_FAULT_CODES)
            self.fault_code = code
            self.fault_until_ms = ts_ms + rng.randint(5, 90) * 60000
            self.events.append(("fault", code, _FAULT_SEVERITY[code], f"{code} detected"))

    def telemetry(self, ts_ms: int) -> dict[str, Any]:
        rng = self.rng
        moment = self.clock.at(ts_ms)
        hour = moment.local_hour
        self._step_faults(ts_ms)
        mode = self._target_mode(hour)
        if self.mode is None:
            self.mode = mode
        elif mode is not self.mode:
            self.events.append(
                ("mode_change", f"{self.mode}_to_{mode}", "info", f"mode {self.mode} -> {mode}")
            )
            self.mode = mode
        out: dict[str, Any] = {"ts": None, "seq": None, "mode": mode.value}
        expected = self.capacity_vph * moment.traffic * self.interval_s / 3600.0
        volume = max(0, round(rng.gauss(expected, expected**0.5 + 0.3)))
        ratio = volume / (self.capacity_vph * self.interval_s / 3600.0)
        if mode is SignalMode.FLASH:
            out.update(plan_no=0, cycle_s=None, stage=None)
        else:
            plan_no, cycle = _plan(hour, moment.weekend)
            cycle_s = round(cycle * self.cycle_scale)
            offset = self.offset_s or 0.0
            stage = int(((ts_ms / 1000.0 + offset) % cycle_s) / cycle_s * _STAGES)
            out.update(plan_no=plan_no, cycle_s=float(cycle_s), stage=stage)
        if self.offset_s is not None:
            out["offset_s"] = self.offset_s
        out["volume"] = volume
        out["occupancy_pct"] = round(min(95.0, 3.0 + 70.0 * ratio**1.5 + rng.uniform(0, 2)), 1)
        out["queue_m"] = round(max(0.0, 250.0 * (ratio - 0.35) + rng.gauss(0, 4)), 1)
        return out

    def bad_types(self) -> dict[str, Any]:
        return {"mode": 42, "volume": "heavy", "cycle_s": "long"}

    def out_of_range(self) -> dict[str, Any]:
        return {"mode": "turbo", "occupancy_pct": 250.0, "volume": -3}


def _plan(hour: float, weekend: bool) -> tuple[int, float]:
    """(plan number, nominal cycle length in s) by time of day."""
    if hour < 6.0 or hour >= 22.0:
        return 1, 60.0
    if not weekend and 7.0 <= hour < 9.0:
        return 3, 140.0
    if 17.0 <= hour < 19.0:
        return 4, 150.0
    return 2, 100.0
