"""Grafana's JSON model of a :class:`~dashboards.model.Dashboard`.

Every panel and query variable reads the data source through the dashboard variable
``$datasource`` (type PostgreSQL), whose default is the provisioned ``citytel-pg``:
the same file serves file provisioning, import by hand and ``citytel dashboards push``.
Output is deterministic (stable uids, ``id: null``, fixed key order).
"""

from __future__ import annotations

from dashboards.model import Dashboard, Json, Panel, Series, Variable

PLUGIN_ID = "grafana-postgresql-datasource"
PROVISIONED_DATASOURCE_UID = "citytel-pg"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = {"type": PLUGIN_ID, "uid": f"${{{DATASOURCE_VARIABLE}}}"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
ALL = {"text": ["All"], "value": ["$__all"]}


def _thresholds(steps: tuple[tuple[str, float | None], ...]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _series_style(panel: Panel) -> Json:
    return {
        "drawStyle": "bars" if panel.bars else "line",
        "fillOpacity": 60 if panel.bars else 10,
        "lineWidth": 1,
        "showPoints": "auto",  # points where they are few: per-day indicator series
        "spanNulls": False,
        "stacking": {"group": "A", "mode": panel.stacking},
    }


def _override(series: Series) -> Json:
    properties: list[Json] = []
    if series.negative:
        properties.append({"id": "custom.transform", "value": "negative-Y"})
    if series.stack is not None:
        mode = "none" if series.stack == "" else "normal"
        group = series.stack or "A"
        properties.append({"id": "custom.stacking", "value": {"group": group, "mode": mode}})
    if series.dashed:
        properties.append({"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}})
    if series.line or series.dashed:
        properties += [
            {"id": "custom.drawStyle", "value": "line"},
            {"id": "custom.fillOpacity", "value": 0},
            {"id": "custom.lineWidth", "value": 2},
        ]
    return {"matcher": {"id": "byRegexp", "options": series.pattern}, "properties": properties}


def _field_config(panel: Panel) -> Json:
    defaults: Json = {"unit": panel.unit}
    if panel.min_value is not None:
        defaults["min"] = panel.min_value
    if panel.max_value is not None:
        defaults["max"] = panel.max_value
    if panel.thresholds is not None:
        defaults["thresholds"] = _thresholds(panel.thresholds)
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {v: {"text": t, "color": c, "index": i}},
            }
            for i, (v, t, c) in enumerate(panel.mappings)
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = _series_style(panel)
        if panel.dashed_thresholds:
            defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    if panel.kind == "geomap" and panel.thresholds is not None:
        defaults["color"] = {"mode": "thresholds"}
    return {"defaults": defaults, "overrides": [_override(s) for s in panel.series]}


_OPTIONS: dict[str, Json] = {
    "stat": {
        "colorMode": "value",
        "graphMode": "none",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
    },
    "piechart": {
        "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
    },
    "table": {"cellHeight": "sm", "showHeader": True},
    "timeseries": {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "heatmap": {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5},
        "rowsFrame": {"layout": "auto"},
        "yAxis": {"axisPlacement": "left"},
        "tooltip": {"mode": "single", "yHistogram": False},
        "legend": {"show": True},
    },
    "geomap": {
        "basemap": {"type": "default", "name": "Basemap"},
        "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
        "tooltip": {"mode": "details"},
        "view": {"id": "fit", "allLayers": True, "lat": 0, "lon": 0, "zoom": 7},
    },
}


def sql_target(sql: str, fmt: str, datasource: Json) -> Json:
    """A raw SQL query of the PostgreSQL data source (a panel's target, an alert's model)."""
    return {
        "refId": "A",
        "datasource": datasource,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": sql,
    }


def _panel_json(panel: Panel, panel_id: int, grid: Json) -> Json:
    model: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": _field_config(panel),
        "options": _OPTIONS.get(panel.kind, {}) | panel.options,
        "targets": [sql_target(panel.sql, panel.format, DATASOURCE)],
    }
    if panel.repeat:
        model |= {"repeat": panel.repeat, "repeatDirection": "h", "maxPerRow": 3}
    return model


def layout(panels: tuple[Panel, ...]) -> list[Json]:
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


def _current(variable: Variable) -> Json:
    if variable.default is not None:
        value = [variable.default] if variable.multi else variable.default
        return {"text": value, "value": value}
    return ALL if variable.include_all else {}


def _variable_json(variable: Variable) -> Json:
    model: Json = {"name": variable.name, "label": variable.label}
    if variable.query is not None:
        model |= {
            "type": "query",
            "datasource": DATASOURCE,
            "definition": variable.query,
            "query": variable.query,
            "refresh": 1,
            "sort": 0,
        }
    else:
        model |= {"type": "custom", "query": ",".join(variable.options)}
    options = [{"text": o, "value": o, "selected": o == variable.default} for o in variable.options]
    return model | {
        "multi": variable.multi,
        "includeAll": variable.include_all,
        "current": _current(variable),
        "options": options,
    }


def _datasource_variable(default_uid: str) -> Json:
    return {
        "name": DATASOURCE_VARIABLE,
        "label": "Data source",
        "type": "datasource",
        "query": PLUGIN_ID,
        "regex": "",
        "refresh": 1,
        "current": {"text": "citytel", "value": default_uid},
        "options": [],
    }


def build_dashboard(
    dashboard: Dashboard, *, datasource_uid: str = PROVISIONED_DATASOURCE_UID
) -> Json:
    """The dashboard model; ``datasource_uid`` is the data source variable's default."""
    panels = [
        _panel_json(panel, number, grid)
        for number, (panel, grid) in enumerate(
            zip(dashboard.panels, layout(dashboard.panels), strict=True), start=1
        )
    ]
    variables = [_datasource_variable(datasource_uid)]
    variables += [_variable_json(v) for v in dashboard.variables]
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }
