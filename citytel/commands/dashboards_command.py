"""``citytel dashboards build|push``: Grafana dashboards and alert rules as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citytel.commands.options import ConfigOption, settings_for
from core.settings import DashboardSettings
from dashboards.alerts import CONTACT_POINT, RULE_GROUP
from dashboards.build import default_out_dir, write_files
from dashboards.render import PROVISIONED_DATASOURCE_UID


def build(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output folder (default: the dashboards package folder).", file_okay=False
        ),
    ] = None,
) -> None:
    """Write the dashboard JSON and the provisioning files (data source, dashboards, alerts)."""
    out_dir = out or default_out_dir()
    for path in write_files(out_dir):
        typer.echo(str(path))


def push(
    config: ConfigOption = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=0.1, help="Timeout of each request to Grafana.")
    ] = 10.0,
    datasource_uid: Annotated[
        str,
        typer.Option(help="uid of the PostgreSQL data source: the panels' default, the rules'."),
    ] = PROVISIONED_DATASOURCE_UID,
) -> None:
    """Upsert the folder, every dashboard, the contact point and the alert rules."""
    settings = settings_for(DashboardSettings, config)
    from dashboards.errors import DashboardError  # noqa: PLC0415 - the client loads on push
    from dashboards.push import push_dashboards  # noqa: PLC0415

    try:
        report = push_dashboards(settings, timeout_s=timeout_s, datasource_uid=datasource_uid)
    except DashboardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for dashboard in report.dashboards:
        typer.echo(f"{dashboard.uid}\tversion {dashboard.version}\t{dashboard.url}")
    state = "created" if report.contact_point_created else "kept as it is"
    typer.echo(f"contact point {CONTACT_POINT}\t{state}")
    typer.echo(f"alert rules\t{len(report.alert_rules)} in group {RULE_GROUP}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Grafana dashboards and alert rules as code: build files, push to Grafana.",
        no_args_is_help=True,
    )
    group.command("build")(build)
    group.command("push")(push)
    app.add_typer(group, name="dashboards")
