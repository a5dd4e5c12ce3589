"""Grafana dashboards as code: build the JSON and provisioning files from Python.

Two variants of each dashboard come out of one definition:

* ``json/<uid>.json`` for import by hand or by API: the data source is the input
  variable ``${DS_CITYTEL}`` that Grafana asks for on import;
* ``provisioning/dashboards/citytel/<uid>.json`` for file provisioning: the data
  source is the provisioned one, uid ``citytel-pg``.

Output is deterministic (stable uids, ``id: null``, fixed key order), so the
committed files must equal what :func:`render_files` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboards import queries

PLUGIN_ID = "grafana-postgresql-datasource"
IMPORT_INPUT = "DS_CITYTEL"
PROVISIONED_DATASOURCE_UID = "citytel-pg"
PROVISIONED_FOLDER = "citytel"
PROVISIONED_JSON_DIR = "provisioning/dashboards/citytel"
# Where the compose file mounts dashboards/provisioning inside the Grafana container.
GRAFANA_PROVISIONING_PATH = "/etc/grafana/provisioning"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
# The target_pct of view signal_timing_coverage (Shandong new-urbanization plan 2021-2023).
TIMING_COVERAGE_TARGET_PCT = 40.0

Json = dict[str, Any]


@dataclass(frozen=True)
class Panel:
    """One panel: a title, its SQL and how to show it."""

    title: str
    sql: str
    kind: str = "timeseries"  # timeseries | barchart | stat | table | piechart
    format: str = "time_series"  # time_series | table
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stacked: bool = False
    bars: bool = False
    max_value: float | None = None
    target: float | None = None  # a threshold: red below, green from the target up


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("citytel",))


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        uid="citytel-overview",
        title="citytel / Overview",
        description="Ingest throughput, device health, dead letters and feed freshness.",
        panels=(
            Panel(
                "Messages stored per minute by kind",
                queries.MESSAGES_PER_MINUTE,
                unit="short",
                description="Telemetry rows per minute (by device timestamp), per device kind.",
                width=16,
                stacked=True,
            ),
            Panel(
                "Poles online",
                queries.POLE_ONLINE_SHARE,
                kind="stat",
                format="table",
                unit="percent",
                description="Per city, view pole_online_rate: registered poles that report "
                "online and were heard within 3 reporting intervals.",
                width=8,
                max_value=100,
            ),
            Panel(
                "Dead letters by reason",
                queries.DEAD_LETTERS_BY_REASON,
                description="Rejected messages per bucket; see `citytel deadletters`.",
                stacked=True,
                bars=True,
            ),
            Panel(
                "Feed freshness",
                queries.FEED_FRESHNESS,
                kind="table",
                format="table",
                description="View feed_freshness: age of the last message (now() - last_seen) "
                "per city and kind; stale = silent for 3 reporting intervals or more.",
            ),
            Panel(
                "Stalest devices",
                queries.STALEST_DEVICES,
                kind="table",
                format="table",
                description="View device_freshness: devices not fresh (silent for 3 reporting "
                "intervals or more, or never heard), oldest first.",
                width=24,
            ),
        ),
    ),
    Dashboard(
        uid="citytel-poles",
        title="citytel / Smart poles",
        description="Street lighting, air quality and pole availability by district.",
        panels=(
            Panel(
                "Lamp power by district",
                queries.LAMP_POWER_BY_DISTRICT,
                unit="kwatt",
                description="Sum over the district's poles of each pole's average lamp power.",
                stacked=True,
            ),
            Panel(
                "PM2.5 by district",
                queries.PM25_BY_DISTRICT,
                unit="suffix: µg/m³",
                description="Mean of the poles' average PM2.5 concentration.",
            ),
            Panel(
                "Poles online",
                queries.POLE_ONLINE_SHARE,
                kind="stat",
                format="table",
                unit="percent",
                description="Per city, view pole_online_rate.",
                width=8,
                max_value=100,
            ),
            Panel(
                "Poles online by district",
                queries.POLE_ONLINE_BY_DISTRICT,
                kind="table",
                format="table",
                description="View pole_online_rate_by_district.",
                width=16,
            ),
        ),
    ),
    Dashboard(
        uid="citytel-signals",
        title="citytel / Traffic signals",
        description="Signal-timing coverage, controller modes and traffic volume.",
        panels=(
            Panel(
                "Signal-timing coverage %",
                queries.SIGNAL_TIMING_COVERAGE_NOW,
                kind="stat",
                format="table",
                unit="percent",
                description="Per city, view signal_timing_coverage: registered signalized "
                "intersections whose controller's mode in the last 15 min is intelligent "
                "(adaptive or coordinated). Target 40 %.",
                width=8,
                max_value=100,
                target=TIMING_COVERAGE_TARGET_PCT,
            ),
            Panel(
                "Signal-timing coverage",
                queries.SIGNAL_TIMING_COVERAGE,
                unit="percent",
                description="Registered signals whose last mode in the bucket is intelligent "
                "timing (citytel_is_intelligent_timing), over all registered signals of the "
                "selected cities. Dashed line: the 40 % target.",
                width=16,
                max_value=100,
                target=TIMING_COVERAGE_TARGET_PCT,
            ),
            Panel(
                "Controller modes",
                queries.SIGNAL_MODES,
                description="Controllers per last-reported mode in each bucket.",
                width=16,
                stacked=True,
            ),
            Panel(
                "Modes now",
                queries.SIGNAL_MODES_NOW,
                kind="piechart",
                format="table",
                description="View signal_current_mode: each controller's newest mode in the "
                "last 15 minutes (independent of the time range).",
                width=8,
            ),
            Panel(
                "Volume by hour",
                queries.VOLUME_BY_HOUR,
                unit="short",
                description="Vehicles counted per hour, by district.",
                width=24,
                stacked=True,
                bars=True,
            ),
        ),
    ),
    Dashboard(
        uid="citytel-energy",
        title="citytel / Energy",
        description="Renewable generation, load, grid exchange and storage.",
        panels=(
            Panel(
                "PV, load, grid and storage",
                queries.ENERGY_FLOWS,
                unit="kwatt",
                description="Sum over sites of average power. Grid: + import, - export. "
                "Storage: + discharging, - charging.",
                width=24,
            ),
            Panel(
                "Renewable self-consumption",
                queries.SELF_CONSUMPTION,
                unit="percent",
                description="Per site and bucket, 1 - export / (PV + wind), clamped to "
                "0-100 %, as in view renewable_self_consumption; then the mean over sites.",
                width=24,
                max_value=100,
            ),
        ),
    ),
)


def datasource_ref(uid: str) -> Json:
    return {"type": PLUGIN_ID, "uid": uid}


def _field_config(panel: Panel) -> Json:
    defaults: Json = {"unit": panel.unit}
    if panel.max_value is not None:
        defaults["min"] = 0
        defaults["max"] = panel.max_value
    if panel.target is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": panel.target}],
        }
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
        }
        if panel.target is not None:
            defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> Json:
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        }
    if panel.kind == "piechart":
        return {
            "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        }
    if panel.kind == "table":
        return {"cellHeight": "sm", "showHeader": True}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel_json(panel: Panel, panel_id: int, grid: Json, datasource: Json) -> Json:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": grid,
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
        "targets": [
            {
                "refId": "A",
                "datasource": datasource,
                "editorMode": "code",
                "format": panel.format,
                "rawQuery": True,
                "rawSql": panel.sql,
            }
        ],
    }


def _layout(panels: tuple[Panel, ...]) -> list[Json]:
    """Place panels left to right, wrapping to a new row when the width runs out."""
    grids: list[Json] = []
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        grids.append({"h": panel.height, "w": panel.width, "x": x, "y": y})
        x += panel.width
        row_height = max(row_height, panel.height)
    return grids


def _city_variable(datasource: Json) -> Json:
    return {
        "name": "city",
        "label": "City",
        "type": "query",
        "datasource": datasource,
        "definition": queries.CITY_VARIABLE,
        "query": queries.CITY_VARIABLE,
        "refresh": 1,
        "multi": True,
        "includeAll": True,
        "current": {},
        "options": [],
        "sort": 1,
    }


def build_dashboard(dashboard: Dashboard, *, datasource_uid: str) -> Json:
    """The dashboard model, its data source referenced by ``datasource_uid``."""
    datasource = datasource_ref(datasource_uid)
    panels = [
        _panel_json(panel, number, grid, datasource)
        for number, (panel, grid) in enumerate(
            zip(dashboard.panels, _layout(dashboard.panels), strict=True), start=1
        )
    ]
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": [_city_variable(datasource)]},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def build_import_dashboard(dashboard: Dashboard) -> Json:
    """The import variant: the data source is asked for on import (``${DS_CITYTEL}``)."""
    model = build_dashboard(dashboard, datasource_uid=f"${{{IMPORT_INPUT}}}")
    header: Json = {
        "__inputs": [
            {
                "name": IMPORT_INPUT,
                "label": "citytel PostgreSQL",
                "description": "The citytel database (PostgreSQL or TimescaleDB)",
                "type": "datasource",
                "pluginId": PLUGIN_ID,
                "pluginName": "PostgreSQL",
            }
        ],
        "__requires": [
            {"type": "datasource", "id": PLUGIN_ID, "name": "PostgreSQL", "version": "1.0.0"}
        ],
    }
    return header | model


DATASOURCE_PROVISIONING = f"""\
# Generated by `citytel dashboards build`; do not edit.
# The citytel database as a Grafana data source. Grafana substitutes the
# environment variables when it reads this file; use a read-only role.
apiVersion: 1

