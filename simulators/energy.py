"""Source-grid-load-storage nodes: PV (and some wind), a site load, a battery, the grid.

PV follows the sun's elevation with passing clouds; the load follows the site
type (industrial park, public building, commercial, residential) and the day of
the week; the battery charges from surplus PV and discharges at the evening peak
(17:00-21:00 local) within its power rating and SoC limits; ``grid_kw`` closes
the balance exactly: ``pv + wind + grid + storage = load`` (``storage_kw``
positive when discharging, ``grid_kw`` positive when importing).
"""

from __future__ import annotations

import math
from typing import Any

from schemas.registry import Device, SiteType
from simulators.device import DeviceSimulator
from simulators.profiles import CityClock

SOC_MIN_PCT = 10.0
SOC_MAX_PCT = 95.0
C_RATE = 0.5  # battery power rating: half its capacity per hour
EVENING_PEAK_H = (17.0, 21.0)
PV_DERATE = 0.85


def load_shape(site_type: SiteType, hour: float, weekend: bool) -> float:
    """Site load relative to its peak (0..1)."""

    def bump(centre: float, width: float) -> float:
        return math.exp(-(((hour - centre) / width) ** 2))

    working = 1.0 if 8.0 <= hour < 18.0 else 0.0
    if site_type is SiteType.INDUSTRIAL_PARK:
        return (0.45 + 0.5 * working * (0.5 if weekend else 1.0)) * (1.0 - 0.1 * bump(12.3, 0.6))
    if site_type is SiteType.PUBLIC_BUILDING:
        return 0.2 + (0.15 if weekend else 0.75) * working * (1.0 - 0.15 * bump(12.3, 0.6))
    if site_type is SiteType.COMMERCIAL:
        open_ = 1.0 if 9.5 <= hour < 22.0 else 0.0
        return 0.25 + 0.55 * open_ + 0.2 * bump(19.5, 1.5) * (1.2 if weekend else 1.0)
    return 0.25 + 0.35 * bump(7.5, 1.0) + 0.55 * bump(20.0, 1.6)  # residential


class EnergySimulator(DeviceSimulator):
    firmware = "ems-1.8.2"

    def __init__(self, device: Device, clock: CityClock, seed: int, *, interval_s: float) -> None:
        super().__init__(device, clock, seed, interval_s=interval_s)
        rng = self.rng
        self.site_type = device.site_type or SiteType.COMMERCIAL
        self.pv_capacity_kw = device.pv_capacity_kw or 0.0
        self.storage_capacity_kwh = device.storage_capacity_kwh or 0.0
        self.storage_power_kw = C_RATE * self.storage_capacity_kwh
        self.wind_capacity_kw = (
            rng.uniform(50.0, 200.0)
            if self.site_type is SiteType.INDUSTRIAL_PARK and rng.random() < 0.3
            else 0.0
        )
        self.peak_load_kw = self.pv_capacity_kw * rng.uniform(0.7, 1.4) + 20.0
        self.soc_pct = rng.uniform(30.0, 70.0)
        self.cloud = 1.0  # share of clear-sky irradiance reaching the panels
        self.wind_speed = rng.uniform(2.0, 6.0)

    def _pv_kw(self, elevation_deg: float) -> float:
        rng = self.rng
        # Passing clouds: a shadow now and then, recovering over minutes.
        if rng.random() < self.interval_s / 1800.0:
            self.cloud = rng.uniform(0.2, 0.6)
        else:
            self.cloud += (1.0 - self.cloud) * min(1.0, self.interval_s / 240.0)
        if elevation_deg <= 0.0:
            return 0.0
        clear_sky = math.sin(math.radians(elevation_deg)) ** 1.15
        noise = rng.uniform(0.98, 1.02)
        return self.pv_capacity_kw * PV_DERATE * clear_sky * self.cloud * noise

    def _wind_kw(self) -> float:
        if not self.wind_capacity_kw:
            return 0.0
        rng = self.rng
        self.wind_speed = min(max(self.wind_speed + rng.gauss(0.0, 0.15), 0.0), 20.0)
        share = min(1.0, max(0.0, (self.wind_speed - 3.0) / 9.0)) ** 3
        return self.wind_capacity_kw * share

    def _storage_kw(self, surplus_kw: float, hour: float) -> float:
        """Battery power (+ discharging) within the rating and the SoC limits; updates SoC."""
        capacity = self.storage_capacity_kwh
        if capacity <= 0.0:
            return 0.0
        dt_h = self.interval_s / 3600.0
        if surplus_kw > 0.0:
            room_kw = (SOC_MAX_PCT - self.soc_pct) / 100.0 * capacity / dt_h
            power = -min(surplus_kw, self.storage_power_kw, max(room_kw, 0.0))
        elif EVENING_PEAK_H[0] <= hour < EVENING_PEAK_H[1]:
            stored_kw = (self.soc_pct - SOC_MIN_PCT) / 100.0 * capacity / dt_h
            power = min(-surplus_kw, self.storage_power_kw, max(stored_kw, 0.0))
        else:
            power = 0.0
        power = round(power, 3)
        self.soc_pct -= power * dt_h / capacity * 100.0
        self.soc_pct = min(max(self.soc_pct, SOC_MIN_PCT), SOC_MAX_PCT)
        return power

    def telemetry(self, ts_ms: int) -> dict[str, Any]:
        moment = self.clock.at(ts_ms)
        pv = round(self._pv_kw(moment.sun_elevation_deg), 3)
        wind = round(self._wind_kw(), 3)
        shape = load_shape(self.site_type, moment.local_hour, moment.weekend)
        load = round(self.peak_load_kw * shape * self.rng.uniform(0.96, 1.04), 3)
        storage = self._storage_kw(pv + wind - load, moment.local_hour)
        grid = round(load - pv - wind - storage, 3)
        out: dict[str, Any] = {"ts": None, "seq": None, "pv_kw": pv}
        if self.wind_capacity_kw:
            out["wind_kw"] = wind
        out["load_kw"] = load
        out["grid_kw"] = grid
        if self.storage_capacity_kwh:
            out["storage_kw"] = storage
            out["soc_pct"] = round(self.soc_pct, 2)
        return out

    def bad_types(self) -> dict[str, Any]:
        return {"pv_kw": "sunny", "load_kw": {"value": 12}, "grid_kw": True}

    def out_of_range(self) -> dict[str, Any]:
        return {"pv_kw": -40.0, "soc_pct": 140.0, "load_kw": 12.5}
