"""``citytel bench query``: indicator, aggregate and series requests at two city scales.

For each scale (S: 300 intersections, 1,000 poles, 20 energy nodes; L: ten times the
devices; 30 days at a 5-minute interval) a throwaway database gets the history
straight from PostgreSQL (:mod:`bench.history`) and its rollups are refreshed. Then:

- **through the API**: ``citytel api`` runs as its own process; the same indicator,
  aggregate and device series requests are sent over loopback, one at a time, each
  ``repeat`` times; the p50 and p95 latencies are reported per request and scale, with
  L / S;
- **rollups against raw rows**: a few of the same questions are answered in SQL from
  the rollups (the functions the API calls) and straight from the raw tables, side by
  side on the same database, so the rollups' gain is a measured ratio; the two answers
  are compared too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from api.keys import Role, create_key
from bench.errors import BenchError
from bench.history import LARGE, SMALL, Scale, load_history
from core.broker import free_port
from core.urls import DatabaseUrl
from ingest.rollups import RollupRefresher
from schemas.migrate import StorageChoice
from schemas.scratch import scratch_database

Progress = Callable[[str, int, int], None]
Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Request:
    """One API request of the benchmark; ``window_days`` before the history's end."""

    label: str
    path: str
    params: dict[str, str]
    window_days: int


REQUESTS = (
    Request(
        "coverage, city, 30 days by day",
        "/v1/indicators/signal_timing_coverage",
        {"city": "qingdao", "period": "day"},
        30,
    ),
    Request(
        "coverage, province, 30 days by week",
        "/v1/indicators/signal_timing_coverage",
        {"period": "week"},
        30,
    ),
    Request(
        "pole online rate, city, 30 days",
        "/v1/indicators/pole_online_rate",
        {"city": "jinan", "period": "day"},
        30,
    ),
    Request(
        "lamp-on at night, district, 30 days",
        "/v1/indicators/pole_lamp_on_night_rate",
        {"city": "jinan", "district": "d2", "period": "day"},
        30,
    ),
    Request(
        "PM2.5 exceedance hours, city, 30 days",
        "/v1/indicators/pole_pm25_exceedance_hours",
        {"city": "yantai", "period": "day"},
        30,
    ),
    Request(
        "self-sufficiency, province, 30 days",
        "/v1/indicators/energy_self_sufficiency",
        {"period": "day"},
        30,
    ),
    Request(
        "peak grid import, city, 30 days",
        "/v1/indicators/energy_peak_grid_import",
        {"city": "jining", "period": "week"},
        30,
    ),
    Request(
        "poles by hour, city, 7 days", "/v1/aggregates/pole", {"city": "jinan", "bucket": "1h"}, 7
    ),
    Request(
        "energy by local day, province, 30 days", "/v1/aggregates/energy", {"bucket": "1d"}, 30
    ),
    Request(
        "signals by 15 min, district, 2 days",
        "/v1/aggregates/signal",
        {"city": "qingdao", "district": "d1", "bucket": "15m"},
        2,
    ),
    # One device: its raw rows through the (device_id, ts) key, whatever the city's size.
    Request(
        "one pole's PM2.5 by hour, 30 days",
        "/v1/devices/pole-000007/series",
        {"fields": "pm25_ugm3", "bucket": "1h"},
        30,
    ),
    Request(
        "one energy node's last SoC by day, 30 days",
        "/v1/devices/energy-000003/series",
        {"fields": "soc_pct", "bucket": "1d", "agg": "last"},
        30,
    ),
)


@dataclass(frozen=True, slots=True)
class SqlPair:
    """One question answered from the rollups and from the raw rows (same result)."""

    label: str
    rollup: str
    raw: str
    window_days: int


