"""Grafana dashboards as code: build JSON and provisioning files, push them to Grafana."""

from __future__ import annotations

from dashboards.build import (
    DASHBOARDS,
    PROVISIONED_DATASOURCE_UID,
    Dashboard,
    Panel,
    build_dashboard,
    build_import_dashboard,
    render_files,
    write_files,
)
from dashboards.errors import DashboardError, GrafanaRejectedError, GrafanaUnreachableError
from dashboards.push import PushedDashboard, push_dashboards

__all__ = [
    "DASHBOARDS",
    "PROVISIONED_DATASOURCE_UID",
    "Dashboard",
    "DashboardError",
    "GrafanaRejectedError",
    "GrafanaUnreachableError",
    "Panel",
    "PushedDashboard",
    "build_dashboard",
    "build_import_dashboard",
    "push_dashboards",
    "render_files",
    "write_files",
]
