"""Sunrise, sunset and solar elevation against independently computed values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from simulators.cities import PILOT_CITIES
from simulators.sun import solar_elevation_deg, sun_times

CST = timezone(timedelta(hours=8))
JINAN = PILOT_CITIES["jinan"]

# Hand-computed with the USNO "Almanac for Computers" sunrise algorithm (zenith 90°50'),
# an independent method from the NOAA equations under test; local time, UTC+8.
USNO_JINAN = [
    (date(2026, 6, 21), (4, 53, 47), (19, 33, 44)),
    (date(2026, 12, 21), (7, 20, 12), (16, 59, 26)),
    (date(2026, 3, 20), (6, 16, 51), (18, 23, 12)),
]


def _local(day: date, hms: tuple[int, int, int]) -> datetime:
    return datetime(day.year, day.month, day.day, *hms, tzinfo=CST)


@pytest.mark.parametrize(("day", "sunrise", "sunset"), USNO_JINAN)
def test_sun_times_match_reference_for_jinan(
    day: date, sunrise: tuple[int, int, int], sunset: tuple[int, int, int]
) -> None:
    times = sun_times(JINAN.lat, JINAN.lon, day)
    assert times.sunrise is not None and times.sunset is not None
    assert abs(times.sunrise - _local(day, sunrise)) < timedelta(minutes=3)
    assert abs(times.sunset - _local(day, sunset)) < timedelta(minutes=3)


@pytest.mark.parametrize(
    ("day", "expected_deg"),
    # 90 - latitude ± obliquity (23.44°) at the solstices, 90 - latitude at the equinox.
    [(date(2026, 6, 21), 76.79), (date(2026, 12, 21), 29.91), (date(2026, 3, 20), 53.35)],
)
def test_solar_elevation_at_noon_matches_geometry(day: date, expected_deg: float) -> None:
    noon = sun_times(JINAN.lat, JINAN.lon, day).solar_noon
    assert abs(solar_elevation_deg(JINAN.lat, JINAN.lon, noon.timestamp()) - expected_deg) < 0.3
    # Local solar noon in Jinan (117°E) is about 12 minutes after 12:00 China time.
    assert abs(noon.astimezone(CST) - _local(day, (12, 12, 0))) < timedelta(minutes=10)


def test_solar_elevation_is_negative_at_midnight() -> None:
    midnight = datetime(2026, 6, 21, 0, 0, tzinfo=CST).astimezone(UTC)
    assert solar_elevation_deg(JINAN.lat, JINAN.lon, midnight.timestamp()) < -20
