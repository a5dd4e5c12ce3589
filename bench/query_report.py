"""The query benchmark's report: latencies per request and scale, rollups against raw rows."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from bench.query import REQUESTS, SQL_PAIRS, ScaleResult

P95_TARGET_MS = 200.0
SCALE_RATIO_TARGET = 2.0


def print_query_report(results: list[ScaleResult], console: Console) -> list[str]:
    """Print the tables; return the targets missed (one line each)."""
    missed: list[str] = []
    for result in results:
        console.print(
            f"[bold]{result.scale}[/]: {result.devices:,} devices, {result.rows:,} raw rows"
            f" ({result.raw_mb:,.0f} MB raw, {result.rollup_mb:,.0f} MB of rollups,"
            f" {result.storage}); loaded in {result.load_s:.0f} s, rolled up in"
            f" {result.refresh_s:.0f} s"
        )
    names = [r.scale for r in results]
    api = Table("request through the API", *(f"{n} p50 / p95 ms" for n in names), title="API")
    if len(results) == 2:
        api.add_column(f"{names[1]} / {names[0]} p95")
    for request in REQUESTS:
        cells = []
        for result in results:
            figures = result.api[request.label]
            cells.append(f"{figures['p50_ms']:.1f} / {figures['p95_ms']:.1f}")
            if figures["p95_ms"] >= P95_TARGET_MS:
                missed.append(f"{result.scale} {request.label}: p95 {figures['p95_ms']:.0f} ms")
        if len(results) == 2:
            ratio = (
                results[1].api[request.label]["p95_ms"] / results[0].api[request.label]["p95_ms"]
            )
            cells.append(f"{ratio:.2f}")
            if ratio > SCALE_RATIO_TARGET:
                missed.append(f"{request.label}: {names[1]}/{names[0]} p95 {ratio:.2f}")
        api.add_row(request.label, *cells)
    console.print(api)
    sql = Table(
        "question (SQL)",
        "scale",
        "rollups ms",
        "raw rows ms",
        "raw / rollups",
        "same answer",
        title="rollups against raw rows, side by side",
    )
    for pair in SQL_PAIRS:
        for result in results:
            figures = result.sql[pair.label]
            sql.add_row(
                pair.label,
                result.scale,
                f"{figures['rollup_ms']:.1f}",
                f"{figures['raw_ms']:.0f}",
                f"{figures['raw_over_rollup']:.0f}x",
                "yes" if figures["same_answer"] else "[red]NO[/]",
            )
            if not figures["same_answer"]:
                missed.append(f"{result.scale} {pair.label}: rollups and raw rows disagree")
    console.print(sql)
    console.print(
        f"targets: p95 < {P95_TARGET_MS:.0f} ms on every scale, L / S <= {SCALE_RATIO_TARGET:g}:"
        + (" all met" if not missed else f" {len(missed)} missed")
    )
    for line in missed:
        console.print(f"  [red]missed[/]: {line}")
    return missed


def write_query_json(results: list[ScaleResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps([asdict(r) for r in results], option=orjson.OPT_INDENT_2))
