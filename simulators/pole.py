"""Multi-function smart poles: street light, environment sensors, 5G small cell, camera.

The lamp lights at the city's sunset and goes dark at sunrise, runs dimmed
(50 %) from 23:00 to 05:00 local time, and its power follows the dimming;
``energy_kwh`` is the lamp's cumulative meter. PM2.5/PM10 and noise follow the
daily cycle and the traffic; small-cell users follow the day.
"""

from __future__ import annotations

import math
from typing import Any

from schemas.registry import Device, PoleFunction
from simulators.device import DeviceSimulator
from simulators.profiles import CityClock, pm25_season_factor, seasonal_temp_c

NIGHT_DIM_PCT = 50.0
LAMP_RATINGS_W = (60.0, 90.0, 120.0, 150.0, 200.0, 250.0)


class PoleSimulator(DeviceSimulator):
    firmware = "pole-2.3.1"

    def __init__(self, device: Device, clock: CityClock, seed: int, *, interval_s: float) -> None:
        super().__init__(device, clock, seed, interval_s=interval_s)
        rng = self.rng
        functions = set(device.functions)
        self.has_env = PoleFunction.ENVIRONMENT in functions
        self.has_cell = PoleFunction.SMALL_CELL in functions
        self.has_camera = PoleFunction.CAMERA in functions
        self.rated_w = rng.choice(LAMP_RATINGS_W)
        self.energy_kwh = rng.uniform(50.0, 5000.0)
        self.street_factor = rng.uniform(0.7, 1.3)  # busy streets are louder and dustier
        self.pm_noise = 0.0
        self.cell_capacity = rng.randint(40, 300)
        self.tilt_deg = rng.uniform(0.0, 1.5)
        self.door_open_until_ms = 0

    def lamp_state(self, ts_ms: int) -> tuple[bool, float]:
        """(lamp_on, dim_pct): on from sunset to sunrise, dimmed late at night."""
        if not self.clock.is_dark(ts_ms / 1000.0):
            return False, 0.0
        if self.clock.at(ts_ms).night_dim:
            return True, NIGHT_DIM_PCT
        return True, 100.0

    def telemetry(self, ts_ms: int) -> dict[str, Any]:
        rng = self.rng
        moment = self.clock.at(ts_ms)
        lamp_on, dim_pct = self.lamp_state(ts_ms)
        power_w = self.rated_w * dim_pct / 100.0 * rng.uniform(0.97, 1.03) if lamp_on else 0.0
        self.energy_kwh += power_w * self.interval_s / 3.6e6
        out: dict[str, Any] = {
            "ts": None,
            "seq": None,
            "lamp_on": lamp_on,
            "dim_pct": dim_pct,
            "lamp_power_w": round(power_w, 1),
            "energy_kwh": round(self.energy_kwh, 4),
        }
        if self.has_env:
            self._environment(out, moment.local_hour, moment.day_of_year, moment.traffic)
        if self.has_cell:
            mean = self.cell_capacity * moment.people
            out["cell_online"] = True
            out["cell_ues"] = max(0, round(rng.gauss(mean, mean**0.5 + 0.5)))
        if self.has_camera:
            out["camera_online"] = True
        out["tilt_deg"] = round(max(0.0, self.tilt_deg + rng.uniform(-0.05, 0.05)), 2)
        out["door_open"] = self._door(ts_ms)
        return out

    def _environment(self, out: dict[str, Any], hour: float, doy: int, traffic: float) -> None:
        rng = self.rng
        base = self.clock.city.pm25_base_ugm3 * pm25_season_factor(doy)
        # Particulates pile up in the calm night air and clear in the afternoon.
        daily = 1.0 + 0.25 * _cos_hour(hour, 4.0)
        self.pm_noise = 0.97 * self.pm_noise + rng.gauss(0.0, 1.2)
        pm25 = max(1.0, base * daily * (0.8 + 0.4 * traffic * self.street_factor) + self.pm_noise)
        out["pm25_ugm3"] = round(min(pm25, 999.0), 1)
        out["pm10_ugm3"] = round(min(pm25 * rng.uniform(1.5, 1.8), 1999.0), 1)
        noise = 40.0 + 28.0 * traffic * self.street_factor + rng.gauss(0.0, 1.5)
        out["noise_dba"] = round(min(max(noise, 30.0), 120.0), 1)
        temp = seasonal_temp_c(doy, hour) + rng.gauss(0.0, 0.3)
        out["temp_c"] = round(temp, 1)
        out["humidity_pct"] = round(
            min(max(62.0 - 1.5 * (temp - 13.5) + rng.gauss(0, 2), 8.0), 100.0), 1
        )

    def _door(self, ts_ms: int) -> bool:
        if self.door_open_until_ms:
            if ts_ms < self.door_open_until_ms:
                return True
            self.door_open_until_ms = 0
            self.events.append(("door", "door_closed", "info", "cabinet door closed"))
            return False
        # About one maintenance visit per pole per 60 days.
        if self.rng.random() < self.interval_s / (60 * 86400):
            self.door_open_until_ms = ts_ms + self.rng.randint(5, 40) * 60000
            self.events.append(("door", "door_open", "warning", "cabinet door opened"))
            return True
        return False

    def bad_types(self) -> dict[str, Any]:
        return {"lamp_on": "maybe", "dim_pct": "bright", "lamp_power_w": [1, 2]}

    def out_of_range(self) -> dict[str, Any]:
        return {"lamp_on": True, "dim_pct": 180.0, "noise_dba": -12.0}


def _cos_hour(hour: float, peak_hour: float) -> float:
    return math.cos(2 * math.pi * (hour - peak_hour) / 24.0)
