"""Daily and seasonal profiles shared by a city's devices, cached per minute.

Every device of a city asks the same questions about an instant (is it dark,
what hour is it locally, how busy is the traffic, how high is the sun); the
answers change slowly, so :class:`CityClock` computes them once per minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

from simulators.cities import City
from simulators.sun import solar_elevation_deg, sun_times

_DAY_S = 86400
NIGHT_DIM_START_H = 23.0
NIGHT_DIM_END_H = 5.0


@dataclass(frozen=True, slots=True)
class Moment:
    """What every device of the city shares at one minute."""

    local_hour: float
    weekend: bool
    day_of_year: int
    dark: bool
    night_dim: bool
    sun_elevation_deg: float
    traffic: float
    people: float


def traffic_level(hour: float, weekend: bool) -> float:
    """Relative traffic, about 1.0 at the evening peak: morning and evening rush hours."""
    day = 0.12 + 0.43 * _smooth_step(hour, 5.5, 8.0) * (1.0 - _smooth_step(hour, 21.0, 24.0))
    morning = math.exp(-(((hour - 7.9) / 0.8) ** 2))
    evening = math.exp(-(((hour - 17.9) / 1.0) ** 2))
    if weekend:
        return day * 0.85 + 0.15 * morning + 0.3 * evening
    return day + 0.42 * morning + 0.45 * evening


def people_level(hour: float) -> float:
    """Relative small-cell users: few at night, busy by day, highest in the evening."""
    day = _smooth_step(hour, 6.0, 9.0) * (1.0 - _smooth_step(hour, 22.0, 25.0))
    return 0.08 + 0.62 * day + 0.3 * math.exp(-(((hour - 20.0) / 2.0) ** 2))


def _smooth_step(x: float, start: float, end: float) -> float:
    if x <= start:
        return 0.0
    if x >= end:
        return 1.0
    t = (x - start) / (end - start)
    return t * t * (3 - 2 * t)


class CityClock:
    """Per-minute :class:`Moment` of one city; sunrise/sunset cached per local day."""

    def __init__(self, city: City) -> None:
        self.city = city
        self._minute = -1
        self._moment: Moment | None = None
        self._sun_by_day: dict[int, tuple[float, float]] = {}

    def at(self, ts_ms: int) -> Moment:
        minute = ts_ms // 60000
        if minute != self._minute or self._moment is None:
            self._moment = self._compute(minute * 60)
            self._minute = minute
        return self._moment

    def sun_window(self, local_day: int) -> tuple[float, float]:
        """(sunrise, sunset) of a local day (days since 1970-01-01 local), epoch seconds."""
        window = self._sun_by_day.get(local_day)
        if window is None:
            day = date(1970, 1, 1) + timedelta(days=local_day)
            times = sun_times(self.city.lat, self.city.lon, day)
            rise = times.sunrise.timestamp() if times.sunrise else float("inf")
            set_ = times.sunset.timestamp() if times.sunset else float("-inf")
            window = (rise, set_)
            self._sun_by_day[local_day] = window
        return window

    def is_dark(self, epoch_s: float) -> bool:
        """Between the city's sunset and the next sunrise (lights on)."""
        local_day = int((epoch_s + self.city.utc_offset_s) // _DAY_S)
        rise, set_ = self.sun_window(local_day)
        return epoch_s < rise or epoch_s >= set_

    def _compute(self, epoch_s: int) -> Moment:
        local_s = epoch_s + self.city.utc_offset_s
        hour = (local_s % _DAY_S) / 3600.0
        local_day = local_s // _DAY_S
        weekend = (local_day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        day_of_year = _day_of_year(local_day)
        return Moment(
            local_hour=hour,
            weekend=weekend,
            day_of_year=day_of_year,
            dark=self.is_dark(epoch_s),
            night_dim=hour >= NIGHT_DIM_START_H or hour < NIGHT_DIM_END_H,
            sun_elevation_deg=solar_elevation_deg(self.city.lat, self.city.lon, epoch_s + 30),
            traffic=traffic_level(hour, weekend),
            people=people_level(hour),
        )


def _day_of_year(local_day: int) -> int:
    return (date(1970, 1, 1) + timedelta(days=local_day)).timetuple().tm_yday


def seasonal_temp_c(day_of_year: int, hour: float) -> float:
    """North China plain: about -1 °C in mid January, 27 °C in mid July; warmest at 15:00."""
    mean = 13.5 - 14.0 * math.cos(2 * math.pi * (day_of_year - 15) / 365.0)
    return mean + 5.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def pm25_season_factor(day_of_year: int) -> float:
    """Heating season (Nov-Mar) raises particulates; summer rain lowers them."""
    return 1.0 + 0.45 * math.cos(2 * math.pi * (day_of_year - 15) / 365.0)