datasources:
  - name: citytel
    uid: {PROVISIONED_DATASOURCE_UID}
    type: {PLUGIN_ID}
    access: proxy
    isDefault: true
    editable: false
    url: ${{GRAFANA_PG_HOST}}
    user: ${{GRAFANA_PG_USER}}
    jsonData:
      database: ${{GRAFANA_PG_DATABASE}}
      sslmode: ${{GRAFANA_PG_SSLMODE}}
      postgresVersion: 1500
      timescaledb: false
      maxOpenConns: 10
    secureJsonData:
      password: ${{GRAFANA_PG_PASSWORD}}
"""

DASHBOARD_PROVISIONING = f"""\
# Generated by `citytel dashboards build`; do not edit.
# Loads the dashboards of {PROVISIONED_JSON_DIR}/ into the folder "{PROVISIONED_FOLDER}".
apiVersion: 1

providers:
  - name: citytel
    folder: {PROVISIONED_FOLDER}
    folderUid: {PROVISIONED_FOLDER}
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: {GRAFANA_PROVISIONING_PATH}/{PROVISIONED_JSON_DIR.removeprefix("provisioning/")}
      foldersFromFilesStructure: false
"""


def _dump(model: Json) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def render_files() -> dict[str, str]:
    """Every generated file, by path relative to the output folder."""
    files: dict[str, str] = {}
    for dashboard in DASHBOARDS:
        files[f"json/{dashboard.uid}.json"] = _dump(build_import_dashboard(dashboard))
        files[f"{PROVISIONED_JSON_DIR}/{dashboard.uid}.json"] = _dump(
            build_dashboard(dashboard, datasource_uid=PROVISIONED_DATASOURCE_UID)
        )
    files["provisioning/datasources/citytel.yaml"] = DATASOURCE_PROVISIONING
    files["provisioning/dashboards/citytel.yaml"] = DASHBOARD_PROVISIONING
    return dict(sorted(files.items()))


def write_files(out_dir: Path) -> list[Path]:
    """Write every generated file under ``out_dir``; return the paths written."""
    written: list[Path] = []
    for relative, text in render_files().items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def default_out_dir() -> Path:
    """The ``dashboards`` package folder, where the committed files live."""
    return Path(__file__).resolve().parent
