"""Upload the dashboards to a running Grafana through its HTTP API.

Uses the maintained ``grafana-client`` package. The folder is created when missing
(found by title or uid), each dashboard is upserted with ``overwrite: true`` so a
push is idempotent. Library and network errors become :class:`DashboardError`.
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
from dashboards.build import DASHBOARDS, PROVISIONED_DATASOURCE_UID, build_dashboard
from dashboards.errors import DashboardError, GrafanaRejectedError, GrafanaUnreachableError

logger = logging.getLogger(__name__)

PUSH_MESSAGE = "citytel dashboards push"


@dataclass(frozen=True)
class PushedDashboard:
    uid: str
    title: str
    url: str
    version: int | None


def folder_uid(title: str) -> str:
    """A stable folder uid from its title (Grafana allows at most 40 characters)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-").lower()
    return (slug or "citytel")[:40]


def push_dashboards(
    settings: DashboardSettings,
    *,
    timeout_s: float = 10.0,
    datasource_uid: str = PROVISIONED_DATASOURCE_UID,
) -> list[PushedDashboard]:
    """Create the folder if missing and upsert every dashboard into it."""
    if not settings.grafana_url:
        raise ConfigError([f"{env_name('grafana_url')} is not set"])
    url = settings.grafana_url.rstrip("/")
    api = GrafanaApi.from_url(url, credential=settings.grafana_token, timeout=timeout_s)
    try:
        folder = _ensure_folder(api, url, settings.grafana_folder)
        return [_upsert(api, url, folder, model) for model in _models(datasource_uid)]
    finally:
        api.client.s.close()


def _models(datasource_uid: str) -> list[dict[str, Any]]:
    return [build_dashboard(d, datasource_uid=datasource_uid) for d in DASHBOARDS]


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
        raise GrafanaRejectedError(
            f"Grafana refused: {_excerpt(exc.response) or exc.message}",
            status=exc.status_code,
            **context,
        ) from exc
    except niquests.exceptions.RequestException as exc:
        raise GrafanaUnreachableError(f"Grafana unreachable: {exc}", **context) from exc
    except ValueError as exc:  # a reply that is not JSON: not Grafana, or a proxy page
        raise DashboardError(f"unexpected reply from Grafana: {exc}", **context) from exc


def _excerpt(response: Any, limit: int = 200) -> str:
    if isinstance(response, dict):
        response = response.get("message", response)
    return str(response)[:limit] if response else ""
