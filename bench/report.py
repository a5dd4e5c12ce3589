"""Ratios, targets, the results table and the JSON file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

PHASES = (
    ("ceiling", "ceiling"),
    ("naive", "naive bridge"),
    ("bare", "bare pipeline"),
    ("bare_paho", "bare, stock paho"),
    ("collector_1", "collector x1"),
    ("collector_2", "collector x2"),
)


# What runs beside the subjects, in the order the table shows their CPU.
COMPONENTS = ("broker", "database", "publisher")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    threshold: str
    check: Callable[[dict[str, Any]], float | None]
    passes: Callable[[float], bool]
    unit: str = ""


def _rate(section: dict[str, Any] | None) -> float | None:
    return None if not section else section.get("rate")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _latency(result: dict[str, Any], fraction: float) -> float | None:
    for point in (result.get("collector_1") or {}).get("latency", []):
        if point["fraction"] == fraction:
            return point["p99_ms"]
    return None


def _peak_rss(result: dict[str, Any]) -> float | None:
    values = [
        p["peak_rss_mb"]
        for key in ("collector_1", "collector_2")
        for p in (result.get(key) or {}).get("processes", [])
    ]
    return max(values) if values else None


def _rows_ok(result: dict[str, Any]) -> float | None:
    checks = [result[key]["rows_ok"] for key in ("collector_1", "collector_2") if result.get(key)]
    return float(all(checks)) if checks else None


def _ratio_target(name: str, subject: str, baseline: str, minimum: float) -> Target:
    return Target(
        name,
        f">= {minimum:g}x",
        lambda r: _ratio(_rate(r.get(subject)), _rate(r.get(baseline))),
        lambda v: v >= minimum,
        "x",
    )


TARGETS = (
    Target(
        "1 collector throughput",
        ">= 20,000 msg/s",
        lambda r: _rate(r.get("collector_1")),
        lambda v: v >= 20000,
        " msg/s",
    ),
    _ratio_target("1 collector / bare pipeline (same receive path)", "collector_1", "bare", 0.9),
    _ratio_target("1 collector / bare pipeline on stock paho", "collector_1", "bare_paho", 0.9),
    _ratio_target("1 collector / naive bridge", "collector_1", "naive", 5),
    _ratio_target("2 collectors / 1 collector", "collector_2", "collector_1", 1.3),
    Target("peak RSS per collector", "< 150 MB", _peak_rss, lambda v: v < 150, " MB"),
    Target(
        "p99 publish->committed at 50% of max",
        "< 250 ms",
        lambda r: _latency(r, 0.5),
        lambda v: v < 250,
        " ms",
    ),
    Target(
        "every unique message stored once, no dead letters", "exact", _rows_ok, lambda v: v == 1.0
    ),
)

# Reported ratios: (subject, baseline).
RATIOS = (
    ("collector_1", "bare"),
    ("collector_1", "bare_paho"),
    ("collector_1", "naive"),
    ("collector_2", "collector_1"),
    ("collector_1", "ceiling"),
)


def evaluate(result: dict[str, Any]) -> None:
    """Add ``ratios`` and ``targets`` to one protocol's results."""
    rates = {key: _rate(result.get(key)) for key, _ in PHASES}
    result["ratios"] = {
        f"{subject}/{baseline}": _round(_ratio(rates[subject], rates[baseline]), 3)
        for subject, baseline in RATIOS
    }
    targets = []
    for target in TARGETS:
        value = target.check(result)
        targets.append(
            {
                "name": target.name,
                "threshold": target.threshold,
                "value": _round(value, 3),
                "status": "n/a" if value is None else ("PASS" if target.passes(value) else "FAIL"),
            }
        )
    result["targets"] = targets


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def failed_targets(results: dict[str, Any]) -> list[str]:
    return [
        f"MQTT {protocol}: {t['name']}"
        for protocol, r in results["protocols"].items()
        for t in r["targets"]
        if t["status"] == "FAIL"
    ]


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _latency_cell(section: dict[str, Any], fraction: float) -> str:
    for point in section.get("latency", []):
        if point["fraction"] == fraction:
            return f"{_fmt(point['p50_ms'])} / {_fmt(point['p99_ms'])}"
    return "-"


def _components_cell(section: dict[str, Any]) -> str:
    components = section.get("components_cpu_pct", {})
    return " / ".join(_fmt(components.get(name)) for name in COMPONENTS)


def results_table(protocol: str, result: dict[str, Any]) -> Table:
    table = Table(title=f"ingest benchmark, MQTT {protocol}", title_justify="left")
    for column in (
        "subject",
        "messages",
        "seconds",
        "msg/s",
        "sent msg/s",
        "CPU %",
        "machine CPU %",
        "broker / db / publisher CPU %",
        "RSS MB",
        "p50/p99 @25%",
        "@50%",
        "@90%",
    ):
        table.add_column(column, justify="left" if column == "subject" else "right")
    for key, title in PHASES:
        section = result.get(key)
        if not section:
            table.add_row(title, "skipped")
            continue
        processes = section.get("processes", [])
        table.add_row(
            title + (" (time cap)" if section.get("capped_by_time") else ""),
            _fmt(section["finished"]),
            _fmt(section["elapsed_s"], ".1f"),
            _fmt(section["rate"]),
            _fmt(section["send_rate"]),
            " + ".join(_fmt(p["cpu_pct"]) for p in processes),
            _fmt(section.get("machine_cpu_pct")),
            _components_cell(section),
            " + ".join(_fmt(p["peak_rss_mb"]) for p in processes),
            *(_latency_cell(section, f) for f in (0.25, 0.5, 0.9)),
        )
    return table


def targets_table(protocol: str, result: dict[str, Any]) -> Table:
    table = Table(title=f"targets, MQTT {protocol}", title_justify="left")
    for column in ("target", "threshold", "measured", "result"):
        table.add_column(column)
    styles = {"PASS": "green", "FAIL": "bold red", "n/a": "dim"}
    for target in result["targets"]:
        value = target["value"]
        shown = "-" if value is None else f"{value:,.3g}" if value < 100 else f"{value:,.0f}"
        table.add_row(
            target["name"],
            target["threshold"],
            shown,
            f"[{styles[target['status']]}]{target['status']}[/]",
        )
    return table


def print_report(results: dict[str, Any], console: Console) -> None:
    payloads = results["payloads"]
    console.print(
        f"{payloads['messages']:,} messages ({payloads['unique']:,} unique, "
        f"{payloads['duplicates']:,} exact duplicates), mean {payloads['mean_bytes']:.0f} bytes, "
        f"{payloads['devices']:,} devices; {results['meta']['cpus']} CPUs"
    )
    for protocol, result in results["protocols"].items():
        console.print(results_table(protocol, result))
        if results["meta"].get("repeat", 1) > 1:
            console.print(f"msg/s is the median run of {results['meta']['repeat']}; every run:")
            for key, title in PHASES:
                if result.get(key):
                    console.print(f"  {title}: {' / '.join(_fmt(r) for r in result[key]['runs'])}")
        ratios = ", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in result["ratios"].items())
        console.print(f"ratios: {ratios}")
        console.print(targets_table(protocol, result))