_TZ = "'Asia/Shanghai'"
SQL_PAIRS = (
    SqlPair(
        "coverage, city, 30 days by day",
        "SELECT period_start, value FROM citytel_indicator('signal_timing_coverage', 'qingdao',"
        " NULL, $1, $2, 'day') WHERE NOT is_total ORDER BY 1",
        f"""SELECT day AT TIME ZONE {_TZ}, count(*) FILTER (WHERE 2 * i >= n)::float8
                   / (SELECT count(*) FROM devices WHERE kind = 'signal' AND city = 'qingdao')
            FROM (SELECT t.device_id, date_trunc('day', t.ts AT TIME ZONE {_TZ}) AS day,
                         count(*) AS n, count(*) FILTER (WHERE t.mode IN
                             ('actuated', 'coordinated', 'adaptive')) AS i
                  FROM signal_telemetry t JOIN devices d ON d.device_id = t.device_id
                  WHERE d.city = 'qingdao' AND t.ts >= $1 AND t.ts < $2 GROUP BY 1, 2) x
            GROUP BY day ORDER BY 1""",
        30,
    ),
    SqlPair(
        "pole online rate, province, 30 days by day",
        "SELECT period_start, value FROM citytel_indicator('pole_online_rate', NULL, NULL,"
        " $1, $2, 'day') WHERE NOT is_total ORDER BY 1",
        f"""SELECT day AT TIME ZONE {_TZ}, least(1, sum(c) / (SELECT count(*) * 86400.0 / 300
                                                      FROM devices WHERE kind = 'pole'))
            FROM (SELECT date_trunc('day', h AT TIME ZONE {_TZ}) AS day, least(n, 12) AS c
                  FROM (SELECT device_id, date_trunc('hour', ts) AS h, count(*) AS n
                        FROM pole_telemetry WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2) y) x
            GROUP BY day ORDER BY 1""",
        30,
    ),
    SqlPair(
        "energy self-sufficiency, province, 30 days by day",
        "SELECT period_start, value FROM citytel_indicator('energy_self_sufficiency', NULL,"
        " NULL, $1, $2, 'day') WHERE NOT is_total ORDER BY 1",
        f"""SELECT date_trunc('day', ts AT TIME ZONE {_TZ}) AT TIME ZONE {_TZ},
                   greatest(0, least(1, (sum(coalesce(load_kw, 0)) - sum(greatest(grid_kw, 0)))
                                        / nullif(sum(coalesce(load_kw, 0)), 0)))
            FROM energy_telemetry WHERE ts >= $1 AND ts < $2 GROUP BY 1 ORDER BY 1""",
        30,
    ),
    SqlPair(
        "mean PM2.5 by hour, city, 7 days",
        "SELECT bucket, sum(pm25_avg_ugm3 * pm25_samples) / sum(pm25_samples) FROM pole_area_1h"
        " WHERE city = 'jinan' AND bucket >= $1 AND bucket < $2 GROUP BY 1 ORDER BY 1",
        """SELECT date_trunc('hour', t.ts), avg(t.pm25_ugm3) FROM pole_telemetry t
            JOIN devices d ON d.device_id = t.device_id
            WHERE d.city = 'jinan' AND t.ts >= $1 AND t.ts < $2 GROUP BY 1 ORDER BY 1""",
        7,
    ),
)


@dataclass(frozen=True, slots=True)
class QueryBenchOptions:
    admin_url: DatabaseUrl
    scales: tuple[Scale, ...] = (SMALL, LARGE)
    days: int = 30
    repeat: int = 30
    raw_repeat: int = 3
    storage: StorageChoice = "auto"


