"""Benchmarks (``citytel bench``): ingest, query, flood, fuzz, api-fuzz. Exports load on
first use."""

from __future__ import annotations

from core.lazy import lazy_exports

_EXPORTS = {
    "BenchError": "bench.errors",
    "IngestBench": "bench.ingest",
    "IngestBenchOptions": "bench.ingest",
    "evaluate": "bench.report",
    "failed_targets": "bench.report",
    "print_report": "bench.report",
    "write_json": "bench.report",
}
__all__ = [
    "BenchError",
    "IngestBench",
    "IngestBenchOptions",
    "evaluate",
    "failed_targets",
    "print_report",
    "write_json",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)
