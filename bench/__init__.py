"""Benchmarks: the collector against its baselines (``citytel bench ingest``)."""

from bench.errors import BenchError
from bench.ingest import IngestBench, IngestBenchOptions
from bench.report import evaluate, failed_targets, print_report, write_json

__all__ = [
    "BenchError",
    "IngestBench",
    "IngestBenchOptions",
    "evaluate",
    "failed_targets",
    "print_report",
    "write_json",
]