@dataclass(slots=True)
class ScaleResult:
    scale: str
    devices: int
    rows: int
    load_s: float = 0.0
    refresh_s: float = 0.0
    raw_mb: float = 0.0
    rollup_mb: float = 0.0
    storage: str = ""
    api: dict[str, dict[str, float]] = field(default_factory=dict)
    sql: dict[str, dict[str, Any]] = field(default_factory=dict)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class QueryBench:
    def __init__(self, options: QueryBenchOptions, *, on_progress: Progress, on_note: Note) -> None:
        self.options = options
        self.on_progress = on_progress
        self.on_note = on_note

    async def run(self) -> list[ScaleResult]:
        results = []
        for scale in self.options.scales:
            sized = Scale(scale.name, scale.signals, scale.poles, scale.energy, self.options.days)
            results.append(await self._run_scale(sized))
        return results

    async def _run_scale(self, scale: Scale) -> ScaleResult:
        result = ScaleResult(scale.name, scale.devices, scale.rows)
        end = datetime.now(UTC).replace(hour=16, minute=0, second=0, microsecond=0)
        async with scratch_database(
            self.options.admin_url, "citytel_qbench", storage=self.options.storage
        ) as url:
            conn = await asyncpg.connect(str(url))
            try:
                result.storage = str(
                    await conn.fetchval("SELECT value FROM citytel_meta WHERE key = 'storage_mode'")
                )
                started = time.perf_counter()
                start, end = await load_history(conn, scale, end, self.on_progress)
                result.load_s = time.perf_counter() - started
                started = time.perf_counter()
                await RollupRefresher().refresh_range(
                    conn, start, end, on_progress=self._phase(f"rollups {scale.name}")
                )
                result.refresh_s = time.perf_counter() - started
                await conn.execute("ANALYZE")
                result.raw_mb, result.rollup_mb = await _sizes(conn)
                self.on_note(
                    f"{scale.name}: {scale.rows:,} rows loaded in {result.load_s:.0f} s,"
                    f" rollups in {result.refresh_s:.0f} s ({result.storage})"
                )
                _, key = await create_key(conn, Role.VIEWER, "bench query")
                result.api = await self._measure_api(url, key, end, scale.name)
                result.sql = await self._measure_sql(conn, end, scale.name)
            finally:
                await conn.close()
        return result

    def _days(self, window_days: int) -> timedelta:
        """A request's window, within the history loaded."""
        return timedelta(days=min(window_days, self.options.days))

    def _phase(self, name: str) -> Progress:
        return lambda _, done, total: self.on_progress(name, done, total)

    async def _measure_api(
        self, url: DatabaseUrl, key: str, end: datetime, scale: str
    ) -> dict[str, dict[str, float]]:
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="citytel-qbench-") as folder:
            log = Path(folder) / "api.log"
            process = _start_api(url, port, log)
            try:
                base = f"http://127.0.0.1:{port}"
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
                    await _wait_ready(http, process, log)
                    found: dict[str, dict[str, float]] = {}
                    total = len(REQUESTS) * (self.options.repeat + 2)
                    done = 0
                    for request in REQUESTS:
                        params = request.params | {
                            "from": (end - self._days(request.window_days)).isoformat(),
                            "to": end.isoformat(),
                        }
                        samples = []
                        for attempt in range(self.options.repeat + 2):  # two warm-ups
                            started = time.perf_counter()
                            response = await http.get(request.path, params=params)
                            elapsed = (time.perf_counter() - started) * 1000
                            if response.status_code != 200:
                                raise BenchError(f"{request.path}: {response.text[:300]}")
                            if attempt >= 2:
                                samples.append(elapsed)
                            done += 1
                            self.on_progress(f"API {scale}", done, total)
                        found[request.label] = {
                            "p50_ms": statistics.median(samples),
                            "p95_ms": percentile(samples, 0.95),
                            "points": len(response.json().get("points", [])),
                        }
                    return found
            finally:
                process.terminate()
                process.wait(timeout=30)

    async def _measure_sql(
        self, conn: asyncpg.Connection, end: datetime, scale: str
    ) -> dict[str, dict[str, Any]]:
        found = {}
        for done, pair in enumerate(SQL_PAIRS, 1):
            start = end - self._days(pair.window_days)
            rollup_ms, rollup_rows = await _time(conn, pair.rollup, start, end, self.options.repeat)
            raw_ms, raw_rows = await _time(conn, pair.raw, start, end, self.options.raw_repeat)
            found[pair.label] = {
                "rollup_ms": rollup_ms,
                "raw_ms": raw_ms,
                "raw_over_rollup": raw_ms / rollup_ms if rollup_ms else None,
                "same_answer": _same(rollup_rows, raw_rows),
            }
            self.on_progress(f"SQL {scale}", done, len(SQL_PAIRS))
        return found


async def _time(
    conn: asyncpg.Connection, sql: str, start: datetime, end: datetime, repeat: int
) -> tuple[float, list[asyncpg.Record]]:
    rows: list[asyncpg.Record] = []
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        rows = await conn.fetch(sql, start, end)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:]), rows  # the first run warms the cache


def _same(a: list[asyncpg.Record], b: list[asyncpg.Record]) -> bool:
    """The two answers agree: the same buckets, values within a part in a million."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[0] != y[0]:
            return False
        u, v = (None if x[1] is None else float(x[1])), (None if y[1] is None else float(y[1]))
        if u is None or v is None:
            if u is not v:
                return False
        elif abs(u - v) > 1e-6 * max(1.0, abs(v)):
            return False
    return True


async def _sizes(conn: asyncpg.Connection) -> tuple[float, float]:
    """MB of the raw telemetry tables and of every rollup (with indexes)."""
    raw = await conn.fetchval(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
        " WHERE c.relname ~ '^(pole|signal|energy)_telemetry' AND c.relkind IN ('r', 'p')"
    )
    rollups = await conn.fetchval(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
        " WHERE c.relname ~ '_(rollup|area)_' AND c.relkind = 'r'"
    )
    hyper = (
        await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size("
            "format('%I.%I', chunk_schema, chunk_name))), 0) FROM timescaledb_information.chunks"
        )
        if await conn.fetchval("SELECT to_regclass('timescaledb_information.chunks')")
        else 0
    )
    return (float(raw or 0) + float(hyper or 0)) / 2**20, float(rollups or 0) / 2**20


def _start_api(url: DatabaseUrl, port: int, log: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("citytel")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from citytel.cli import main; main()"]
    )
    env = os.environ | {"CITYTEL_DATABASE_URL": str(url), "CITYTEL_LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(
    http: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the API exited:\n{_tail(log)}")
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise BenchError(f"the API was not ready after {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]
