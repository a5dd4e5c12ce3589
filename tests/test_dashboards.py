"""Dashboards as code: deterministic build, SQL that runs, push to a Grafana HTTP API."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from citytel.cli import app
from core.broker import free_port
from core.settings import DashboardSettings
from dashboards.build import (
    DASHBOARDS,
    IMPORT_INPUT,
    PROVISIONED_DATASOURCE_UID,
    TIMING_COVERAGE_TARGET_PCT,
    build_dashboard,
    default_out_dir,
    render_files,
)
from dashboards.errors import GrafanaRejectedError, GrafanaUnreachableError
from dashboards.push import push_dashboards

CITY = "testcity"
TOKEN = "glsa_test_token_0123456789"


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


def test_build_models_have_stable_uids_null_ids_and_datasource_variables() -> None:
    files = render_files()
    uids = [d.uid for d in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for dashboard in DASHBOARDS:
        imported = json.loads(files[f"json/{dashboard.uid}.json"])
        provisioned = json.loads(files[f"provisioning/dashboards/citytel/{dashboard.uid}.json"])
        for model, ds_uid in ((imported, f"${{{IMPORT_INPUT}}}"), (provisioned, "citytel-pg")):
            assert model["id"] is None
            assert model["uid"] == dashboard.uid
            refs = [p["datasource"]["uid"] for p in model["panels"]]
            refs += [t["datasource"]["uid"] for p in model["panels"] for t in p["targets"]]
            assert set(refs) == {ds_uid}
            assert [p["id"] for p in model["panels"]] == list(range(1, len(model["panels"]) + 1))
        assert imported["__inputs"][0]["name"] == IMPORT_INPUT
        assert "__inputs" not in provisioned
    datasource = files["provisioning/datasources/citytel.yaml"]
    assert f"uid: {PROVISIONED_DATASOURCE_UID}" in datasource
    assert "password: ${GRAFANA_PG_PASSWORD}" in datasource


def test_build_covers_the_required_panels() -> None:
    titles = {p.title for d in DASHBOARDS for p in d.panels}
    for wanted in (
        "Messages stored per minute by kind",
        "Poles online",
        "Lamp power by district",
        "PM2.5 by district",
        "Signal-timing coverage",
        "Signal-timing coverage %",
        "Volume by hour",
        "PV, load, grid and storage",
        "Renewable self-consumption",
        "Dead letters by reason",
        "Feed freshness",
    ):
        assert wanted in titles


# --- SQL against the real database ----------------------------------------------------

_MACROS = (
    (
        re.compile(r"\$__timeFilter\((\w+(?:\.\w+)?)\)"),
        r"\1 BETWEEN now() - INTERVAL '6 hours' AND now() + INTERVAL '1 minute'",
    ),
    (re.compile(r"\$__interval_ms\b"), "60000"),
    (re.compile(r"\$city\b"), f"'{CITY}'"),
)


def to_plain_sql(sql: str) -> str:
    """What Grafana sends the database for a 6-hour range, 1-minute interval, one city."""
    for pattern, replacement in _MACROS:
        sql = pattern.sub(replacement, sql)
    assert "$" not in sql, f"unhandled Grafana macro in:\n{sql}"
    return sql


def all_queries() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for dashboard in DASHBOARDS:
        model = build_dashboard(dashboard, datasource_uid=PROVISIONED_DATASOURCE_UID)
        for variable in model["templating"]["list"]:
            found.append((f"{dashboard.uid}: ${variable['name']}", variable["query"]))
        for panel in model["panels"]:
            for target in panel["targets"]:
                found.append((f"{dashboard.uid}: {panel['title']}", target["rawSql"]))
    return found


SEED = """
SELECT citytel_ensure_partitions(t::regclass, ARRAY[
    (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date])
FROM unnest(ARRAY['pole_telemetry', 'signal_telemetry', 'energy_telemetry']) t;

INSERT INTO devices (device_id, kind, city, district, interval_s) VALUES
    ('pole-1', 'pole', 'testcity', 'north', 60),
    ('pole-2', 'pole', 'testcity', NULL, 60),
    ('sig-1', 'signal', 'testcity', 'north', 60),
    ('sig-2', 'signal', 'testcity', 'south', 60),
    ('sig-3', 'signal', 'testcity', 'south', 60),
    ('site-1', 'energy', 'testcity', 'south', 60),
    ('site-2', 'energy', 'testcity', 'south', 60),
    ('pole-x', 'pole', 'othercity', 'east', 60);

INSERT INTO device_status (device_id, online, last_seen) VALUES
    ('pole-1', true, now() - INTERVAL '30 seconds'),
    ('pole-2', true, now() - INTERVAL '1 hour'),
    ('sig-2', true, now() - INTERVAL '170 seconds'),
    ('sig-1', true, now() - INTERVAL '10 seconds'),
    ('site-1', false, now() - INTERVAL '10 seconds');

INSERT INTO pole_telemetry (device_id, ts, lamp_power_w, pm25_ugm3)
SELECT d, now() - make_interval(mins => m), 80 + m, 10 + m
FROM unnest(ARRAY['pole-1', 'pole-2', 'pole-x']) d, generate_series(1, 5) m;

INSERT INTO signal_telemetry (device_id, ts, mode, volume)
SELECT 'sig-1', now() - make_interval(mins => m), 'adaptive', 12 FROM generate_series(1, 5) m
UNION ALL
SELECT 'sig-2', now() - make_interval(mins => m), 'fixed_time', 7 FROM generate_series(1, 5) m;

INSERT INTO energy_telemetry (device_id, ts, pv_kw, wind_kw, load_kw, grid_kw, storage_kw)
SELECT 'site-1', now() - make_interval(mins => m), 10, 0, 6, -3, -1 FROM generate_series(1, 5) m
UNION ALL
SELECT 'site-2', now() - make_interval(mins => m), 0, 0, 2, 2, 0 FROM generate_series(1, 5) m;

INSERT INTO dead_letters (topic, payload, reason, digest)
SELECT 'citytel/v1/testcity/pole/pole-9/telemetry', '{}'::bytea, r, decode(md5(r), 'hex')
FROM unnest(ARRAY['schema', 'unknown_device']) r;
"""


@pytest.fixture
async def seeded_db(db: asyncpg.Connection) -> asyncpg.Connection:
    await db.execute(SEED)
    return db


@pytest.mark.parametrize(("where", "sql"), all_queries(), ids=[w for w, _ in all_queries()])
async def test_panel_sql_runs_on_empty_database(
    db: asyncpg.Connection, where: str, sql: str
) -> None:
    await db.fetch(to_plain_sql(sql))


@pytest.mark.parametrize(("where", "sql"), all_queries(), ids=[w for w, _ in all_queries()])
async def test_panel_sql_returns_rows_on_seeded_database(
    seeded_db: asyncpg.Connection, where: str, sql: str
) -> None:
    rows = await seeded_db.fetch(to_plain_sql(sql))
    assert rows, f"{where}: no rows"


async def _fetch_panel(db: asyncpg.Connection, title: str) -> list[asyncpg.Record]:
    sql = next(p.sql for d in DASHBOARDS for p in d.panels if p.title == title)
    return await db.fetch(to_plain_sql(sql))


async def test_panel_sql_computes_the_indicators(seeded_db: asyncpg.Connection) -> None:
    (online,) = await _fetch_panel(seeded_db, "Poles online")
    assert online["city"] == CITY
    assert float(online["online %"]) == 50.0  # pole-2 is online but silent for 1 h

    by_district = await _fetch_panel(seeded_db, "Poles online by district")
    assert [(r["district"], r["poles"], r["online"]) for r in by_district] == [
        ("(none)", 1, 0),
        ("north", 1, 1),
    ]

    # 3 registered signals: sig-1 adaptive, sig-2 fixed_time, sig-3 silent.
    (now,) = await _fetch_panel(seeded_db, "Signal-timing coverage %")
    assert float(now["coverage %"]) == 33.33
    coverage = await _fetch_panel(seeded_db, "Signal-timing coverage")
    values = [float(r["coverage %"]) for r in coverage]
    assert values == pytest.approx([33.33] * len(coverage)) and coverage

    modes = await _fetch_panel(seeded_db, "Modes now")
    assert {r["mode"]: r["controllers"] for r in modes} == {"adaptive": 1, "fixed_time": 1}

    consumption = await _fetch_panel(seeded_db, "Renewable self-consumption")
    values = [float(r["self-consumption %"]) for r in consumption]
    # site-1: 3 of 10 kW out; site-2 generates nothing and is left out, not 100 %.
    assert values == pytest.approx([70.0] * len(consumption)) and consumption

    per_minute = await _fetch_panel(seeded_db, "Messages stored per minute by kind")
    totals: dict[str, float] = {}
    for row in per_minute:
        totals[row["metric"]] = totals.get(row["metric"], 0) + row["value"]
    assert totals == {"pole": 15, "signal": 10, "energy": 10}

    # sig-2 was heard 170 s ago: fresh, since that is within 3 x 60 s.
    stale = await _fetch_panel(seeded_db, "Stalest devices")
    assert [r["device_id"] for r in stale] == ["sig-3", "site-2", "pole-2"]  # never seen first

    freshness = await _fetch_panel(seeded_db, "Feed freshness")
    assert [(r["kind"], r["devices"], r["fresh"], r["stale"]) for r in freshness] == [
        ("energy", 2, 1, 1),  # site-1 says offline, but its feed is fresh
        ("pole", 2, 1, 1),
        ("signal", 3, 2, 1),
    ]


async def test_coverage_threshold_is_the_view_target(seeded_db: asyncpg.Connection) -> None:
    targets = await seeded_db.fetch("SELECT DISTINCT target_pct FROM signal_timing_coverage")
    assert [float(r["target_pct"]) for r in targets] == [TIMING_COVERAGE_TARGET_PCT]
    model = build_dashboard(
        next(d for d in DASHBOARDS if d.uid == "citytel-signals"),
        datasource_uid=PROVISIONED_DATASOURCE_UID,
    )
    for title in ("Signal-timing coverage %", "Signal-timing coverage"):
        panel = next(p for p in model["panels"] if p["title"] == title)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1] == {"color": "green", "value": TIMING_COVERAGE_TARGET_PCT}


# --- push to a fake Grafana -------------------------------------------------------------


@dataclass
class FakeGrafana:
    """A stand-in for Grafana's HTTP API, recording every request it gets.

    A mock, used only because no Grafana server can run on our development and CI
    machines; it answers the three endpoints a push uses as Grafana 11 does.
    """

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path.split("?")[0],
                    "auth": self.headers.get("Authorization"),
                    "body": body,
                }
            )
            time.sleep(fake.delay_s)
            return body

        def do_GET(self) -> None:
            self._record()
            if fake.status != 200:
                self._reply(fake.status, {"message": "invalid API key"})
            elif self.path.startswith("/api/folders"):
                self._reply(200, fake.folders)
            else:
                self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            body = self._record()
            if fake.status != 200:
                self._reply(fake.status, {"message": "invalid API key"})
            elif self.path == "/api/folders":
                folder = {"id": 7, "uid": body.get("uid", "generated"), "title": body["title"]}
                fake.folders.append(folder)
                self._reply(200, folder)
            elif self.path == "/api/dashboards/db":
                uid = body["dashboard"]["uid"]
                self._reply(
                    200,
                    {
                        "id": 1,
                        "uid": uid,
                        "url": f"/d/{uid}/x",
                        "status": "success",
                        "version": 3,
                        "slug": "x",
                    },
                )
            else:
                self._reply(404, {"message": "not found"})

    return Handler


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeGrafana(url="")))
    fake = FakeGrafana(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _settings(url: str, folder: str = "City Telemetry") -> DashboardSettings:
    return DashboardSettings(grafana_url=url, grafana_token=TOKEN, grafana_folder=folder)


def test_push_creates_folder_and_upserts_every_dashboard(fake_grafana: FakeGrafana) -> None:
    pushed = push_dashboards(_settings(fake_grafana.url), timeout_s=5)

    calls = [(r["method"], r["path"]) for r in fake_grafana.requests]
    assert calls == [("GET", "/api/folders"), ("POST", "/api/folders")] + [
        ("POST", "/api/dashboards/db")
    ] * len(DASHBOARDS)
    assert {r["auth"] for r in fake_grafana.requests} == {f"Bearer {TOKEN}"}
    assert fake_grafana.requests[1]["body"] == {"title": "City Telemetry", "uid": "city-telemetry"}
    uploads = [r["body"] for r in fake_grafana.requests[2:]]
    assert [u["dashboard"]["uid"] for u in uploads] == [d.uid for d in DASHBOARDS]
    for upload in uploads:
        assert upload["overwrite"] is True
        assert upload["folderUid"] == "city-telemetry"
        assert upload["dashboard"]["id"] is None
        assert upload["dashboard"]["panels"][0]["datasource"]["uid"] == "citytel-pg"
    assert [p.uid for p in pushed] == [d.uid for d in DASHBOARDS]
    assert pushed[0].url == f"{fake_grafana.url}/d/{DASHBOARDS[0].uid}/x"
    assert pushed[0].version == 3


def test_push_reuses_an_existing_folder_by_title(fake_grafana: FakeGrafana) -> None:
    fake_grafana.folders.append({"id": 3, "uid": "made-by-hand", "title": "citytel"})
    push_dashboards(_settings(fake_grafana.url, folder="citytel"), timeout_s=5)
    assert ("POST", "/api/folders") not in [(r["method"], r["path"]) for r in fake_grafana.requests]
    uploads = [r["body"] for r in fake_grafana.requests if r["path"] == "/api/dashboards/db"]
    assert {u["folderUid"] for u in uploads} == {"made-by-hand"}


def test_push_translates_a_refusal(fake_grafana: FakeGrafana) -> None:
    fake_grafana.status = 401
    with pytest.raises(GrafanaRejectedError) as caught:
        push_dashboards(_settings(fake_grafana.url), timeout_s=5)
    assert caught.value.status == 401
    assert caught.value.step == "list folders"
    assert fake_grafana.url in str(caught.value)


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


def test_push_command_reports_errors_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYTEL_GRAFANA_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CITYTEL_GRAFANA_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["dashboards", "push", "--timeout-s", "2"])
    assert result.exit_code == 1
    assert "unreachable" in result.output
