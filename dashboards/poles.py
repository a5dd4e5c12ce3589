"""Smart poles: lighting, air quality and noise by district, availability."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, table
from dashboards.overview import POLES_ONLINE
from dashboards.sql import CITY, DISTRICT, by_area, district_label, in_scope
from schemas.topics import Kind

# GB 3095-2012 grade II 24-hour limits, µg/m³ (the PM2.5 one is the indicator's).
PM25_LIMIT = 75.0
PM10_LIMIT = 150.0


EXCEEDANCE_HOURS = f"""\
SELECT s.city, {district_label("s.district")} AS district,
       v.numerator AS "exceedance hours", v.denominator AS "hours with PM2.5"
FROM (SELECT DISTINCT d.city, coalesce(d.district, '') AS district
      FROM devices d WHERE d.kind = 'pole' AND {in_scope("d")}) AS s
CROSS JOIN LATERAL citytel_indicator('pole_pm25_exceedance_hours', s.city, s.district,
                                     $__timeFrom(), $__timeTo(), 'day') AS v
WHERE v.is_total AND v.denominator > 0
ORDER BY 3 DESC, 1, 2"""

POLE_ONLINE_BY_DISTRICT = f"""\
SELECT city, {district_label("district")} AS district, poles, online, online_pct AS "online %"
FROM pole_online_rate_by_district
WHERE {in_scope("pole_online_rate_by_district")}
ORDER BY city, district"""


def _under_limit(name: str, stat_name: str, limit: float) -> Panel:
    return Panel(
        f"{name} by district",
        by_area(Kind.POLE, stat_name),
        unit="conμgm3",
        description=f"Mean of the district's {name} readings. Dashed: the GB 3095-2012 grade "
        "II 24-hour limit.",
        thresholds=(("green", None), ("red", limit)),
        dashed_thresholds=True,
    )


POLES = Dashboard(
    uid="citytel-poles",
    title="citytel / Smart poles",
    description="Street lighting, air quality and noise by district; pole availability.",
    variables=(CITY, DISTRICT),
    panels=(
        Panel(
            "Lamp-on rate by district",
            by_area(Kind.POLE, "lamp_on_share"),
            unit="percentunit",
            description="Lamp readings with the lamp on / lamp readings, from the area rollups.",
            min_value=0,
            max_value=1,
        ),
        Panel(
            "Lighting energy by district",
            by_area(Kind.POLE, "lamp_energy_kwh"),
            unit="kwatth",
            description="Σ lamp_power_w × the pole's interval_s per bucket (area rollups).",
            stacking="normal",
            bars=True,
        ),
        _under_limit("PM2.5", "pm25_avg_ugm3", PM25_LIMIT),
        _under_limit("PM10", "pm10_avg_ugm3", PM10_LIMIT),
        Panel(
            "Noise by district",
            by_area(Kind.POLE, "noise_avg_dba"),
            unit="dB",
            description="Mean of the district's noise readings, dB(A).",
        ),
        table(
            "PM2.5 exceedance hours by district",
            EXCEEDANCE_HOURS,
            description="citytel_indicator('pole_pm25_exceedance_hours', city, district, ...) "
            "over the range (whole local days): hours whose mean PM2.5 exceeded 75 µg/m³.",
        ),
        POLES_ONLINE,
        table(
            "Poles online by district",
            POLE_ONLINE_BY_DISTRICT,
            description="View pole_online_rate_by_district.",
            width=16,
        ),
    ),
)
