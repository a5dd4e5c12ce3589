"""Upload the dashboards and the alert rules to a running Grafana through its HTTP API.

Uses the maintained ``grafana-client`` package. In order: the folder (found by title or
uid, created when missing); each dashboard, upserted by uid with ``overwrite: true``;
the contact point ``citytel-operations``, created when missing and otherwise left as
the operator set it; the rule group ``citytel``, replaced as a whole (rules keep their
uids: a second push updates them, never duplicates). Library and network errors become
:class:`DashboardError`, naming the step, the Grafana URL and the uid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import niquests.exceptions
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException, GrafanaTimeoutError

from core.errors import ConfigError
from core.settings import DashboardSettings, env_name
from dashboards.alerts import (
    CONTACT_POINT,
    RULE_GROUP,
    RULES,
    WEBHOOK_PLACEHOLDER,
    contact_point,
    rule_group_body,
)
from dashboards.build import DASHBOARDS
from dashboards.errors import DashboardError, GrafanaRejectedError, GrafanaUnreachableError
from dashboards.render import PROVISIONED_DATASOURCE_UID, build_dashboard

logger = logging.getLogger(__name__)

PUSH_MESSAGE = "citytel dashboards push"

# What an error status usually means here, for the one line the operator reads.
_HINTS = {
    400: "Grafana found the request invalid",
    401: f"bad credentials: check {env_name('grafana_token')}",
    403: "the token lacks permission: Editor on the folder, alert rules writer",
    404: f"not found: check {env_name('grafana_url')} (and its path, behind a proxy)",
    409: "conflict: a rule uid is used in another folder or group, or was provisioned from files",
    412: "version conflict: a dashboard of that title or a newer version exists in Grafana",
}


@dataclass(frozen=True)
class PushedDashboard:
    uid: str
    title: str
    url: str
    version: int | None


@dataclass(frozen=True)
class PushReport:
    dashboards: list[PushedDashboard]
    contact_point_created: bool
    alert_rules: list[str]  # uids, in the group's order


def folder_uid(title: str) -> str:
    """A stable folder uid from its title (Grafana allows at most 40 characters)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-").lower()
    return (slug or "citytel")[:40]


def push_dashboards(
    settings: DashboardSettings,
    *,
    timeout_s: float = 10.0,
    datasource_uid: str = PROVISIONED_DATASOURCE_UID,
) -> PushReport:
    """Folder, dashboards, contact point, alert rules: create or update each."""
    if not settings.grafana_url:
        raise ConfigError([f"{env_name('grafana_url')} is not set"])
    url = settings.grafana_url.rstrip("/")
    api = GrafanaApi.from_url(url, credential=settings.grafana_token, timeout=timeout_s)
    try:
        folder = _ensure_folder(api, url, settings.grafana_folder)
        dashboards = [
            _upsert(api, url, folder, build_dashboard(d, datasource_uid=datasource_uid))
            for d in DASHBOARDS
        ]
        created = _ensure_contact_point(
            api, url, settings.grafana_alert_webhook_url or WEBHOOK_PLACEHOLDER
        )
        body = rule_group_body(folder_uid=folder, datasource_uid=datasource_uid)
        with _translated("upsert alert rules", url, RULE_GROUP):
            api.alertingprovisioning.update_rule_group(folder, RULE_GROUP, body)
        logger.info("pushed rule group %s: %d rules", RULE_GROUP, len(RULES))
        return PushReport(dashboards, created, [r.uid for r in RULES])
    finally:
        api.client.s.close()


def _ensure_folder(api: GrafanaApi, url: str, title: str) -> str:
    uid = folder_uid(title)
    with _translated("list folders", url, uid):
        folders = api.folder.get_all_folders()
    for folder in folders or []:
        if folder.get("title") == title or folder.get("uid") == uid:
            return str(folder["uid"])
    with _translated("create folder", url, uid):
        created = api.folder.create_folder(title, uid=uid)
    logger.info("created Grafana folder %r (uid %s)", title, created.get("uid", uid))
    return str(created.get("uid", uid))


def _upsert(api: GrafanaApi, url: str, folder: str, model: dict[str, Any]) -> PushedDashboard:
    body = {"dashboard": model, "folderUid": folder, "overwrite": True, "message": PUSH_MESSAGE}
    with _translated("upsert dashboard", url, model["uid"]):
        reply = api.dashboard.update_dashboard(body)
    pushed = PushedDashboard(
        uid=str(reply.get("uid", model["uid"])),
        title=model["title"],
        url=f"{url}{reply.get('url', '')}",
        version=reply.get("version"),
    )
    logger.info("pushed dashboard %s version %s", pushed.uid, pushed.version)
    return pushed


def _ensure_contact_point(api: GrafanaApi, url: str, webhook_url: str) -> bool:
    """Create the contact point when missing (editable in the UI); True when created."""
    with _translated("find contact point", url, CONTACT_POINT):
        found = api.alertingprovisioning.get_contactpoints(name=CONTACT_POINT)
    if found:
        return False
    with _translated("create contact point", url, CONTACT_POINT):
        api.alertingprovisioning.create_contactpoint(
            contact_point(webhook_url), disable_provenance=True
        )
    logger.info("created contact point %s posting to %s", CONTACT_POINT, webhook_url)
    return True


@contextmanager
def _translated(step: str, url: str, uid: str) -> Iterator[None]:
    """Turn grafana-client and HTTP library errors into :class:`DashboardError`."""
    context: dict[str, Any] = {"step": step, "url": url, "uid": uid}
    try:
        yield
    except GrafanaTimeoutError as exc:
        raise GrafanaUnreachableError(f"Grafana timed out: {exc.message}", **context) from exc
    except GrafanaException as exc:
        if not exc.status_code:
            raise GrafanaUnreachableError(f"Grafana unreachable: {exc.message}", **context) from exc
        hint = _HINTS.get(exc.status_code, "Grafana refused")
        raise GrafanaRejectedError(
            f"{hint}: {_excerpt(exc.response) or exc.message}", status=exc.status_code, **context
        ) from exc
    except niquests.exceptions.RequestException as exc:
        raise GrafanaUnreachableError(f"Grafana unreachable: {exc}", **context) from exc
    except ValueError as exc:  # a reply that is not JSON: not Grafana, or a proxy page
        raise DashboardError(f"unexpected reply from Grafana: {exc}", **context) from exc


def _excerpt(response: Any, limit: int = 200) -> str:
    if isinstance(response, dict):
        response = response.get("message", response)
    return str(response)[:limit] if response else ""
