"""Grafana's PostgreSQL macros and template variables, expanded as Grafana expands them.

What the data source sends the database for a panel's ``rawSql`` (Grafana 11, the
``grafana-postgresql-datasource`` macro engine and the dashboard's variable
interpolation), so the tests can run the panels' SQL on a real database:

- ``$__timeFilter(col)`` -> ``col BETWEEN '<from>' AND '<to>'`` (RFC 3339, UTC);
- ``$__timeFrom()`` / ``$__timeTo()`` -> ``'<from>'`` / ``'<to>'``;
- ``$__interval_ms`` -> milliseconds; ``$__interval`` -> ``1m``, ``2h``, ``1d``;
- ``$__timeGroupAlias(col, 5m)`` -> ``floor(extract(epoch from col)/300)*300 AS "time"``;
- ``$var`` / ``${var}``: a multi-value or include-all variable as quoted, comma-separated
  values (``'a','b'``, quotes doubled), a single-value one as it is; ``${var:sqlstring}``
  always quoted; ``${var:text}`` the display text; ``$__all`` is every option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]+)\)")
_TIME_GROUP_ALIAS = re.compile(r"\$__timeGroupAlias\(([^,]+),\s*([^)]+)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_UNITS_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def interval_text(ms: int) -> str:
    """Grafana's spelling of an interval: the largest unit that divides it."""
    for unit, size in _UNITS_MS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise AssertionError(ms)


def _interval_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    assert match, f"not a Grafana interval: {text!r}"
    return int(match[1]) * dict(_UNITS_MS)[match[2]]


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(values: Sequence[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


@dataclass(frozen=True)
class Var:
    """A variable's current values, and how Grafana formats it (multi / include-all)."""

    values: tuple[str, ...]
    multi: bool = True
    texts: tuple[str, ...] = ()


@dataclass
class GrafanaQuery:
    """The dashboard time range, interval and variables of one panel refresh."""

    time_from: datetime
    time_to: datetime
    interval_ms: int
    variables: dict[str, Var] = field(default_factory=dict)

    def expand(self, sql: str) -> str:
        start, end = _rfc3339(self.time_from), _rfc3339(self.time_to)
        sql = _TIME_FILTER.sub(lambda m: f"{m[1].strip()} BETWEEN '{start}' AND '{end}'", sql)
        sql = sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
        sql = _TIME_GROUP_ALIAS.sub(self._time_group, sql)
        sql = sql.replace("$__interval_ms", str(self.interval_ms))
        sql = sql.replace("$__interval", interval_text(self.interval_ms))
        sql = _VARIABLE.sub(self._variable, sql)
        assert "$" not in sql, f"a macro or variable Grafana would not expand:\n{sql}"
        return sql

    def _time_group(self, match: re.Match[str]) -> str:
        seconds = _interval_ms(match[2]) // 1000
        return f'floor(extract(epoch from {match[1].strip()})/{seconds})*{seconds} AS "time"'

    def _variable(self, match: re.Match[str]) -> str:
        name = match[1] or match[3]
        fmt = match[2]
        assert name in self.variables, f"${name} is not a variable of the dashboard"
        var = self.variables[name]
        if fmt == "text":
            return ", ".join(var.texts or var.values)
        if fmt == "sqlstring" or var.multi:
            return _quoted(var.values)
        assert fmt is None, f"format {fmt} not handled"
        assert len(var.values) == 1
        return var.values[0]
