"""Grafana dashboards and alert rules as code: build the files, push them to Grafana."""

from __future__ import annotations

from dashboards.alerts import RULES
from dashboards.build import DASHBOARDS, render_files, write_files
from dashboards.errors import DashboardError, GrafanaRejectedError, GrafanaUnreachableError
from dashboards.model import AlertRule, Dashboard, Panel, Series, Variable
from dashboards.push import PushedDashboard, PushReport, push_dashboards
from dashboards.render import PROVISIONED_DATASOURCE_UID, build_dashboard

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
