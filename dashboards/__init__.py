"""Grafana dashboards and alert rules as code: build the files, push them to Grafana.
Exports load on first use."""

from __future__ import annotations

from core.lazy import lazy_exports

_EXPORTS = {
    "AlertRule": "dashboards.model",
    "DASHBOARDS": "dashboards.build",
    "Dashboard": "dashboards.model",
    "DashboardError": "dashboards.errors",
    "GrafanaRejectedError": "dashboards.errors",
    "GrafanaUnreachableError": "dashboards.errors",
    "PROVISIONED_DATASOURCE_UID": "dashboards.render",
    "Panel": "dashboards.model",
    "PushReport": "dashboards.push",
    "PushedDashboard": "dashboards.push",
    "RULES": "dashboards.alerts",
    "Series": "dashboards.model",
    "Variable": "dashboards.model",
    "build_dashboard": "dashboards.render",
    "push_dashboards": "dashboards.push",
    "render_files": "dashboards.build",
    "write_files": "dashboards.build",
}
__all__ = [
    "DASHBOARDS",
    "PROVISIONED_DATASOURCE_UID",
    "RULES",
    "AlertRule",
    "Dashboard",
    "DashboardError",
    "GrafanaRejectedError",
    "GrafanaUnreachableError",
    "Panel",
    "PushReport",
    "PushedDashboard",
    "Series",
    "Variable",
    "build_dashboard",
    "push_dashboards",
    "render_files",
    "write_files",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)
