"""Every panel's and alert rule's SQL on a real database holding a simulated day.

The SQL is expanded as Grafana expands it (tests/grafana_macros.py) for three panel
intervals, one per rollup level (1 minute: 15-minute rollups; 2 hours: hourly; 2 days:
daily), and must return rows whose columns have the types the panel needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from conftest import ADMIN_URL
from dashboard_day import CITIES, FAULTY_SIGNAL, day_range, write_day
from grafana_macros import GrafanaQuery, Var

from dashboards.alerts import RULES
from dashboards.build import DASHBOARDS
from dashboards.model import AlertRule, Panel, Variable
from dashboards.render import build_dashboard
from dashboards.signals import TIMING_COVERAGE_TARGET_PCT
from schemas.payloads import TELEMETRY_TABLES
from schemas.scratch import scratch_database

MINUTE, TWO_HOURS, TWO_DAYS = 60_000, 7_200_000, 172_800_000
INTERVALS = {"15m": MINUTE, "1h": TWO_HOURS, "1d": TWO_DAYS}
TIME = {"timestamptz"}
NUMBER = {"float8", "float4", "numeric", "int8", "int4", "int2"}
TEXT = {"text", "varchar", "name"}


@dataclass(frozen=True)
class Case:
    """One panel (or one repetition of a repeated panel) of one dashboard."""

    dashboard: str
    panel: Panel
    repeat_value: str | None = None

    @property
    def id(self) -> str:
        title = self.panel.title if self.repeat_value is None else self.repeat_value
        return f"{self.dashboard}: {title}"


def _cases() -> Iterator[Case]:
    for dashboard in DASHBOARDS:
        for panel in dashboard.panels:
            if panel.repeat:
                yield from (Case(dashboard.uid, panel, name) for name in _INDICATORS)
            else:
                yield Case(dashboard.uid, panel)


# The seeded catalogue (schemas/sql/010_plan_indicators.sql); a test checks it is complete.
_INDICATORS = (
    "signal_timing_coverage",
    "pole_lamp_on_night_rate",
    "energy_peak_shaving",
    "feed_completeness",
)
CASES = list(_cases())


@dataclass(frozen=True)
class Day:
    conn: asyncpg.Connection
    now: datetime  # the simulated day ends here


@pytest.fixture(scope="module")
async def day() -> AsyncIterator[Day]:
    """A database of its own (other tests empty theirs) holding the simulated day."""
    async with scratch_database(ADMIN_URL, "citytel_dash") as url:
        conn = await asyncpg.connect(str(url))
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            await write_day(conn, str(url), now)
            yield Day(conn, now)
        finally:
            await conn.close()


async def _all_values(day: Day, variable: Variable) -> tuple[str, ...]:
    if variable.query is None:
        return variable.options
    sql = GrafanaQuery(*day_range(day.now), MINUTE, {"city": Var(CITIES)}).expand(variable.query)
    return tuple(str(r[0]) for r in await day.conn.fetch(sql))


async def grafana_query(day: Day, case: Case, interval_ms: int) -> GrafanaQuery:
    """Every variable at 'All' (its default otherwise); a repeat at one value."""
    dashboard = next(d for d in DASHBOARDS if d.uid == case.dashboard)
    variables: dict[str, Var] = {}
    for variable in dashboard.variables:
        if variable.name == case.panel.repeat:
            variables[variable.name] = Var((case.repeat_value or "",), texts=("an indicator",))
        elif variable.default is not None:
            variables[variable.name] = Var((variable.default,), multi=variable.multi)
        else:
            variables[variable.name] = Var(await _all_values(day, variable))
    return GrafanaQuery(*day_range(day.now), interval_ms, variables)


async def _columns(conn: asyncpg.Connection, sql: str) -> dict[str, str]:
    statement = await conn.prepare(sql)
    return {a.name: a.type.name for a in statement.get_attributes()}


def _check_types(panel: Panel, columns: dict[str, str]) -> None:
    if panel.format == "time_series":
        names = list(columns)
        assert names[0] == "time" and columns["time"] in TIME, columns
        assert columns.get("metric", "text") in TEXT, columns
        values = [n for n in names[1:] if n != "metric"]
        assert values and all(columns[n] in NUMBER for n in values), columns
    elif panel.kind == "geomap":
        assert columns["lat"] in NUMBER and columns["lon"] in NUMBER, columns
        assert columns["freshness"] in NUMBER, columns
    elif panel.kind in ("stat", "piechart"):
        assert any(t in NUMBER for t in columns.values()), columns
        assert any(t in TEXT for t in columns.values()), columns


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_panel_sql_returns_typed_rows_at_every_rollup_level(day: Day, case: Case) -> None:
    for level, interval_ms in INTERVALS.items():
        sql = (await grafana_query(day, case, interval_ms)).expand(case.panel.sql)
        _check_types(case.panel, await _columns(day.conn, sql))
        rows = await day.conn.fetch(sql)
        assert rows, f"{case.id}: no rows with the {level} interval"


async def test_repeated_panel_covers_the_whole_catalogue(day: Day) -> None:
    names = {r["name"] for r in await day.conn.fetch("SELECT name FROM indicators")}
    assert set(_INDICATORS) <= names
    plan = next(d for d in DASHBOARDS if d.uid == "citytel-plan")
    indicator = next(v for v in plan.variables if v.name == "indicator")
    assert set(await _all_values(day, indicator)) == names


def _raw_partition_day(relation: str) -> date | None:
    for table in TELEMETRY_TABLES.values():
        match = re.fullmatch(rf"{table}_p(\d{{8}})", relation)
        if match:
            return datetime.strptime(match[1], "%Y%m%d").date()
    return None


def _touched(plan: dict) -> Iterator[tuple[str, int]]:
    """(relation, rows the node read: returned plus filtered out) of every scan node."""
    if "Relation Name" in plan:
        rows = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1)
        rows += plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
        yield plan["Relation Name"], rows
    for child in plan.get("Plans", []):
        yield from _touched(child)


async def _old_raw_rows(day: Day, sql: str) -> dict[str, int]:
    (row,) = await day.conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    plan = json.loads(row[0])[0]["Plan"]
    oldest = (day.now - timedelta(days=2)).date()
    return {
        relation: rows
        for relation, rows in _touched(plan)
        if (day := _raw_partition_day(relation)) is not None and day < oldest and rows
    }


@pytest.fixture(scope="module")
async def old_raw_rows(day: Day) -> Day:
    """Raw rows 3 to 9 days old that no rollup holds: reading them is reading raw history."""
    for kind, table in TELEMETRY_TABLES.items():
        column = {"pole": "lamp_on", "signal": "mode", "energy": "load_kw"}[str(kind)]
        value = {"pole": "true", "signal": "'adaptive'", "energy": "10"}[str(kind)]
        await day.conn.execute(
            f"INSERT INTO {table} (device_id, ts, {column})"
            f" SELECT device_id, now() - d * INTERVAL '1 day', {value}"
            f" FROM devices, generate_series(3, 9) d WHERE kind = '{kind}'"
        )
    return day


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_panel_sql_reads_no_raw_telemetry_older_than_two_days(
    old_raw_rows: Day, case: Case
) -> None:
    """Over 30 days, a panel reads rollups; raw rows only within a bound of 2 days at most."""
    query = await grafana_query(old_raw_rows, case, TWO_HOURS)
    query.time_from = old_raw_rows.now - timedelta(days=30)
    touched = await _old_raw_rows(old_raw_rows, query.expand(case.panel.sql))
    assert not touched, f"{case.id} reads raw history: {touched}"


@pytest.mark.parametrize("rule", RULES, ids=[r.uid for r in RULES])
async def test_alert_rule_sql_returns_labels_and_one_value(
    old_raw_rows: Day, rule: AlertRule
) -> None:
    assert "$" not in rule.sql, "alert rules run without Grafana macros or variables"
    columns = await _columns(old_raw_rows.conn, rule.sql)
    values = [n for n, t in columns.items() if t in NUMBER]
    assert len(values) == 1, columns
    assert all(t in TEXT for n, t in columns.items() if n not in values), columns
    assert not await _old_raw_rows(old_raw_rows, rule.sql)


async def test_alert_rules_fire_on_the_simulated_day(day: Day) -> None:
    fault = next(r for r in RULES if r.uid == "citytel-critical-signal-fault")
    faults = {(r["device_id"], r["code"]) for r in await day.conn.fetch(fault.sql)}
    assert (FAULTY_SIGNAL, "green_conflict") in faults
    spike = next(r for r in RULES if r.uid == "citytel-dead-letter-spike")
    assert await day.conn.fetch(spike.sql), "the day's dead letters arrived just now: a spike"
    stale = next(r for r in RULES if r.uid == "citytel-stale-devices")
    shares = {(r["city"], r["kind"]): r["stale_pct"] for r in await day.conn.fetch(stale.sql)}
    assert set(shares) == {(c, k) for c in CITIES for k in ("pole", "signal", "energy")}
    assert max(shares.values()) < 50, "the simulated devices report until now"


async def test_rows_per_second_add_up_to_the_rows_stored(day: Day) -> None:
    """The rollup level and the rebinning lose nothing: rate x bucket = raw rows."""
    panel = next(p for p in DASHBOARDS[0].panels if p.title.startswith("Telemetry rows"))
    start, end = day_range(day.now)
    for interval_ms in INTERVALS.values():
        query = await grafana_query(day, Case("citytel-overview", panel), interval_ms)
        rows = await day.conn.fetch(query.expand(panel.sql))
        bucket_s = max(interval_ms, 900_000) / 1000
        for kind, table in TELEMETRY_TABLES.items():
            stored = await day.conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE ts BETWEEN $1 AND $2", start, end
            )
            total = sum(float(r["value"]) * bucket_s for r in rows if r["metric"] == str(kind))
            assert total == pytest.approx(stored), (kind, interval_ms)


async def test_coverage_threshold_is_the_seeded_target(day: Day) -> None:
    targets = await day.conn.fetch("SELECT DISTINCT target_pct FROM signal_timing_coverage")
    assert [float(r["target_pct"]) for r in targets] == [TIMING_COVERAGE_TARGET_PCT]
    signals = build_dashboard(next(d for d in DASHBOARDS if d.uid == "citytel-signals"))
    panel = next(p for p in signals["panels"] if p["title"] == "Signal-timing coverage now")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "green", "value": TIMING_COVERAGE_TARGET_PCT}
