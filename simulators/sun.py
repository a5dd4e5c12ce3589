"""Where the sun is: NOAA's solar position equations, accurate to about a minute.

``sun_times(lat, lon, day)`` gives sunrise and sunset (upper limb at the horizon,
with standard refraction: zenith 90.833°) as aware UTC datetimes, and
``solar_elevation_deg(lat, lon, epoch_s)`` the geometric elevation of the sun's
centre. Longitudes are east-positive. The equations are those of the NOAA Solar
Calculator spreadsheet (after Meeus, *Astronomical Algorithms*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_SUNRISE_ZENITH_DEG = 90.833
_UNIX_EPOCH_JD = 2440587.5
_J2000_JD = 2451545.0


@dataclass(frozen=True, slots=True)
class SunTimes:
    """Sunrise and sunset of one local day; ``None`` in polar day or night."""

    sunrise: datetime | None
    sunset: datetime | None
    solar_noon: datetime


def _declination_and_eot(epoch_s: float) -> tuple[float, float]:
    """Solar declination (degrees) and equation of time (minutes) at an instant."""
    jc = (epoch_s / 86400.0 + _UNIX_EPOCH_JD - _J2000_JD) / 36525.0
    mean_long = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m = math.radians(mean_anom)
    centre = (
        math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + math.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + math.sin(3 * m) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * jc)
    apparent_long = mean_long + centre - 0.00569 - 0.00478 * math.sin(omega)
    mean_obliquity = (
        23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    )
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(omega))
    declination = math.degrees(
        math.asin(math.sin(obliquity) * math.sin(math.radians(apparent_long)))
    )
    y = math.tan(obliquity / 2.0) ** 2
    l0 = math.radians(mean_long)
    eot = 4.0 * math.degrees(
        y * math.sin(2 * l0)
        - 2 * ecc * math.sin(m)
        + 4 * ecc * y * math.sin(m) * math.cos(2 * l0)
        - 0.5 * y * y * math.sin(4 * l0)
        - 1.25 * ecc * ecc * math.sin(2 * m)
    )
    return declination, eot


def solar_elevation_deg(lat: float, lon: float, epoch_s: float) -> float:
    """Geometric elevation of the sun's centre above the horizon, in degrees."""
    declination, eot = _declination_and_eot(epoch_s)
    utc_minutes = (epoch_s % 86400.0) / 60.0
    true_solar_minutes = (utc_minutes + eot + 4.0 * lon) % 1440.0
    hour_angle = math.radians(true_solar_minutes / 4.0 - 180.0)
    phi, delta = math.radians(lat), math.radians(declination)
    cos_zenith = math.sin(phi) * math.sin(delta) + math.cos(phi) * math.cos(delta) * math.cos(
        hour_angle
    )
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def sun_times(lat: float, lon: float, day: date) -> SunTimes:
    """Sunrise, sunset and solar noon at ``lat``/``lon`` on the calendar ``day``.

    ``day`` is the date at the place (its local solar day); results are UTC.
    Each event is computed twice, the second time with the sun's position at the
    first estimate, as the NOAA calculator does.
    """
    midnight_utc = datetime(day.year, day.month, day.day, tzinfo=UTC)
    base_s = midnight_utc.timestamp()
    # Local mean noon of the place, in minutes after 00:00 UTC of `day`.
    guess = 720.0 - 4.0 * lon
    _, eot = _declination_and_eot(base_s + guess * 60.0)
    noon_min = 720.0 - 4.0 * lon - eot
    _, eot = _declination_and_eot(base_s + noon_min * 60.0)
    noon_min = 720.0 - 4.0 * lon - eot
    events: list[datetime | None] = []
    for sign in (-1.0, 1.0):
        minutes: float | None = noon_min
        for _ in range(2):
            assert minutes is not None
            declination, eot = _declination_and_eot(base_s + minutes * 60.0)
            half_day = _hour_angle_deg(lat, declination)
            if half_day is None:
                minutes = None
                break
            minutes = 720.0 - 4.0 * lon - eot + sign * 4.0 * half_day
        events.append(None if minutes is None else midnight_utc + timedelta(minutes=minutes))
    return SunTimes(events[0], events[1], midnight_utc + timedelta(minutes=noon_min))


def _hour_angle_deg(lat: float, declination: float) -> float | None:
    phi, delta = math.radians(lat), math.radians(declination)
    cos_h = math.cos(math.radians(_SUNRISE_ZENITH_DEG)) / (
        math.cos(phi) * math.cos(delta)
    ) - math.tan(phi) * math.tan(delta)
    if not -1.0 <= cos_h <= 1.0:
        return None
    return math.degrees(math.acos(cos_h))
