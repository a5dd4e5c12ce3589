"""Energy nodes (source-grid-load-storage): flows against load, storage, plan indicators."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, Series, table
from dashboards.sql import (
    CITY,
    DISTRICT,
    bucket_hours,
    by_area,
    indicator_series,
    rollup_rows,
)
from schemas.rollups import merge_sql
from schemas.topics import Kind

# Flow series from the area rollups' energy (kWh) columns; energy / bucket hours = mean kW.
_FLOWS = (
    ("PV", "pv_kwh"),
    ("wind", "wind_kwh"),
    ("grid import", "import_kwh"),
    ("storage discharge", "discharge_kwh"),
    ("grid export", "export_kwh"),
    ("storage charge", "charge_kwh"),
    ("load", "load_kwh"),
)
_VALUES = ",\n    ".join(f"('{name}', r.{column})" for name, column in _FLOWS)
POWER_FLOWS = f"""\
WITH rollup AS (
{rollup_rows(Kind.ENERGY, stats=tuple(column for _, column in _FLOWS))}
)
SELECT r.time, f.flow AS metric, sum(f.kwh) / {bucket_hours()} AS value
FROM rollup r
CROSS JOIN LATERAL (VALUES
    {_VALUES}
) AS f (flow, kwh)
GROUP BY 1, 2
ORDER BY 1, 2"""

STATE_OF_CHARGE = f"""\
WITH rollup AS (
{rollup_rows(Kind.ENERGY, stats=("soc_last_pct",), columns=("r.device_id",), area=False)}
)
SELECT r.time, r.device_id AS metric, {merge_sql(Kind.ENERGY, "soc_last_pct", "r")} AS value
FROM rollup r
WHERE r.soc_last_pct IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""

BALANCE_FAILURE_SHARE = """\
SELECT c.city, v.value AS "failing share", v.numerator AS failed, v.denominator AS checked
FROM unnest(ARRAY[$city]::text[]) AS c (city)
CROSS JOIN LATERAL citytel_indicator('energy_balance_failure_share', c.city, NULL,
                                     $__timeFrom(), $__timeTo(), 'day') AS v
WHERE v.is_total
ORDER BY 1"""

ENERGY = Dashboard(
    uid="citytel-energy",
    title="citytel / Energy",
    description="Renewable generation, grid exchange and storage against load; state of charge; "
    "self-consumption, self-sufficiency, peak import, balance-check failures.",
    variables=(CITY, DISTRICT),
    panels=(
        Panel(
            "Power: sources against load",
            POWER_FLOWS,
            unit="kwatt",
            description="Mean power per bucket, summed over the nodes (area rollups: kWh / "
            "hours). Stacked above zero: PV, wind, grid import, storage discharge; below: "
            "export and charging; the line is the load they meet.",
            width=24,
            height=9,
            stacking="normal",
            series=(
                Series("grid export|storage charge", negative=True, stack="B"),
                Series("load", stack="", line=True),
            ),
        ),
        Panel(
            "State of charge by node",
            STATE_OF_CHARGE,
            unit="percent",
            description="Each storage's newest SoC in the bucket (per-device rollups: "
            "15-minute, hourly or daily, whichever fits the interval).",
            min_value=0,
            max_value=100,
        ),
        Panel(
            "Self-consumption and self-sufficiency per day",
            indicator_series("'energy_self_consumption', 'energy_self_sufficiency'"),
            unit="percentunit",
            description="citytel_indicator per city and local day: (renewable - export) / "
            "renewable, and (load - import) / load.",
            min_value=0,
            max_value=1,
        ),
        Panel(
            "Peak grid import per day",
            indicator_series("'energy_peak_grid_import'"),
            unit="kwatt",
            description="citytel_indicator('energy_peak_grid_import'): the largest 15-minute "
            "import of the city's nodes together, per local day.",
            bars=True,
        ),
        Panel(
            "Balance-check failures",
            by_area(Kind.ENERGY, "balance_failed"),
            description="Samples failing the contract's balance check per bucket (area rollups).",
            stacking="normal",
            bars=True,
        ),
        table(
            "Balance-check failure share",
            BALANCE_FAILURE_SHARE,
            description="citytel_indicator('energy_balance_failure_share') over the range.",
        ),
    ),
)
