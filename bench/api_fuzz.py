"""Fuzz the HTTP API from its own OpenAPI schema with schemathesis, in process.

Every operation gets cases that follow the schema (positive) and cases that break it
(negative); each case is sent once per API key role and once without a key, and each
answer is held to the rules:

- no answer is a 5xx;
- a ``/v1`` operation without a key answers 401;
- a key whose role is below the operation's ``x-required-role`` answers 403, and a key
  whose role suffices is never refused as 401 or 403.

The app runs on the caller's event loop (where its lifespan opened the pool); the
Hypothesis runner runs in a worker thread and hands each request to that loop.
Schemathesis is a development dependency: import this module only where it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from rich.console import Console
from rich.table import Table
from schemathesis import GenerationMode
from schemathesis.transport.requests import REQUESTS_TRANSPORT

from ingest.registry import upsert_devices
from schemas.payloads import TELEMETRY_TABLES
from schemas.registry import Device
from schemas.topics import Kind

BASE_URL = "http://citytel.test"
ROLE_ORDER = ("viewer", "operator", "admin")  # api.keys.Role, lowest first
_AUTH_HEADERS = frozenset({"authorization", "x-api-key"})
_REQUEST_TIMEOUT_S = 60.0
_SHOWN_BODY = 300

Send = Callable[[requests.PreparedRequest], httpx.Response]


@dataclass(frozen=True, slots=True)
class ApiFuzzOptions:
    """``examples`` per operation and run: one run with valid and one with invalid
    input, and one more per ``fixed`` set of path parameters the operation has all of
    (a seeded device or city, so cases reach past the 404)."""

    examples: int = 25
    seed: int | None = None
    fixed: Sequence[Mapping[str, str]] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """An answer that broke a rule, with what reproduces it."""

    operation: str
    caller: str
    status: int
    rule: str
    request: str
    response: str


@dataclass(slots=True)
class ApiFuzzReport:
    operations: list[str] = field(default_factory=list)
    cases: int = 0
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


FUZZ_CITY = "fuzz"
FUZZ_DEVICES = {Kind.POLE: "fz-pole-1", Kind.SIGNAL: "fz-signal-1", Kind.ENERGY: "fz-energy-1"}
_READINGS = {
    Kind.POLE: ("pm25_ugm3, lamp_on", "12.5, true"),
    Kind.SIGNAL: ("mode, volume", "'adaptive', 7"),
    Kind.ENERGY: ("pv_kw, load_kw", "4.5, 3.0"),
}


async def seed_database(conn: asyncpg.Connection) -> list[dict[str, str]]:
    """A device of each kind in the city ``fuzz`` with readings of the last hours, a
    status, an event and a dead letter; returns the path values that name them."""
    await upsert_devices(
        conn,
        [
            Device(device_id=d, kind=k, city=FUZZ_CITY, district="centre")
            for k, d in FUZZ_DEVICES.items()
        ],
    )
    now = datetime.now(UTC)
    days = sorted({(now - timedelta(hours=h)).date() for h in (0, 1, 2)})
    for kind, device_id in FUZZ_DEVICES.items():
        table = TELEMETRY_TABLES[kind]
        await conn.execute(
            "SELECT citytel_ensure_partitions($1::regclass, $2::date[])", table, days
        )
        columns, values = _READINGS[kind]
        for hours in (0.1, 1, 2):
            await conn.execute(
                f"INSERT INTO {table} (device_id, ts, {columns}) VALUES ($1, $2, {values})"
                " ON CONFLICT DO NOTHING",
                device_id,
                now - timedelta(hours=hours),
            )
        await conn.execute(
            "INSERT INTO device_status (device_id, online, last_seen, fw)"
            " VALUES ($1, true, $2, '1') ON CONFLICT (device_id) DO NOTHING",
            device_id,
            now,
        )
    await conn.execute(
        "INSERT INTO device_events (device_id, ts, type, code, severity) VALUES"
        " ($1, $2, 'fault', 'lamp_failure', 'critical') ON CONFLICT DO NOTHING",
        FUZZ_DEVICES[Kind.POLE],
        now,
    )
    await conn.execute(
        "INSERT INTO dead_letters (topic, payload, reason, digest) VALUES"
        " ($1, '{broken', 'invalid_json', $2) ON CONFLICT DO NOTHING",
        f"citytel/v1/{FUZZ_CITY}/pole/{FUZZ_DEVICES[Kind.POLE]}/telemetry",
        b"fuzz-seed-digest",
    )
    return [{"device_id": d} for d in FUZZ_DEVICES.values()] + [{"city": FUZZ_CITY}]


async def fuzz_app(
    app: Any,
    keys: Mapping[str, str],
    options: ApiFuzzOptions,
    on_progress: Callable[[str], None] | None = None,
) -> ApiFuzzReport:
    """Fuzz ``app`` (an ASGI app whose lifespan runs on this loop) with ``keys`` (role ->
    full key)."""
    loop = asyncio.get_running_loop()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        document = (await http.get("/openapi.json")).json()

        def send(prepared: requests.PreparedRequest) -> httpx.Response:
            request = http.build_request(
                prepared.method or "GET",
                prepared.url or BASE_URL,
                headers=dict(prepared.headers),
                content=prepared.body,
            )
            future = asyncio.run_coroutine_threadsafe(http.send(request), loop)
            return future.result(timeout=_REQUEST_TIMEOUT_S)

        fuzzer = _Fuzzer(send, keys, options, on_progress)
        return await asyncio.to_thread(fuzzer.run, document)


class _Fuzzer:
    def __init__(
        self,
        send: Send,
        keys: Mapping[str, str],
        options: ApiFuzzOptions,
        on_progress: Callable[[str], None] | None,
    ) -> None:
        self.send = send
        self.keys = keys
        self.options = options
        self.on_progress = on_progress or (lambda _: None)
        self.report = ApiFuzzReport()

    def run(self, document: dict[str, Any]) -> ApiFuzzReport:
        started = time.monotonic()
        schema = schemathesis.openapi.from_dict(document)
        for result in schema.get_all_operations():
            operation = result.ok()
            self.report.operations.append(operation.label)
            self.on_progress(operation.label)
            for strategy in self._strategies(operation):
                self._explore(operation, strategy)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _strategies(self, operation: Any) -> list[Any]:
        strategies = [
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        for fixed in self.options.fixed:
            if all(f"{{{name}}}" in operation.path for name in fixed):
                strategies.append(operation.as_strategy(path_parameters=dict(fixed)))
        return strategies

    def _explore(self, operation: Any, strategy: Any) -> None:
        @settings(
            max_examples=self.options.examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def explore(case: Any) -> None:
            self._exercise(operation, case)

        if self.options.seed is not None:
            explore = seed(self.options.seed)(explore)
        # An operation without parameters has no invalid case to make.
        with contextlib.suppress(Unsatisfiable):
            explore()

    def _exercise(self, operation: Any, case: Any) -> None:
        self.report.cases += 1
        required = operation.definition.raw.get("x-required-role")
        self._call(operation, case, "no key", None, self._anonymous_rule(operation))
        for role, key in self.keys.items():
            rule = self._role_rule(required, role)
            self._call(operation, case, role, {"Authorization": f"Bearer {key}"}, rule)

    @staticmethod
    def _anonymous_rule(operation: Any) -> Callable[[int], str | None]:
        if not operation.path.startswith("/v1/"):
            return lambda status: None
        return lambda status: None if status == 401 else "a /v1 operation answered without a key"

    @staticmethod
    def _role_rule(required: str | None, role: str) -> Callable[[int], str | None]:
        if required is None:
            return lambda status: None
        if ROLE_ORDER.index(role) < ROLE_ORDER.index(required):
            return lambda status: None if status == 403 else f"a {role} key was not refused (403)"
        return lambda status: (
            f"a {role} key was refused ({status})" if status in (401, 403) else None
        )

    def _call(
        self,
        operation: Any,
        case: Any,
        caller: str,
        auth: dict[str, str] | None,
        rule: Callable[[int], str | None],
    ) -> None:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() not in _AUTH_HEADERS
        }
        kwargs = REQUESTS_TRANSPORT.serialize_case(case, base_url=BASE_URL, headers=auth)
        prepared = requests.Request(**kwargs).prepare()
        response = self.send(prepared)
        self.report.calls += 1
        self.report.statuses[response.status_code] += 1
        broken = "5xx" if response.status_code >= 500 else rule(response.status_code)
        if broken is not None:
            self.report.findings.append(
                Finding(
                    operation=operation.label,
                    caller=caller,
                    status=response.status_code,
                    rule=broken,
                    request=_describe(prepared),
                    response=response.text[:_SHOWN_BODY],
                )
            )


def _describe(prepared: requests.PreparedRequest) -> str:
    body = prepared.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "backslashreplace")
    shown = f" body={body[:_SHOWN_BODY]!r}" if body else ""
    return f"{prepared.method} {prepared.url}{shown}"


def print_api_fuzz_report(report: ApiFuzzReport, console: Console) -> None:
    console.print(
        f"{len(report.operations)} operations, {report.cases:,} cases, {report.calls:,} calls"
        f" (each case without a key and with each role's key) in {report.seconds:.0f} s"
    )
    table = Table("status", "calls", title="answers")
    for status, count in sorted(report.statuses.items()):
        table.add_row(str(status), f"{count:,}")
    console.print(table)
    for finding in report.findings[:20]:
        console.print(
            f"[red]{finding.rule}[/red]: {finding.operation} as {finding.caller} -> "
            f"{finding.status}\n  {finding.request}\n  {finding.response}",
            markup=True,
            highlight=False,
        )
    console.print(f"5xx answers: {report.server_errors}; rule violations: {len(report.findings)}")
