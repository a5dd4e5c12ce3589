"""The fuzz run's report: inputs, outcomes, and anything that escaped."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.fuzz import FuzzReport


def print_fuzz_report(report: FuzzReport, console: Console) -> None:
    outcome = report.outcome
    rate = outcome.inputs / report.decode_s if report.decode_s else 0.0
    console.print(
        f"{outcome.inputs:,} inputs decoded in {report.decode_s:.1f} s ({rate:,.0f}/s): "
        f"{outcome.stored:,} rows or statuses, {sum(outcome.reasons.values()):,} dead letters, "
        f"{outcome.pending:,} for the registry to look up"
    )
    table = Table("made by", "inputs", title="inputs by generator")
    for maker, count in sorted(outcome.makers.items()):
        table.add_row(maker, f"{count:,}")
    console.print(table)
    reasons = Table("reason", "decoder", "in the database", title="dead letters by reason")
    for reason in sorted(set(outcome.reasons) | set(report.dead_letters_by_reason)):
        stored = report.dead_letters_by_reason.get(reason)
        reasons.add_row(
            reason, f"{outcome.reasons.get(reason, 0):,}", "" if stored is None else f"{stored:,}"
        )
    console.print(reasons)
    if report.batches:
        console.print(
            f"written in {report.batches:,} batches ({report.write_s:.1f} s): "
            f"{report.rows_offered:,} rows offered, {report.rows_inserted:,} inserted "
            f"(the rest repeat a key); dead letters offered {report.dead_letters_offered:,}; "
            f"in the tables: {report.stored}"
        )
    console.print(
        f"escaped exceptions: {report.escaped} (decoder {len(outcome.escaped)}, "
        f"writer {len(report.write_errors)}); inputs without a trace: {len(outcome.unaccounted)}"
    )
    for maker, topic, payload, error in outcome.escaped[:10]:
        console.print(f"  {maker}: {error} on {topic[:80]!r} {payload[:80]!r}")
    for error in report.write_errors[:10]:
        console.print(f"  writer: {error}")
