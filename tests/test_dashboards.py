"""Dashboards and alert rules as code: deterministic files, sound structure, push to Grafana.

The panels' and rules' SQL runs on a real database in tests/test_dashboard_sql.py.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from citytel.cli import app, main
from core.broker import free_port
from core.settings import DashboardSettings
from dashboards.alerts import CONTACT_POINT, RULE_GROUP, RULES, provisioning_file
from dashboards.build import (
    DASHBOARDS,
    GRAFANA_DASHBOARDS_PATH,
    PROVISIONED_FOLDER,
    default_out_dir,
    render_files,
)
from dashboards.errors import GrafanaRejectedError, GrafanaUnreachableError
from dashboards.push import push_dashboards
from dashboards.render import DATASOURCE, PLUGIN_ID, PROVISIONED_DATASOURCE_UID, build_dashboard

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "glsa_test_token_0123456789"
# Grafana's own macros; anything else after a $ must be a variable of the dashboard.
MACROS = {"__timeFilter", "__timeFrom", "__timeTo", "__interval", "__interval_ms"}
REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")

# --- build ---------------------------------------------------------------------------


def test_build_is_deterministic_and_matches_committed_files() -> None:
    first, second = render_files(), render_files()
    assert first == second
    out_dir = default_out_dir()
    for relative, text in first.items():
        path = out_dir / relative
        assert path.exists(), f"{relative} not committed; run `citytel dashboards build`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{relative} differs from the build; run `citytel dashboards build`"
        )
    committed = {
        p.relative_to(out_dir).as_posix()
        for p in out_dir.rglob("*")
        if p.suffix in {".json", ".yaml"}
    }
    assert committed == set(first), "stale generated files: remove them and rebuild"


def test_build_command_writes_every_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for relative, text in render_files().items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text


def test_build_writes_each_dashboard_once() -> None:
    """One JSON per dashboard serves provisioning, import and push: no near-copies."""
    dashboards = [p for p in render_files() if p.endswith(".json")]
    assert sorted(dashboards) == sorted(f"json/{d.uid}.json" for d in DASHBOARDS)


def _datasources(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from _datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_dashboard_structure(dashboard: Any) -> None:
    model = json.loads(render_files()[f"json/{dashboard.uid}.json"])
    assert model["id"] is None and model["uid"] == dashboard.uid
    panels = model["panels"]
    assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
    assert len({p["title"] for p in panels}) == len(panels)
    grids = [p["gridPos"] for p in panels]
    assert all(g["x"] >= 0 and g["x"] + g["w"] <= 24 for g in grids)
    for i, a in enumerate(grids):
        assert not any(_overlaps(a, b) for b in grids[i + 1 :]), f"panel {i + 1} overlaps"
    # The data source variable, and every panel, target and query variable reading through it.
    variables = model["templating"]["list"]
    assert variables[0]["type"] == "datasource" and variables[0]["query"] == PLUGIN_ID
    assert variables[0]["current"]["value"] == PROVISIONED_DATASOURCE_UID
    refs = list(_datasources(panels)) + list(_datasources(variables[1:]))
    assert refs and all(ref == DATASOURCE for ref in refs)
    # Every $name a panel or variable uses is a macro or a variable of this dashboard.
    names = {v["name"] for v in variables}
    texts = [p["title"] for p in panels] + [t["rawSql"] for p in panels for t in p["targets"]]
    texts += [v["query"] for v in variables if v["type"] == "query"]
    used = {a or b for text in texts for a, b in REFERENCE.findall(text)}
    assert used - MACROS <= names, used - MACROS - names
    for panel in panels:
        if "repeat" in panel:
            variable = next(v for v in variables if v["name"] == panel["repeat"])
            assert variable["multi"] and variable["includeAll"]


def test_dashboards_have_unique_uids_and_the_issue_panels() -> None:
    uids = [d.uid for d in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    kinds = {(d.uid, p.kind) for d in DASHBOARDS for p in d.panels}
    assert ("citytel-overview", "geomap") in kinds
    assert ("citytel-signals", "heatmap") in kinds
    titles = {p.title for d in DASHBOARDS for p in d.panels}
    for wanted in (
        "Messages per second by collector",
        "Dead letters by reason",
        "Collector commit latency",
        "Controller mode mix",
        "Faults by code",
        "Lamp-on rate by district",
        "Lighting energy by district",
        "PM2.5 by district",
        "PM10 by district",
        "Noise by district",
        "PM2.5 exceedance hours by district",
        "Power: sources against load",
        "State of charge by node",
        "Self-consumption and self-sufficiency per day",
        "Peak grid import per day",
        "Balance-check failures",
        "Indicators against targets",
    ):
        assert wanted in titles


# --- provisioning ----------------------------------------------------------------------


def test_provisioning_points_at_the_generated_folder_and_compose_mounts_it() -> None:
    files = render_files()
    provider = yaml.safe_load(files["provisioning/dashboards/citytel.yaml"])
    assert provider["providers"][0]["options"]["path"] == GRAFANA_DASHBOARDS_PATH
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./dashboards/json"] == GRAFANA_DASHBOARDS_PATH
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    assert "GRAFANA_ALERT_WEBHOOK_URL" in grafana["environment"]


def test_alerting_file_holds_the_rules_and_the_contact_point_stub() -> None:
    text = render_files()["provisioning/alerting/citytel.yaml"]
    parsed = yaml.safe_load(text)  # JSON is YAML: Grafana reads it as such
    expected = provisioning_file(
        folder=PROVISIONED_FOLDER, datasource_uid=PROVISIONED_DATASOURCE_UID
    )
    assert parsed == expected
    (group,) = parsed["groups"]
    assert [r["uid"] for r in group["rules"]] == [r.uid for r in RULES]
    assert len({r.uid for r in RULES}) == len(RULES)
    (point,) = parsed["contactPoints"]
    assert point["name"] == CONTACT_POINT
    assert point["receivers"][0]["settings"]["url"] == "${GRAFANA_ALERT_WEBHOOK_URL}"
    for rule in group["rules"]:
        assert rule["notification_settings"] == {"receiver": CONTACT_POINT}
        assert rule["data"][0]["datasourceUid"] == PROVISIONED_DATASOURCE_UID
        # Grafana substitutes $NAME in provisioning files; only annotations are left alone.
        assert "$" not in json.dumps({k: v for k, v in rule.items() if k != "annotations"})


# --- push to a fake Grafana -------------------------------------------------------------


@dataclass
class FakeGrafana:
    """A stand-in for Grafana's HTTP API, recording every request it gets.

    No Grafana server runs on our development and CI machines, so the push is tested
    against this: it answers the endpoints a push uses as Grafana 11 does, keeps
    folders, dashboards, contact points and rules by uid, and can fail a step.
    """

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    contact_points: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # path prefix
    delay_s: float = 0.0

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        for prefix, failure in self.fail.items():
            if path.startswith(prefix):
                return failure
        if path == "/api/folders":
            if method == "GET":
                return 200, self.folders
            folder = {"id": 7, "uid": body.get("uid", "generated"), "title": body["title"]}
            self.folders.append(folder)
            return 200, folder
        if path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            self.versions[uid] = self.versions.get(uid, 0) + 1
            return 200, {"uid": uid, "url": f"/d/{uid}/x", "version": self.versions[uid]}
        if path == "/api/v1/provisioning/contact-points":
            if method == "GET":
                return 200, self.contact_points
            self.contact_points.append(body)
            return 202, body
        if path.startswith("/api/v1/provisioning/folder/") and method == "PUT":
            for rule in body["rules"]:  # the group replaced; rules kept by uid
                self.rules[rule["uid"]] = rule
            return 200, body
        return 404, {"message": "not found"}


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path, _, query = self.path.partition("?")
            fake.requests.append(
                {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "auth": self.headers.get("Authorization"),
                    "provenance": self.headers.get("X-Disable-Provenance"),
                    "body": body,
                }
            )
            time.sleep(fake.delay_s)
            status, reply = fake.answer(self.command, path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

    return Handler


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _settings(url: str, folder: str = "City Telemetry") -> DashboardSettings:
    return DashboardSettings(grafana_url=url, grafana_token=TOKEN, grafana_folder=folder)


def _calls(fake: FakeGrafana) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in fake.requests]


RULES_PATH = f"/api/v1/provisioning/folder/city-telemetry/rule-groups/{RULE_GROUP}"
CONTACT_POINTS = "/api/v1/provisioning/contact-points"


def test_push_creates_everything_then_updates_in_place(fake_grafana: FakeGrafana) -> None:
    report = push_dashboards(_settings(fake_grafana.url), timeout_s=5)

    assert _calls(fake_grafana) == [
        ("GET", "/api/folders"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * len(DASHBOARDS),
        ("GET", CONTACT_POINTS),
        ("POST", CONTACT_POINTS),
        ("PUT", RULES_PATH),
    ]
    assert {r["auth"] for r in fake_grafana.requests} == {f"Bearer {TOKEN}"}
    assert fake_grafana.requests[1]["body"] == {"title": "City Telemetry", "uid": "city-telemetry"}
    uploads = [r["body"] for r in fake_grafana.requests if r["path"] == "/api/dashboards/db"]
    assert [u["dashboard"]["uid"] for u in uploads] == [d.uid for d in DASHBOARDS]
    for upload in uploads:
        assert upload["overwrite"] is True and upload["folderUid"] == "city-telemetry"
        assert upload["dashboard"] == build_dashboard(
            next(d for d in DASHBOARDS if d.uid == upload["dashboard"]["uid"])
        )
    created = next(
        r for r in fake_grafana.requests if r["method"] == "POST" and "contact" in r["path"]
    )
    assert created["provenance"] == "true", "the operator fills the stub in, in the UI"
    assert created["body"]["settings"]["url"].startswith("http://127.0.0.1:9/")
    group = fake_grafana.requests[-1]["body"]
    assert group["folderUid"] == "city-telemetry" and group["interval"] == 60
    assert [r["ruleGroup"] for r in group["rules"]] == [RULE_GROUP] * len(RULES)
    assert report.contact_point_created and report.alert_rules == [r.uid for r in RULES]
    assert [p.version for p in report.dashboards] == [1] * len(DASHBOARDS)

    fake_grafana.requests.clear()
    again = push_dashboards(_settings(fake_grafana.url), timeout_s=5)
    assert ("POST", "/api/folders") not in _calls(fake_grafana)
    assert ("POST", CONTACT_POINTS) not in _calls(fake_grafana), "an existing one is kept"
    assert _calls(fake_grafana)[-1] == ("PUT", RULES_PATH)
    assert not again.contact_point_created
    assert [p.version for p in again.dashboards] == [2] * len(DASHBOARDS)
    assert sorted(fake_grafana.rules) == sorted(r.uid for r in RULES), "updated, not duplicated"
    assert len(fake_grafana.contact_points) == 1


def test_push_uses_the_given_datasource_and_webhook(fake_grafana: FakeGrafana) -> None:
    settings = DashboardSettings(
        grafana_url=fake_grafana.url,
        grafana_token=TOKEN,
        grafana_alert_webhook_url="https://oncall.example.org/hook",
    )
    push_dashboards(settings, timeout_s=5, datasource_uid="other-pg")
    (point,) = fake_grafana.contact_points
    assert point["settings"]["url"] == "https://oncall.example.org/hook"
    for rule in fake_grafana.rules.values():
        assert rule["data"][0]["datasourceUid"] == "other-pg"
    upload = next(r["body"] for r in fake_grafana.requests if r["path"] == "/api/dashboards/db")
    assert upload["dashboard"]["templating"]["list"][0]["current"]["value"] == "other-pg"


def test_push_reuses_an_existing_folder_by_title(fake_grafana: FakeGrafana) -> None:
    fake_grafana.folders.append({"id": 3, "uid": "made-by-hand", "title": "citytel"})
    push_dashboards(_settings(fake_grafana.url, folder="citytel"), timeout_s=5)
    assert ("POST", "/api/folders") not in _calls(fake_grafana)
    uploads = [r["body"] for r in fake_grafana.requests if r["path"] == "/api/dashboards/db"]
    assert {u["folderUid"] for u in uploads} == {"made-by-hand"}
    assert _calls(fake_grafana)[-1][1].startswith("/api/v1/provisioning/folder/made-by-hand/")


def test_push_translates_a_refusal(fake_grafana: FakeGrafana) -> None:
    fake_grafana.fail["/api/v1/provisioning/folder/"] = (409, {"message": "rule uid in use"})
    with pytest.raises(GrafanaRejectedError) as caught:
        push_dashboards(_settings(fake_grafana.url), timeout_s=5)
    assert (caught.value.status, caught.value.step) == (409, "upsert alert rules")
    assert "conflict" in str(caught.value) and "rule uid in use" in str(caught.value)


def test_push_translates_a_timeout(fake_grafana: FakeGrafana) -> None:
    fake_grafana.delay_s = 1.0
    with pytest.raises(GrafanaUnreachableError) as caught:
        push_dashboards(_settings(fake_grafana.url), timeout_s=0.2)
    assert caught.value.step == "list folders"


def test_push_translates_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GrafanaUnreachableError) as caught:
        push_dashboards(_settings(url), timeout_s=2)
    assert caught.value.url == url


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("fail", "says"),
    [
        (("/api/folders", 401, {"message": "invalid API key"}), "bad credentials: check"),
        (
            ("/api/dashboards/db", 412, {"message": "The dashboard has been changed by someone"}),
            "version conflict",
        ),
    ],
    ids=["bad-credentials", "version-conflict"],
)
def test_push_command_says_what_failed_in_one_line(
    fake_grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, fail: tuple, says: str
) -> None:
    prefix, status, body = fail
    fake_grafana.fail[prefix] = (status, body)
    monkeypatch.setenv("CITYTEL_GRAFANA_URL", fake_grafana.url)
    monkeypatch.setenv("CITYTEL_GRAFANA_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["dashboards", "push", "--timeout-s", "5"])
    assert result.exit_code == 1
    (line,) = _error_lines(result.output)
    assert says in line and body["message"] in line and f"status={status}" in line


def test_push_command_reports_an_unreachable_grafana(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYTEL_GRAFANA_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CITYTEL_GRAFANA_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["dashboards", "push", "--timeout-s", "2"])
    assert result.exit_code == 1
    (line,) = _error_lines(result.output)
    assert "unreachable" in line


def test_push_command_refuses_a_bad_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYTEL_GRAFANA_URL", "grafana.example.org:3000")
    monkeypatch.setattr(sys, "argv", ["citytel", "dashboards", "push"])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("config error: CITYTEL_GRAFANA_URL: not an http(s)://host[:port] URL")
