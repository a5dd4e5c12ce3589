"""What a dashboard is made of, as plain values: panels, template variables, alert rules.

:mod:`dashboards.render` turns these into Grafana's JSON model, :mod:`dashboards.alerts`
turns :class:`AlertRule` into provisioning files and API bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
PanelKind = Literal["timeseries", "barchart", "stat", "table", "piechart", "geomap", "heatmap"]
Stacking = Literal["none", "normal", "percent"]


@dataclass(frozen=True)
class Series:
    """How series whose name matches ``pattern`` (a regex) differ from the panel's style."""

    pattern: str
    negative: bool = False  # drawn below the axis (charging, export)
    stack: str | None = None  # a stacking group of its own; "" = not stacked
    dashed: bool = False  # a target or a limit
    line: bool = False  # a line among bars


@dataclass(frozen=True)
class Panel:
    """One panel: a title, its SQL and how to show it."""

    title: str
    sql: str
    kind: PanelKind = "timeseries"
    format: Literal["time_series", "table"] = "time_series"
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stacking: Stacking = "none"
    bars: bool = False
    min_value: float | None = None
    max_value: float | None = None
    # Colour steps (colour, from value); the first has no lower bound. None: Grafana's default.
    thresholds: tuple[tuple[str, float | None], ...] | None = None
    dashed_thresholds: bool = False  # draw the steps as dashed lines on a time series
    series: tuple[Series, ...] = ()
    mappings: tuple[tuple[str, str, str], ...] = ()  # (value, text, colour)
    options: Json = field(default_factory=dict)  # panel-type options over the defaults
    repeat: str | None = None  # one copy of the panel per value of this variable


def table(title: str, sql: str, **options: Any) -> Panel:
    """A panel showing the query's rows as they are."""
    return Panel(title, sql, kind="table", format="table", **options)


def stat(title: str, sql: str, **options: Any) -> Panel:
    """A panel showing one big number per row of the query (its text columns name it)."""
    return Panel(title, sql, kind="stat", format="table", **options)


@dataclass(frozen=True)
class Variable:
    """A template variable: the values of a SQL query, or fixed options."""

    name: str
    label: str
    query: str | None = None
    options: tuple[str, ...] = ()
    multi: bool = True
    include_all: bool = True
    default: str | None = None  # None: every value ("All") when include_all

    def __post_init__(self) -> None:
        if (self.query is None) == (not self.options):
            raise ValueError(f"variable {self.name}: give a query or options, not both")


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-24h"
    refresh: str = "1m"
    tags: tuple[str, ...] = ("citytel",)


@dataclass(frozen=True)
class AlertRule:
    """A Grafana-managed alert rule on one SQL query.

    The query returns one numeric column (the value) and string columns, which become
    the alert's labels: one alert instance per row. No row: no alert (``NoData`` is OK).
    The rule fires when the value is ``above`` (or below) ``threshold`` for ``pending``.
    """

    uid: str
    title: str
    sql: str
    threshold: float
    summary: str
    description: str
    above: bool = True
    pending: str = "5m"
    severity: Literal["critical", "warning"] = "warning"
