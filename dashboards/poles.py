"""Smart poles: lighting, air quality and noise by district, availability."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel
from dashboards.overview import POLE_ONLINE_SHARE
from dashboards.sql import CITY, DISTRICT, area_label, district_label, in_scope, rollup_rows
from schemas.rollups import merge_sql
from schemas.topics import Kind

# GB 3095-2012 grade II 24-hour limits, µg/m³ (the PM2.5 one is the indicator's).
PM25_LIMIT = 75.0
PM10_LIMIT = 150.0


def by_district(stat: str) -> str:
    """``stat`` of the pole area rollups per city and district, merged as the rollups merge
    it; areas without a value in a bucket (no sensor of that kind) are left out."""
    return f"""\
WITH rollup AS (
{rollup_rows(Kind.POLE, stats=(stat,), columns=(f"{area_label()} AS area",))}
)
SELECT r.time, r.area AS metric, {merge_sql(Kind.POLE, stat, "r")} AS value
FROM rollup r
GROUP BY 1, 2
HAVING {merge_sql(Kind.POLE, stat, "r")} IS NOT NULL
ORDER BY 1, 2"""


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

_LIMIT = "Dashed: the GB 3095-2012 grade II 24-hour limit."

POLES = Dashboard(
    uid="citytel-poles",
    title="citytel / Smart poles",
    description="Street lighting, air quality and noise by district; pole availability.",
    variables=(CITY, DISTRICT),
    panels=(
        Panel(
            "Lamp-on rate by district",
            by_district("lamp_on_share"),
            unit="percentunit",
            description="Lamp readings with the lamp on / lamp readings, from the area rollups.",
            min_value=0,
            max_value=1,
        ),
        Panel(
            "Lighting energy by district",
            by_district("lamp_energy_kwh"),
            unit="kwatth",
            description="Σ lamp_power_w × the pole's interval_s per bucket (area rollups).",
            stacking="normal",
            bars=True,
        ),
        Panel(
            "PM2.5 by district",
            by_district("pm25_avg_ugm3"),
            unit="conμgm3",
            description="Mean of the district's PM2.5 readings. " + _LIMIT,
            thresholds=(("green", None), ("red", PM25_LIMIT)),
            dashed_thresholds=True,
        ),
        Panel(
            "PM10 by district",
            by_district("pm10_avg_ugm3"),
            unit="conμgm3",
            description="Mean of the district's PM10 readings. " + _LIMIT,
            thresholds=(("green", None), ("red", PM10_LIMIT)),
            dashed_thresholds=True,
        ),
        Panel(
            "Noise by district",
            by_district("noise_avg_dba"),
            unit="dB",
            description="Mean of the district's noise readings, dB(A).",
        ),
        Panel(
            "PM2.5 exceedance hours by district",
            EXCEEDANCE_HOURS,
            kind="table",
            format="table",
            description="citytel_indicator('pole_pm25_exceedance_hours', city, district, ...) "
            "over the range (whole local days): hours whose mean PM2.5 exceeded 75 µg/m³.",
        ),
        Panel(
            "Poles online",
            POLE_ONLINE_SHARE,
            kind="stat",
            format="table",
            unit="percent",
            description="Per city, view pole_online_rate.",
            width=8,
            max_value=100,
        ),
        Panel(
            "Poles online by district",
            POLE_ONLINE_BY_DISTRICT,
            kind="table",
            format="table",
            description="View pole_online_rate_by_district.",
            width=16,
        ),
    ),
)
