"""The query benchmark on a tiny city: every request answers, rollups and raw rows agree.

Benchmarks do not run in the suite; this keeps the command working (the API runs as
its own process, as in the benchmark)."""

from __future__ import annotations

import pytest
from conftest import ADMIN_URL

from bench.history import Scale
from bench.query import REQUESTS, SQL_PAIRS, QueryBench, QueryBenchOptions


@pytest.mark.timeout(120)
async def test_bench_query_measures_every_request_and_compares_answers() -> None:
    tiny = Scale("T", signals=8, poles=8, energy=4, days=2)
    phases: set[str] = set()
    bench = QueryBench(
        QueryBenchOptions(admin_url=ADMIN_URL, scales=(tiny,), days=2, repeat=3, raw_repeat=1),
        on_progress=lambda phase, done, total: phases.add(phase),
        on_note=lambda note: None,
    )
    (result,) = await bench.run()
    assert result.rows == 20 * 2 * 288
    assert set(result.api) == {r.label for r in REQUESTS}
    for label, figures in result.api.items():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] < 10_000, label
    assert {label: f["same_answer"] for label, f in result.sql.items()} == {
        p.label: True for p in SQL_PAIRS
    }
    assert {"history T", "rollups T", "API T", "SQL T"} <= phases
