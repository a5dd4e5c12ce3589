"""Plan indicators: every indicator of the catalogue against its target, per city and period."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, Series, table
from dashboards.sql import CITY, INDICATOR, PERIOD, indicator_series

AGAINST_TARGETS = """\
SELECT i.title AS indicator, c.city, i.unit, v.value, t.comparison AS "target is",
       t.value AS target, t.due, v.value - t.value AS gap,
       CASE t.comparison WHEN '>=' THEN v.value >= t.value
                         WHEN '<=' THEN v.value <= t.value END AS met
FROM indicators i
CROSS JOIN unnest(ARRAY[$city]::text[]) AS c (city)
CROSS JOIN LATERAL citytel_indicator(i.name, c.city, NULL, $__timeFrom(), $__timeTo(), 'day') v
LEFT JOIN LATERAL citytel_indicator_target(i.name, c.city) t ON true
WHERE i.name IN ($indicator) AND v.is_total
ORDER BY i.kind NULLS LAST, i.name, c.city"""

PLAN = Dashboard(
    uid="citytel-plan",
    title="citytel / Plan indicators",
    description="The indicators of the catalogue (table indicators) per city against their "
    "targets (indicator_targets), per day, week or month, from citytel_indicator.",
    variables=(CITY, PERIOD, INDICATOR),
    time_from="now-30d",
    refresh="",
    panels=(
        table(
            "Indicators against targets",
            AGAINST_TARGETS,
            description="Each indicator over the whole range (citytel_indicator's total row, "
            "local days), the target that applies to the city (its own, else its province's), "
            "gap = value - target.",
            width=24,
            height=12,
            mappings=(("true", "met", "green"), ("false", "not met", "red")),
        ),
        Panel(
            "${indicator:text}",
            indicator_series("$indicator", "${period:sqlstring}", targets=True),
            description="citytel_indicator per city and $period; dashed: the target that applies.",
            width=8,
            repeat="indicator",
            series=(Series(".* target$", dashed=True),),
        ),
    ),
)
