"""Errors of the benchmarks."""

from __future__ import annotations


class BenchError(Exception):
    """A benchmark could not run or measure: a service did not start, a count never arrived."""
